#!/usr/bin/env bash
# Benchmarks `nomnom load` against the usual psql baselines on TPC-H orders and
# prints a markdown report (logs go to stderr, the report to stdout).
#
# Usage: scripts/bench-load.sh [options]
#   --sf X            scale factor of the generated orders (default 1 = 1.5M rows)
#   --rounds N        rounds of all loaders, alternating within a round (default 3)
#   --jobs N          passed to nomnom load as --jobs (default: nomnom's own);
#                     also pgloader's concurrency (default 2)
#   --memory          memory check instead: nomnom loads SF 0.5 and SF 5 once
#                     each (--on-conflict error); reports both peak RSS
#   --with-pgloader   also time pgloader (Debian package pgloader) on the CSV
#   --no-build        skip scripts/deps.sh --bench and scripts/build.sh
#   --keep            keep the temp dir (data, logs, raw results) at exit
#   -h, --help        this text
#
# Each round runs, in this order, each into a fresh empty table (DROP + CREATE
# from `nomnom schema`, then CHECKPOINT, all outside the timed part):
#   psql-copy       psql \copy of the CSV, one connection
#   nomnom-error    nomnom load NDJSON --on-conflict error
#   psql-parallel   CSV split in 2 by lines, 2 concurrent psql \copy
#   psql-staging    one psql: COPY into a temp table, INSERT ... ON CONFLICT DO NOTHING
#   nomnom-nothing  nomnom load NDJSON --on-conflict nothing
#   pgloader        pgloader on the CSV with parallel COPY workers (--with-pgloader)
# NDJSON and CSV are generated with the same seed (the same rows). After every
# run the row count must equal the number of generated rows and the table
# contents' fingerprint must equal the first run's, or the script fails.
# Wall time: date +%s.%N around the client; peak RSS: GNU time %M of the client
# (psql-parallel: the sum of its two psql processes). PostgreSQL is a throwaway
# server on loopback with default durability, stopped at exit.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly TABLE=orders_x
readonly SEED=1
readonly LOADERS=(psql-copy nomnom-error psql-parallel psql-staging nomnom-nothing)

command_line=$(printf '%q ' "scripts/$(basename "$0")" "$@")
command_line=${command_line% }

sf=1 rounds=3 jobs="" memory=0 build=1 with_pgloader=0 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --sf) sf=${2:?--sf needs a value}; shift ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift ;;
    --jobs) jobs=${2:?--jobs needs a value}; shift ;;
    --memory) memory=1 ;;
    --with-pgloader) with_pgloader=1 ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    -h|--help) nn_usage ;;
    *) nn_die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
if ! [[ $sf =~ ^[0-9]*\.?[0-9]+$ ]] || ! awk -v x="$sf" 'BEGIN { exit !(x > 0) }'; then
  nn_die "--sf must be a positive number, got '$sf'"
fi
nn_need_int --rounds 1 "$rounds"
[ -z "$jobs" ] || nn_need_int --jobs 1 "$jobs"

nomnom="$NN_ROOT/build/cli/nomnom"
nomnom_jobs=()
[ -n "$jobs" ] && nomnom_jobs=(--jobs "$jobs")

# ---------------------------------------------------------------- helpers

now() { date +%s.%N; }

# fsub A B: A - B with millisecond precision.
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# Reads numbers, one a line, on stdin; prints "median min max".
stats() {
  sort -g | awk '{ v[NR] = $1 }
    END {
      if (NR == 0) { print "- - -"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.3f %.3f %.3f\n", m, v[1], v[NR]
    }'
}

readonly PSQL_OPTS=(-X -q -v ON_ERROR_STOP=1)
psql_db() { psql "${PSQL_OPTS[@]}" "$DATABASE_URL" "$@"; }
sql() { psql_db -At -c "$1"; }

load_average() { cut -d' ' -f1-3 /proc/loadavg; }

# Drops and recreates the target table and checkpoints, so that every run
# starts from an empty table and a clean WAL / buffer state.
reset_table() {
  sql "SET client_min_messages = warning; DROP TABLE IF EXISTS $TABLE" >/dev/null
  "$nomnom" schema --table "$TABLE" | psql_db >/dev/null
  sql CHECKPOINT >/dev/null
}

# "rows fingerprint" of the target table; the fingerprint is order-independent.
table_fingerprint() {
  sql "SELECT count(*) || ' ' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM $TABLE t"
}

# timed RSSFILE LOG CMD...: runs CMD under GNU time, appending its output to
# LOG; RSSFILE gets the peak RSS in KB (last line).
timed() {
  local rssfile=$1 log=$2
  shift 2
  /usr/bin/time -f '%M' -o "$rssfile" "$@" >>"$log" 2>&1
}

rss_of() { tail -n 1 "$1"; }

# ---------------------------------------------------------------- loaders
# load_NAME RSSFILE LOG (NAME with _ for -): loads the data into $TABLE, returns non-zero on failure.

load_psql_copy() {
  timed "$1" "$2" psql "${PSQL_OPTS[@]}" "$DATABASE_URL" -c "\\copy $TABLE FROM '$csv' CSV"
}

load_nomnom_error() {
  timed "$1" "$2" "$nomnom" load "$ndjson" --on-conflict error --quiet --table "$TABLE" "${nomnom_jobs[@]}"
}

load_nomnom_nothing() {
  timed "$1" "$2" "$nomnom" load "$ndjson" --on-conflict nothing --quiet --table "$TABLE" "${nomnom_jobs[@]}"
}

load_psql_parallel() {
  local rssfile=$1 log=$2 part pids=() status=0 i=0 total=0
  for part in "${csv_parts[@]}"; do
    timed "$rssfile.$i" "$log" psql "${PSQL_OPTS[@]}" "$DATABASE_URL" -c "\\copy $TABLE FROM '$part' CSV" &
    pids+=($!)
    i=$((i + 1))
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  for ((i = 0; i < ${#pids[@]}; i++)); do
    total=$((total + $(rss_of "$rssfile.$i")))
  done
  echo "$total" >"$rssfile"
  return "$status"
}

load_psql_staging() {
  timed "$1" "$2" psql "${PSQL_OPTS[@]}" "$DATABASE_URL" -f "$tmp/staging.sql"
}

load_pgloader() {
  timed "$1" "$2" pgloader --root-dir "$tmp/pgloader" "$tmp/orders.pgl"
}

# Writes the SQL and control files the loaders above read.
prepare_loader_files() {
  cat >"$tmp/staging.sql" <<EOF
BEGIN;
CREATE TEMP TABLE s (LIKE $TABLE) ON COMMIT DROP;
\\copy s FROM '$csv' CSV
INSERT INTO $TABLE SELECT * FROM s ON CONFLICT (order_key) DO NOTHING;
COMMIT;
EOF
  [ "$with_pgloader" = 1 ] || return 0
  local columns concurrency=${jobs:-2}
  columns=$("$nomnom" schema --table "$TABLE" | sed -n 's/^ *"\([A-Za-z0-9_]*\)" .*/\1/p' | paste -sd, -)
  [ -n "$columns" ] || nn_die "could not read the column list from nomnom schema"
  cat >"$tmp/orders.pgl" <<EOF
LOAD CSV
  FROM '$csv' ($columns)
  INTO $DATABASE_URL?tablename=$TABLE ($columns)
  WITH fields optionally enclosed by '"',
       fields escaped by double-quote,
       fields terminated by ',',
       workers = $((concurrency + 2)), concurrency = $concurrency,
       batch rows = 25000
;
EOF
}

# run_one NAME ROUND: one timed run into a fresh table, verified; appends
# "NAME ROUND SECONDS RSS_KB" to $results.
run_one() {
  local name=$1 round=$2 log="$tmp/logs/$2-$1.log" rssfile="$tmp/logs/$2-$1.rss"
  local t0 t1 secs rss got
  reset_table
  t0=$(now)
  if ! "load_${name//-/_}" "$rssfile" "$log"; then
    nn_log "FAILED: $name (round $round) exited non-zero; last lines of its output:"
    tail -n 30 "$log" >&2
    exit 1
  fi
  t1=$(now)
  secs=$(fsub "$t1" "$t0")
  rss=$(rss_of "$rssfile")
  got=$(table_fingerprint)
  if [ "${got%% *}" != "$rows" ]; then
    nn_log "FAILED: $name (round $round) left ${got%% *} rows in $TABLE, expected $rows; its output:"
    tail -n 30 "$log" >&2
    exit 1
  fi
  if [ -z "$reference_fingerprint" ]; then
    reference_fingerprint=$got reference_run="$name (round $round)"
  elif [ "$got" != "$reference_fingerprint" ]; then
    nn_die "$name (round $round): table contents differ from $reference_run's (fingerprint $got vs $reference_fingerprint)"
  fi
  echo "$name $round $secs $rss" >>"$results"
  nn_log "round $round/$rounds $(printf '%-15s' "$name") $(printf '%7.3f' "$secs") s  $(awk -v k="$rss" 'BEGIN { printf "%7.1f", k / 1024 }') MB  (load $(load_average))"
}

# ---------------------------------------------------------------- report

machine_facts() {
  local cpu mem pgver
  cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  pgver=$(sql 'SHOW server_version')
  echo "- command: \`$command_line\`"
  echo "- started: $started"
  echo "- nomnom: $("$nomnom" --version 2>/dev/null | head -n 1), git $nomnom_rev$nomnom_rev_note"
  echo "- machine: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr)"
  echo "- PostgreSQL $pgver on 127.0.0.1, default durability (fsync on), shared_buffers=256MB, max_wal_size=4GB"
  echo "- load average before: $load_before; after: $(load_average)"
}

ratio_of() {
  local name=$1 base=$2
  awk -v a="${median[$name]:-}" -v b="${median[$base]:-}" -v base="$base" \
    'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f × %s\n", a / b, base }'
}

print_report() {
  local name med min max rss_med rps ratio
  declare -gA median=()
  for name in "${loaders[@]}"; do
    read -r med _ _ < <(awk -v n="$name" '$1 == n { print $3 }' "$results" | stats)
    median[$name]=$med
  done
  echo
  echo "## nomnom load benchmark: TPC-H orders SF $sf ($rows rows), $rounds round(s)"
  echo
  echo "| loader | median s | min s | max s | ratio to psql baseline | peak client RSS median (MB) | rows/s |"
  echo "|---|---:|---:|---:|---|---:|---:|"
  for name in "${loaders[@]}"; do
    read -r med min max < <(awk -v n="$name" '$1 == n { print $3 }' "$results" | stats)
    rss_med=$(awk -v n="$name" '$1 == n { print $4 / 1024 }' "$results" | stats | cut -d' ' -f1)
    rps=$(awk -v r="$rows" -v s="$med" 'BEGIN { printf "%.0f", r / s }')
    case "$name" in
      psql-copy | psql-staging) ratio="(baseline)" ;;
      nomnom-nothing) ratio=$(ratio_of "$name" psql-staging) ;;
      *) ratio=$(ratio_of "$name" psql-copy) ;;
    esac
    printf '| %s | %.2f | %.2f | %.2f | %s | %.1f | %s |\n' "$name" "$med" "$min" "$max" "$ratio" "$rss_med" "$rps"
  done
  echo
  echo "Inputs: orders.ndjson $(du -h "$ndjson" | cut -f1), orders.csv $(du -h "$csv" | cut -f1), seed $SEED." \
    "nomnom: ${nomnom_jobs[*]:-default --jobs}." \
    "Every run into a fresh empty table with its primary key, after CHECKPOINT;" \
    "row count and content fingerprint verified after each run."
  echo
  machine_facts
}

# ---------------------------------------------------------------- modes

gen_orders() { # gen_orders SF FORMAT FILE
  "$nomnom" gen tpch orders --sf "$1" --seed "$SEED" --format "$2" -o "$3"
}

bench_mode() {
  ndjson="$tmp/orders.ndjson" csv="$tmp/orders.csv"
  nn_log "bench: generating TPC-H orders SF $sf (seed $SEED) as NDJSON and CSV"
  gen_orders "$sf" ndjson "$ndjson"
  gen_orders "$sf" csv "$csv"
  rows=$(wc -l <"$ndjson")
  local csv_rows
  csv_rows=$(wc -l <"$csv")
  [ "$rows" -gt 0 ] || nn_die "generated no rows"
  # One row a line in both files (no embedded newlines), which the line split needs.
  [ "$csv_rows" = "$rows" ] || nn_die "NDJSON has $rows lines but CSV $csv_rows"
  split -n l/2 "$csv" "$tmp/orders.part."
  csv_parts=("$tmp"/orders.part.*)
  nn_log "bench: $rows rows; NDJSON $(du -h "$ndjson" | cut -f1), CSV $(du -h "$csv" | cut -f1), split into ${#csv_parts[@]} parts"

  loaders=("${LOADERS[@]}")
  if [ "$with_pgloader" = 1 ]; then
    if command -v pgloader >/dev/null; then
      loaders+=(pgloader)
    else
      nn_log "bench: pgloader not installed (scripts/deps.sh --bench installs it); skipping it"
    fi
  fi

  NN_PG_DURABLE=1 nn_start_postgres
  prepare_loader_files
  local round name start=$SECONDS
  for ((round = 1; round <= rounds; round++)); do
    for name in "${loaders[@]}"; do
      run_one "$name" "$round"
    done
  done
  nn_log "bench: ${#loaders[@]} loaders x $rounds rounds in $(nn_duration $((SECONDS - start)))"
  print_report
}

memory_mode() {
  local msf rss secs t0 t1 got out="$tmp/memory.txt" start=$SECONDS
  NN_PG_DURABLE=1 nn_start_postgres
  for msf in 0.5 5; do
    ndjson="$tmp/orders-sf$msf.ndjson"
    nn_log "memory: generating SF $msf"
    gen_orders "$msf" ndjson "$ndjson"
    rows=$(wc -l <"$ndjson")
    local size
    size=$(du -h "$ndjson" | cut -f1)
    reset_table
    nn_log "memory: nomnom load SF $msf ($rows rows, $size)"
    t0=$(now)
    if ! load_nomnom_error "$tmp/logs/memory-$msf.rss" "$tmp/logs/memory-$msf.log"; then
      nn_log "FAILED: nomnom load SF $msf exited non-zero; last lines of its output:"
      tail -n 30 "$tmp/logs/memory-$msf.log" >&2
      exit 1
    fi
    t1=$(now)
    secs=$(fsub "$t1" "$t0")
    rss=$(rss_of "$tmp/logs/memory-$msf.rss")
    got=$(sql "SELECT count(*) FROM $TABLE")
    [ "$got" = "$rows" ] || nn_die "nomnom load SF $msf left $got rows in $TABLE, expected $rows"
    nn_log "memory: SF $msf: $secs s, peak RSS $((rss / 1024)) MB"
    echo "$msf $rows $size $secs $rss" >>"$out"
    rm -f "$ndjson"
  done
  nn_log "memory: done in $(nn_duration $((SECONDS - start)))"

  echo
  echo "## nomnom load memory check (--on-conflict error, ${nomnom_jobs[*]:-default --jobs})"
  echo
  echo "| SF | rows | NDJSON size | seconds | rows/s | nomnom peak RSS (MB) |"
  echo "|---:|---:|---:|---:|---:|---:|"
  awk '{ printf "| %s | %s | %s | %.2f | %.0f | %.1f |\n", $1, $2, $3, $4, $2 / $4, $5 / 1024 }' "$out"
  echo
  awk 'NR == 1 { small = $5 } NR == 2 { big = $5 }
    END {
      r = big / small
      printf "Peak RSS SF 5 / SF 0.5 = %.2f (%d KB vs %d KB): ", r, big, small
      if (big <= small) print "the claim holds: no larger for 10x the rows."
      else if (r <= 1.10) print "within 10% (noise level): bounded, though not strictly no larger."
      else if (r < 2) printf "the claim does not hold strictly: %.0f%% larger for 10x the rows (growth far from proportional).\n", (r - 1) * 100
      else print "the claim does NOT hold: memory grows with the input."
    }' "$out"
  echo
  machine_facts
}

# ---------------------------------------------------------------- main

if [ "$build" = 1 ]; then
  "$NN_ROOT/scripts/deps.sh" --bench >&2
  "$NN_ROOT/scripts/build.sh" >&2
fi
[ -x "$nomnom" ] || nn_die "$nomnom not found (run scripts/build.sh, or drop --no-build)"
nomnom_rev=$(git -C "$NN_ROOT" describe --always --dirty 2>/dev/null || echo unknown)
nomnom_rev_note=", Release build"
[ "$build" = 1 ] || nomnom_rev_note=" (the work tree's; --no-build: the binary may be older)"
case "$nomnom_rev" in
  *-dirty) nomnom_rev_note+="; -dirty: the work tree had uncommitted changes" ;;
esac
[ -x /usr/bin/time ] || nn_die "/usr/bin/time missing (scripts/deps.sh --bench installs package time)"
command -v psql >/dev/null || nn_die "psql missing (scripts/deps.sh installs postgresql)"

tmp=$(mktemp -d /tmp/nomnom-bench.XXXXXX)
cleanup() {
  nn_stop_services
  if [ "$keep" = 1 ]; then nn_log "kept $tmp"; else rm -rf "$tmp"; fi
}
nn_on_exit cleanup
mkdir -p "$tmp/logs"
# Measure a snapshot of the binary: other builds may replace build/ meanwhile.
cp "$nomnom" "$tmp/nomnom"
nomnom="$tmp/nomnom"
results="$tmp/results.txt"
reference_fingerprint="" reference_run=""

# Load average just before the measurements (after any build).
load_before=$(load_average) started=$(date -u "+%Y-%m-%d %H:%M:%S UTC")
if [ "$memory" = 1 ]; then
  memory_mode
else
  bench_mode
fi
