#!/usr/bin/env bash
# Worker fetch-size sweep: how fast `nomnom worker` drains a JetStream stream
# into PostgreSQL for different --fetch-batch values and message sizes. Prints
# a markdown report (logs go to stderr, the report to stdout).
#
# Usage: scripts/bench-fetch.sh [options]
#   --rounds N            rounds, alternating the fetch sizes within a round (default 3)
#   --fetch L             --fetch-batch values, e.g. "10 100 1000" (default)
#   --cases L             CHUNK_ROWS:ROWS pairs, e.g. "1000:450000 100:450000 1:20000"
#                         (default): the publisher's --chunk-rows (rows per
#                         message) and how many TPC-H orders rows to publish
#   --fetch-max-bytes B   the worker's --fetch-max-bytes (default 50331648, just
#                         under nats-server's 64 MiB per-client max_pending: a
#                         larger fetch can make the server drop the worker as a
#                         slow consumer, see bench/README.md)
#   --idle-exit-ms MS     the worker's --idle-exit-ms (default 1500)
#   --timeout S           fail a run whose rows are not all committed after S s (default 900)
#   --no-build            skip scripts/deps.sh --bench and scripts/build.sh
#   --keep                keep the temp dir (data, logs, raw results) at exit
#   -h, --help            this text
#
# Every run: a fresh nats-server (empty store, fresh stream), a fresh empty
# `orders` table (ledger and dead letters dropped, CHECKPOINT), then the rows
# are published with `nomnom load --via-nats --chunk-rows C` (not timed), then
# `nomnom worker --threads 1 --fetch-batch N --fetch-max-bytes B --idle-exit-ms MS`
# (one thread: one fetch at a time, so the fetch size alone varies) is started and timed from its start (connecting included) until the last row is
# committed (the ledger polled every 20 ms, as in bench-queue.sh). Rows per
# transaction = messages per fetch × rows per message, capped by B.
# Checks after every run (the script fails otherwise): the stream holds every
# published chunk, the worker committed every row once (no redelivery
# skipped, no dead letter), one ledger row per chunk, and the table holds
# exactly the published rows with the same content fingerprint for all runs of
# a case. nats-server's log is searched for slow-consumer events.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

readonly TABLE=orders
readonly SEED=1

rounds=3 fetch_list="10 100 1000" cases="1000:450000 100:450000 1:20000" max_bytes=50331648
idle_exit_ms=1500 timeout=900 build=1
bench_options "--rounds --no-build --keep" "--fetch --cases --fetch-max-bytes --idle-exit-ms --timeout" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --fetch) fetch_list=$2; shift ;;
    --cases) cases=$2; shift ;;
    --fetch-max-bytes) max_bytes=$2; shift ;;
    --idle-exit-ms) idle_exit_ms=$2; shift ;;
    --timeout) timeout=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
nn_need_int --fetch-max-bytes 0 "$max_bytes"
nn_need_int --idle-exit-ms 1 "$idle_exit_ms"
nn_need_int --timeout 1 "$timeout"
read -r -a fetches <<<"$fetch_list"
read -r -a case_list <<<"$cases"
[ $((${#fetches[@]} * ${#case_list[@]})) -gt 0 ] || nn_die "--fetch and --cases need at least one value"
max_rows=0
nn_need_int --fetch 1 "${fetches[@]}"
for c in "${case_list[@]}"; do
  [[ $c =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] || nn_die "--cases: '$c' is not CHUNK_ROWS:ROWS"
  [ "${c#*:}" -le "$max_rows" ] || max_rows=${c#*:}
done

# ---------------------------------------------------------------- runs


slow_consumers() { grep -c 'Slow Consumer' "$NN_NATS_DIR/server.log" 2>/dev/null || true; }

fail_run() {
  nn_log "FAILED: $1; logs in $run_dir (kept)"
  BENCH_KEEP=1
  local slow
  slow=$(slow_consumers)
  [ "${slow:-0}" = 0 ] || nn_log "nats-server logged $slow slow-consumer event(s): $(grep -m1 'Slow Consumer' "$NN_NATS_DIR/server.log")"
  bench_dump_logs "$run_dir"
  exit 1
}

# run_one CASE FETCH ROUND
run_one() {
  local case=$1 fetch=$2 round=$3 chunk_rows=${1%%:*} nrows=${1#*:} name
  name="c$chunk_rows-r$nrows-f$fetch"
  local input="$BENCH_TMP/orders-$nrows.ndjson" worker_pid="" poller_pid="" t0 t_end pg0 pg1 nats0 nats1
  run_dir="$BENCH_TMP/logs/$round-$name"
  mkdir -p "$run_dir"
  bench_fresh_nats
  bench_reset_tables "$TABLE"

  # Publish (not timed).
  /usr/bin/time -f '%e %U %S %M' -o "$run_dir/publish.time" \
    "$NOMNOM" load "$input" --via-nats --chunk-rows "$chunk_rows" --json >"$run_dir/publish.json" 2>"$run_dir/publish.log" \
    || fail_run "$name (round $round): nomnom load --via-nats exited non-zero"
  local pub_rows pub_chunks pub_rejected stream_msgs
  read -r pub_rows pub_chunks pub_rejected < <(jq -r '"\(.published_rows) \(.published_chunks) \(.rejected)"' "$run_dir/publish.json")
  [ "$pub_rows $pub_rejected" = "$nrows 0" ] \
    || fail_run "$name (round $round): published $pub_rows rows ($pub_rejected rejected), expected $nrows"
  read -r stream_msgs _ < <(bench_stream_state MESSAGES)
  [ "$stream_msgs" = "$pub_chunks" ] || fail_run "$name (round $round): the stream holds $stream_msgs messages, $pub_chunks were published"
  bench_sql CHECKPOINT >/dev/null

  pg0=$(bench_pg_ticks_settled) nats0=$(bench_proc_ticks "$NN_NATS_PID")
  bench_spawn poller_pid bench_commit_poller "$nrows" "$timeout" "$run_dir/poller.log"
  t0=$(bench_now)
  bench_spawn worker_pid /usr/bin/time -f '%e %U %S %M' -o "$run_dir/worker.time" \
    "$NOMNOM" worker --threads 1 --fetch-batch "$fetch" --fetch-max-bytes "$max_bytes" --idle-exit-ms "$idle_exit_ms" --json \
    >"$run_dir/worker.json" 2>"$run_dir/worker.log"
  bench_wait_commit "$poller_pid" "$worker_pid" || fail_run "$name (round $round): not every row was committed"
  t_end=$(bench_poller_result "$run_dir/poller.log") || fail_run "$name (round $round): no commit time from the poller"
  pg1=$(bench_pg_ticks_settled) nats1=$(bench_proc_ticks "$NN_NATS_PID")
  bench_wait_worker "$worker_pid" || fail_run "$name (round $round): the worker exited non-zero"

  local w_rows w_msgs w_dead w_dead_msgs w_dups ledger dead got
  read -r w_rows w_msgs w_dead w_dead_msgs w_dups < <(jq -r \
    '"\(.rows_committed) \(.messages_committed) \(.rows_dead) \(.messages_dead) \(.redeliveries_skipped)"' "$run_dir/worker.json")
  [ "$w_rows $w_msgs $w_dead $w_dead_msgs $w_dups" = "$nrows $pub_chunks 0 0 0" ] \
    || fail_run "$name (round $round): worker committed $w_rows rows in $w_msgs messages (dead $w_dead rows, $w_dead_msgs messages, $w_dups redeliveries skipped); expected $nrows rows in $pub_chunks messages"
  ledger=$(bench_sql "SELECT count(*) || ' ' || count(DISTINCT msg_id) || ' ' || sum(rows_committed) || ' ' || sum(rows_dead) FROM nomnom_ledger")
  [ "$ledger" = "$pub_chunks $pub_chunks $nrows 0" ] \
    || fail_run "$name (round $round): ledger (chunks, distinct ids, rows, dead) = $ledger, expected $pub_chunks $pub_chunks $nrows 0"
  dead=$(bench_sql "SELECT count(*) FROM nomnom_dead_letters")
  [ "$dead" = 0 ] || fail_run "$name (round $round): $dead dead letters"
  got=$(bench_fingerprint "$TABLE")
  [ "${got%% *}" = "$nrows" ] || fail_run "$name (round $round): $TABLE holds ${got%% *} rows, expected $nrows"
  if [ -z "${fingerprints[$nrows]:-}" ]; then
    fingerprints[$nrows]=$got
  elif [ "${fingerprints[$nrows]}" != "$got" ]; then
    fail_run "$name (round $round): table contents differ from an earlier run's (fingerprint $got vs ${fingerprints[$nrows]})"
  fi

  local secs worker_cpu pub_wall slow
  secs=$(bench_fsub "$t_end" "$t0")
  read -r _ worker_cpu _ < <(bench_time_of "$run_dir/worker.time")
  read -r pub_wall _ _ < <(bench_time_of "$run_dir/publish.time")
  slow=$(slow_consumers)
  # case fetch round secs chunks worker_cpu pg_cpu nats_cpu slow_consumers publish_s
  echo "$case $fetch $round $secs $pub_chunks $worker_cpu $(bench_ticks_to_s $((pg1 - pg0)))" \
    "$(bench_ticks_to_s $((nats1 - nats0))) ${slow:-0} $pub_wall" >>"$results"
  nn_log "round $round/$rounds chunk-rows $chunk_rows, $nrows rows ($pub_chunks msgs), fetch $fetch:" \
    "$(printf '%7.3f' "$secs") s, $(awk -v r="$nrows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }') rows/s" \
    "(load $(bench_load_average))"
}

# ---------------------------------------------------------------- report

print_report() {
  local case fetch chunk_rows nrows med min max chunks msg_bytes per_fetch wcpu pcpu ncpu slow
  echo
  echo "## Worker fetch-size sweep, $rounds round(s)"
  echo
  echo "| rows per message (--chunk-rows) | rows | messages | --fetch-batch | ≈ rows per fetch (transaction) | median s | min s | max s | rows/s | messages/s | worker CPU s | PostgreSQL CPU s | nats-server CPU s |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for case in "${case_list[@]}"; do
    chunk_rows=${case%%:*} nrows=${case#*:}
    for fetch in "${fetches[@]}"; do
      read -r med min max < <(awk -v c="$case" -v f="$fetch" '$1 == c && $2 == f { print $4 }' "$results" | bench_stats)
      chunks=$(awk -v c="$case" -v f="$fetch" '$1 == c && $2 == f { print $5 }' "$results" | bench_median)
      wcpu=$(awk -v c="$case" -v f="$fetch" '$1 == c && $2 == f { print $6 }' "$results" | bench_median)
      pcpu=$(awk -v c="$case" -v f="$fetch" '$1 == c && $2 == f { print $7 }' "$results" | bench_median)
      ncpu=$(awk -v c="$case" -v f="$fetch" '$1 == c && $2 == f { print $8 }' "$results" | bench_median)
      msg_bytes=$(awk -v b="${input_bytes[$nrows]}" -v c="$chunks" 'BEGIN { print b / c }')
      per_fetch=$(awk -v n="$fetch" -v c="$chunks" -v r="$nrows" -v mb="$msg_bytes" -v max="$max_bytes" 'BEGIN {
        m = n; if (max > 0 && m * mb > max) m = int(max / mb); if (m < 1) m = 1
        if (m > c) m = c
        printf "%.0f", m * r / c }')
      printf '| %s | %s | %.0f | %s | %s | %.2f | %.2f | %.2f | %.0f | %.0f | %.2f | %.2f | %.2f |\n' \
        "$chunk_rows" "$nrows" "$chunks" "$fetch" "$per_fetch" "$med" "$min" "$max" \
        "$(awk -v r="$nrows" -v s="$med" 'BEGIN { print r / s }')" \
        "$(awk -v r="$chunks" -v s="$med" 'BEGIN { print r / s }')" "$wcpu" "$pcpu" "$ncpu"
    done
  done
  slow=$(awk '{ s += $9 } END { print s + 0 }' "$results")
  echo
  echo "Time: worker start → last row committed (ledger polled every 20 ms); the rows were published before" \
    "(not timed) to a fresh stream. Worker: 1 thread, --fetch-max-bytes $max_bytes, --on-conflict nothing," \
    "--idle-exit-ms $idle_exit_ms. CPU seconds over the timed part (worker: GNU time of the whole process)." \
    "nats-server slow-consumer events in all runs: $slow. Counts, ledger and content verified after every run."
  echo
  bench_machine_facts nats
}

# ---------------------------------------------------------------- main

bench_prepare "$build"
nn_on_exit bench_cleanup
results="$BENCH_TMP/results.txt"
run_dir=""
declare -A fingerprints=() input_bytes=()

sf=$(awk -v r="$max_rows" 'BEGIN { s = r / 1500000; c = int(s * 100 + 0.999999) / 100; printf "%.2f", c }')
nn_log "bench-fetch: generating TPC-H orders SF $sf (seed $SEED) for up to $max_rows rows"
"$NOMNOM" gen tpch orders --sf "$sf" --seed "$SEED" -o "$BENCH_TMP/orders-all.ndjson"
for c in "${case_list[@]}"; do
  nrows=${c#*:}
  [ -f "$BENCH_TMP/orders-$nrows.ndjson" ] && continue
  head -n "$nrows" "$BENCH_TMP/orders-all.ndjson" >"$BENCH_TMP/orders-$nrows.ndjson"
  got=$(wc -l <"$BENCH_TMP/orders-$nrows.ndjson")
  [ "$got" = "$nrows" ] || nn_die "generated only $got rows, $nrows needed"
  input_bytes[$nrows]=$(stat -c %s "$BENCH_TMP/orders-$nrows.ndjson")
done
rm -f "$BENCH_TMP/orders-all.ndjson"

NN_PG_DURABLE=1 nn_start_postgres
export DATABASE_URL
BENCH_LOAD_BEFORE=$(bench_load_average) BENCH_STARTED=$(date -u "+%Y-%m-%d %H:%M:%S UTC")
start=$SECONDS
for ((round = 1; round <= rounds; round++)); do
  for c in "${case_list[@]}"; do
    for n in "${fetches[@]}"; do
      run_one "$c" "$n" "$round"
    done
  done
done
nn_log "bench-fetch: ${#case_list[@]} cases x ${#fetches[@]} fetch sizes x $rounds rounds in $(nn_duration $((SECONDS - start)))"
print_report
