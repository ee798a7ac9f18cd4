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
#   --loaders "A B"   run only these loaders (names below), in this order
#   --baseline-bin F  also time another nomnom binary F (e.g. an older build) as
#                     loader base-error (--on-conflict error), for before/after
#                     comparisons in the same run
#   --no-build        skip scripts/deps.sh --bench and scripts/build.sh
#   --keep            keep the temp dir (data, logs, raw results) at exit
#   -h, --help        this text
#
# Each round runs, in this order, each into a fresh empty table (DROP + CREATE
# from `nomnom schema`, then CHECKPOINT, all outside the timed part):
#   psql-limit      the box's limit for a 2-connection load into the indexed
#                   table: two concurrent psql \copy of pre-encoded BINARY
#                   halves (exported once, before the rounds, from the loaded
#                   rows with \copy (SELECT ... WHERE hashtext(order_key) % 2 = 0)
#                   TO ... (FORMAT binary) and the complement); no parsing at all
#   psql-copy       psql \copy of the CSV, one connection
#   nomnom-error    nomnom load NDJSON --on-conflict error
#   nomnom-fresh    nomnom load NDJSON --fresh (COPY without the primary key,
#                   built at the end; into the same fresh empty table)
#   nomnom-jobs1    nomnom load NDJSON --on-conflict error --jobs 1
#   psql-parallel   CSV split in 2 by lines, 2 concurrent psql \copy
#   psql-staging    one psql: COPY into a temp table, INSERT ... ON CONFLICT DO NOTHING
#   nomnom-nothing  nomnom load NDJSON --on-conflict nothing
#   pgloader        pgloader on the CSV with parallel COPY workers (--with-pgloader)
# NDJSON and CSV are generated with the same seed (the same rows). After every
# run the row count must equal the number of generated rows and the table
# contents' fingerprint must equal the first run's, or the script fails.
# Wall time: date +%s.%N around the client; client CPU (user + sys), minor page
# faults and peak RSS: GNU time of the client (psql-parallel and psql-limit:
# the sums over their two psql processes); server CPU: every PostgreSQL
# process's utime + stime from /proc, before and after the run. The report's
# first ratio is to psql-limit, as the median of the per-round ratios (both
# measured in the same round). PostgreSQL is a throwaway server on loopback
# with default durability, stopped at exit.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

readonly TABLE=orders_x
readonly SEED=1
readonly LOADERS=(psql-limit psql-copy nomnom-error nomnom-fresh psql-parallel psql-staging nomnom-nothing nomnom-jobs1)

sf=1 rounds=3 jobs="" memory=0 build=1 with_pgloader=0 only_loaders="" baseline_bin=""
bench_options "--rounds --sf --jobs --no-build --keep" "--loaders --baseline-bin" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --memory) memory=1 ;;
    --with-pgloader) with_pgloader=1 ;;
    --loaders) only_loaders=$2; shift ;;
    --baseline-bin) baseline_bin=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
if [ -n "$baseline_bin" ]; then
  [ -x "$baseline_bin" ] || nn_die "--baseline-bin $baseline_bin is not an executable"
  baseline_bin=$(realpath "$baseline_bin")
fi

nomnom_jobs=()
[ -n "$jobs" ] && nomnom_jobs=(--jobs "$jobs")

# ---------------------------------------------------------------- helpers

# timed RSSFILE LOG CMD...: runs CMD under GNU time, appending its output to
# LOG; RSSFILE's last line gets "peak RSS in KB, user s, sys s, minor faults".
timed() {
  local rssfile=$1 log=$2
  shift 2
  /usr/bin/time -f '%M %U %S %R' -o "$rssfile" "$@" >>"$log" 2>&1
}

rss_of() { tail -n 1 "$1"; }

# timed_pair RSSFILE LOG FILE1 FILE2 SQL_PREFIX SQL_SUFFIX: two concurrent psql
# sessions, each running "SQL_PREFIX FILEi SQL_SUFFIX"; RSSFILE gets the sums of
# both processes' figures.
timed_pair() {
  local rssfile=$1 log=$2 prefix=$5 suffix=$6 pids=() status=0 i=0 part
  for part in "$3" "$4"; do
    timed "$rssfile.$i" "$log" psql "${BENCH_PSQL_OPTS[@]}" "$DATABASE_URL" -c "$prefix'$part'$suffix" &
    pids+=($!)
    i=$((i + 1))
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  cat "$rssfile.0" "$rssfile.1" | awk '{ for (i = 1; i <= 4; i++) s[i] += $i }
    END { printf "%d %.2f %.2f %d\n", s[1], s[2], s[3], s[4] }' >"$rssfile"
  return "$status"
}

# ---------------------------------------------------------------- loaders
# load_NAME RSSFILE LOG (NAME with _ for -): loads the data into $TABLE, returns non-zero on failure.

load_psql_copy() {
  timed "$1" "$2" psql "${BENCH_PSQL_OPTS[@]}" "$DATABASE_URL" -c "\\copy $TABLE FROM '$csv' CSV"
}

load_nomnom_error() {
  timed "$1" "$2" "$NOMNOM" load "$ndjson" --on-conflict error --quiet --table "$TABLE" "${nomnom_jobs[@]}"
}

load_nomnom_nothing() {
  timed "$1" "$2" "$NOMNOM" load "$ndjson" --on-conflict nothing --quiet --table "$TABLE" "${nomnom_jobs[@]}"
}

load_nomnom_fresh() {
  timed "$1" "$2" "$NOMNOM" load "$ndjson" --fresh --quiet --table "$TABLE" "${nomnom_jobs[@]}"
}

load_nomnom_jobs1() {
  timed "$1" "$2" "$NOMNOM" load "$ndjson" --on-conflict error --quiet --table "$TABLE" --jobs 1
}

load_base_error() {
  timed "$1" "$2" "$baseline_bin" load "$ndjson" --on-conflict error --quiet --table "$TABLE" "${nomnom_jobs[@]}"
}

load_psql_parallel() {
  timed_pair "$1" "$2" "${csv_parts[0]}" "${csv_parts[1]}" "\\copy $TABLE FROM " " CSV"
}

load_psql_limit() {
  timed_pair "$1" "$2" "${binary_halves[0]}" "${binary_halves[1]}" "\\copy $TABLE FROM " " (FORMAT binary)"
}

# Loads the CSV once into a scratch table and exports its rows as two binary
# COPY files split by a hash of the key (the inputs of psql-limit).
export_binary_halves() {
  local src=${TABLE}_src
  binary_halves=("$BENCH_TMP/orders.half0.bin" "$BENCH_TMP/orders.half1.bin")
  bench_sql "SET client_min_messages = warning; DROP TABLE IF EXISTS $src" >/dev/null
  "$NOMNOM" schema --table "$src" | psql "${BENCH_PSQL_OPTS[@]}" "$DATABASE_URL" >/dev/null
  psql "${BENCH_PSQL_OPTS[@]}" "$DATABASE_URL" -c "\\copy $src FROM '$csv' CSV"
  psql "${BENCH_PSQL_OPTS[@]}" "$DATABASE_URL" \
    -c "\\copy (SELECT * FROM $src WHERE hashtext(order_key) % 2 = 0) TO '${binary_halves[0]}' (FORMAT binary)" \
    -c "\\copy (SELECT * FROM $src WHERE hashtext(order_key) % 2 <> 0) TO '${binary_halves[1]}' (FORMAT binary)"
  bench_sql "DROP TABLE $src; CHECKPOINT" >/dev/null
  nn_log "bench: binary halves for psql-limit: $(du -h "${binary_halves[0]}" | cut -f1) + $(du -h "${binary_halves[1]}" | cut -f1)"
}

load_psql_staging() {
  timed "$1" "$2" psql "${BENCH_PSQL_OPTS[@]}" "$DATABASE_URL" -f "$BENCH_TMP/staging.sql"
}

load_pgloader() {
  timed "$1" "$2" pgloader --root-dir "$BENCH_TMP/pgloader" "$BENCH_TMP/orders.pgl"
}

# Writes the SQL and control files the loaders above read.
prepare_loader_files() {
  cat >"$BENCH_TMP/staging.sql" <<EOF
BEGIN;
CREATE TEMP TABLE s (LIKE $TABLE) ON COMMIT DROP;
\\copy s FROM '$csv' CSV
INSERT INTO $TABLE SELECT * FROM s ON CONFLICT (order_key) DO NOTHING;
COMMIT;
EOF
  [ "$with_pgloader" = 1 ] || return 0
  local columns concurrency=${jobs:-2}
  columns=$("$NOMNOM" schema --table "$TABLE" | sed -n 's/^ *"\([A-Za-z0-9_]*\)" .*/\1/p' | paste -sd, -)
  [ -n "$columns" ] || nn_die "could not read the column list from nomnom schema"
  cat >"$BENCH_TMP/orders.pgl" <<EOF
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
# "NAME ROUND SECONDS RSS_KB USER_S SYS_S MINOR_FAULTS SERVER_CPU_S" to $results.
run_one() {
  local name=$1 round=$2 log="$BENCH_TMP/logs/$2-$1.log" rssfile="$BENCH_TMP/logs/$2-$1.rss"
  local t0 t1 secs rss got pg0 pg1 server user sys faults
  bench_reset_tables "$TABLE"
  pg0=$(bench_pg_ticks_settled)
  t0=$(bench_now)
  if ! "load_${name//-/_}" "$rssfile" "$log"; then
    nn_log "FAILED: $name (round $round) exited non-zero; last lines of its output:"
    tail -n 30 "$log" >&2
    exit 1
  fi
  t1=$(bench_now)
  pg1=$(bench_pg_ticks_settled)
  server=$(bench_ticks_to_s $((pg1 - pg0)))
  secs=$(bench_fsub "$t1" "$t0")
  read -r rss user sys faults < <(rss_of "$rssfile")
  got=$(bench_fingerprint "$TABLE")
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
  echo "$name $round $secs $rss $user $sys $faults $server" >>"$results"
  nn_log "round $round/$rounds $(printf '%-15s' "$name") $(printf '%7.3f' "$secs") s  $(awk -v k="$rss" 'BEGIN { printf "%7.1f", k / 1024 }') MB" \
    " client CPU $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') s, $faults faults, server CPU $server s  (load $(bench_load_average))"
}

# ---------------------------------------------------------------- report

# round_ratio NAME BASE: median over rounds of NAME's time / BASE's time in
# the same round ("-" when either is missing).
round_ratio() {
  awk -v n="$1" -v b="$2" '$1 == n { t[$2] = $3 } $1 == b { u[$2] = $3 }
    END { for (r in t) if ((r in u) && u[r] > 0) print t[r] / u[r] }' "$results" | bench_median
}

# column NAME FIELD [SCALE]: median of a results field for NAME.
column_median() {
  awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$results" | bench_median
}

print_report() {
  local name med min max rss_med rps limit copy cpu faults server base
  base=psql-limit
  [[ " ${loaders[*]} " == *" psql-limit "* ]] || base=psql-copy
  echo
  echo "## nomnom load benchmark: TPC-H orders SF $sf ($rows rows), $rounds round(s)"
  echo
  echo "| loader | median s | min s | max s | × $base (median of per-round ratios) | × psql-copy | client CPU s (user+sys) | client minor faults | server CPU s | peak client RSS (MB) | rows/s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for name in "${loaders[@]}"; do
    read -r med min max < <(awk -v n="$name" '$1 == n { print $3 }' "$results" | bench_stats)
    rss_med=$(awk -v n="$name" '$1 == n { print $4 / 1024 }' "$results" | bench_median)
    cpu=$(awk -v n="$name" '$1 == n { print $5 + $6 }' "$results" | bench_median)
    faults=$(column_median "$name" 7)
    server=$(column_median "$name" 8)
    rps=$(awk -v r="$rows" -v s="$med" 'BEGIN { printf "%.0f", r / s }')
    limit=$(round_ratio "$name" "$base")
    copy=$(round_ratio "$name" psql-copy)
    case "$name" in
      nomnom-nothing) copy="$(round_ratio "$name" psql-staging) × psql-staging" ;;
    esac
    printf '| %s | %.2f | %.2f | %.2f | %s | %s | %.2f | %.0f | %.2f | %.1f | %s |\n' "$name" "$med" "$min" "$max" \
      "$(fmt_ratio "$limit")" "$(fmt_ratio "$copy")" "$cpu" "$faults" "$server" "$rss_med" "$rps"
  done
  echo
  echo "Inputs: orders.ndjson $(du -h "$ndjson" | cut -f1), orders.csv $(du -h "$csv" | cut -f1), seed $SEED." \
    "nomnom: ${nomnom_jobs[*]:-default --jobs}." \
    "Every run into a fresh empty table with its primary key, after CHECKPOINT;" \
    "row count and content fingerprint verified after each run." \
    "Client figures from GNU time (sums over both psql processes for psql-parallel and psql-limit);" \
    "server CPU: all PostgreSQL processes, from /proc."
  [ -z "$baseline_bin" ] || echo "base-error: $baseline_bin."
  echo
  bench_machine_facts no-nats
}

# fmt_ratio R: "1.23" with 2 decimals, or R unchanged when it is not a number.
fmt_ratio() {
  case "$1" in
    "" | "-") echo "-" ;;
    *" "*) awk -v r="${1%% *}" -v rest="${1#* }" 'BEGIN { if (r == "-") print "-"; else printf "%.2f %s\n", r, rest }' ;;
    *) awk -v r="$1" 'BEGIN { printf "%.2f\n", r }' ;;
  esac
}

# ---------------------------------------------------------------- modes

gen_orders() { # gen_orders SF FORMAT FILE
  "$NOMNOM" gen tpch orders --sf "$1" --seed "$SEED" --format "$2" -o "$3"
}

bench_mode() {
  ndjson="$BENCH_TMP/orders.ndjson" csv="$BENCH_TMP/orders.csv"
  nn_log "bench: generating TPC-H orders SF $sf (seed $SEED) as NDJSON and CSV"
  gen_orders "$sf" ndjson "$ndjson"
  gen_orders "$sf" csv "$csv"
  rows=$(wc -l <"$ndjson")
  local csv_rows
  csv_rows=$(wc -l <"$csv")
  [ "$rows" -gt 0 ] || nn_die "generated no rows"
  # One row a line in both files (no embedded newlines), which the line split needs.
  [ "$csv_rows" = "$rows" ] || nn_die "NDJSON has $rows lines but CSV $csv_rows"
  split -n l/2 "$csv" "$BENCH_TMP/orders.part."
  csv_parts=("$BENCH_TMP"/orders.part.*)
  nn_log "bench: $rows rows; NDJSON $(du -h "$ndjson" | cut -f1), CSV $(du -h "$csv" | cut -f1), split into ${#csv_parts[@]} parts"

  if [ -n "$only_loaders" ]; then
    read -r -a loaders <<<"$only_loaders"
    local l
    for l in "${loaders[@]}"; do
      declare -F "load_${l//-/_}" >/dev/null || nn_die "unknown loader $l (see --help)"
    done
  else
    loaders=("${LOADERS[@]}")
  fi
  [ -z "$baseline_bin" ] || [[ " ${loaders[*]} " == *" base-error "* ]] || loaders+=(base-error)
  if [ "$with_pgloader" = 1 ]; then
    if command -v pgloader >/dev/null; then
      loaders+=(pgloader)
    else
      nn_log "bench: pgloader not installed (scripts/deps.sh --bench installs it); skipping it"
    fi
  fi

  NN_PG_DURABLE=1 nn_start_postgres
  prepare_loader_files
  [[ " ${loaders[*]} " != *" psql-limit "* ]] || export_binary_halves
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
  local msf rss user sys faults secs t0 t1 got out="$BENCH_TMP/memory.txt" start=$SECONDS
  NN_PG_DURABLE=1 nn_start_postgres
  for msf in 0.5 5; do
    ndjson="$BENCH_TMP/orders-sf$msf.ndjson"
    nn_log "memory: generating SF $msf"
    gen_orders "$msf" ndjson "$ndjson"
    rows=$(wc -l <"$ndjson")
    local size
    size=$(du -h "$ndjson" | cut -f1)
    bench_reset_tables "$TABLE"
    nn_log "memory: nomnom load SF $msf ($rows rows, $size)"
    t0=$(bench_now)
    if ! load_nomnom_error "$BENCH_TMP/logs/memory-$msf.rss" "$BENCH_TMP/logs/memory-$msf.log"; then
      nn_log "FAILED: nomnom load SF $msf exited non-zero; last lines of its output:"
      tail -n 30 "$BENCH_TMP/logs/memory-$msf.log" >&2
      exit 1
    fi
    t1=$(bench_now)
    secs=$(bench_fsub "$t1" "$t0")
    read -r rss user sys faults < <(rss_of "$BENCH_TMP/logs/memory-$msf.rss")
    got=$(bench_sql "SELECT count(*) FROM $TABLE")
    [ "$got" = "$rows" ] || nn_die "nomnom load SF $msf left $got rows in $TABLE, expected $rows"
    nn_log "memory: SF $msf: $secs s, peak RSS $((rss / 1024)) MB"
    echo "$msf $rows $size $secs $rss $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') $faults" >>"$out"
    rm -f "$ndjson"
  done
  nn_log "memory: done in $(nn_duration $((SECONDS - start)))"

  echo
  echo "## nomnom load memory check (--on-conflict error, ${nomnom_jobs[*]:-default --jobs})"
  echo
  echo "| SF | rows | NDJSON size | seconds | rows/s | nomnom peak RSS (MB) | client CPU s | client minor faults |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk '{ printf "| %s | %s | %s | %.2f | %.0f | %.1f | %s | %s |\n", $1, $2, $3, $4, $2 / $4, $5 / 1024, $6, $7 }' "$out"
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
  bench_machine_facts no-nats
}

# ---------------------------------------------------------------- main

bench_prepare "$build" psql
nn_on_exit bench_cleanup
results="$BENCH_TMP/results.txt"
reference_fingerprint="" reference_run=""

# Load average just before the measurements (after any build).
BENCH_LOAD_BEFORE=$(bench_load_average) BENCH_STARTED=$(date -u "+%Y-%m-%d %H:%M:%S UTC")
if [ "$memory" = 1 ]; then
  memory_mode
else
  bench_mode
fi
