#!/usr/bin/env bash
# Benchmarks the JetStream path (`nomnom load --via-nats` + `nomnom worker`)
# against the direct loader on TPC-H orders and prints a markdown report (logs
# go to stderr, the report to stdout).
#
# Usage: scripts/bench-queue.sh [options]
#   --sf X               scale factor of the generated orders (default 1 = 1.5M rows)
#   --rounds N           rounds of all variants, alternating within a round (default 3)
#   --worker-threads L   worker thread counts to run, e.g. "1 2" (default "1 2")
#   --idle-exit-ms MS    the workers' --idle-exit-ms (default 1500)
#   --timeout S          fail a run whose rows are not all committed after S s (default 1800)
#   --commit-end HOW     how the end of a queue run is found: "worker" (default:
#                        the worker's own report of its last commit, read after
#                        it exited by itself) or "poll" (the ledger polled every
#                        20 ms by a PL/pgSQL loop, as before; costs server CPU)
#   --publish-format F   the publisher's --publish-format: binary (the default for
#                        orders: pgcopy1 chunks of COPY tuples) or ndjson (as before)
#   --no-build           skip scripts/deps.sh --bench and scripts/build.sh
#   --keep               keep the temp dir (data, logs, raw results) at exit
#   -h, --help           this text
#
# Each round runs, in this order, each into a fresh empty `orders` table
# (DROP + CREATE from `nomnom schema`, the workers' ledger and dead-letter
# tables dropped, CHECKPOINT, all outside the timed part), and every queue run
# with a fresh nats-server (empty JetStream store, so a fresh stream):
#   direct          nomnom load orders.ndjson --on-conflict nothing
#   queue-seq-wN    nomnom load orders.ndjson --via-nats, then (once it exited)
#                   nomnom worker --threads N --idle-exit-ms MS
#   queue-pipe-wN   the worker is started first (and waited for until it is
#                   connected), then the same publish: the pipelined setup
# The queue's time runs from the start of the publish until the last row is
# committed. By default (--commit-end worker) nothing polls during the run:
# the worker exits by itself after --idle-exit-ms without messages, and its
# --json report says when its last commit returned ("last_commit_unix", the
# system clock, like date +%s.%N); that is the end, so the idle wait is not
# counted. The rows are then counted once (with the checks below). With
# --commit-end poll, one PostgreSQL session reads sum(rows_committed) of the
# ledger (committed in the same transaction as the rows) every 20 ms and takes
# clock_timestamp() when it reaches the row count (bench_commit_poller in
# lib/bench.sh); that loop runs on the server's CPUs during the run.
# "publish" is the publisher's own wall time (rows validated and stored in
# JetStream); "tail" is commit end minus publish end.
# Checks after every run (the script fails otherwise): the table holds exactly
# the generated rows with the same content fingerprint as every other run;
# queue runs also: the publisher stored every row, the stream stored exactly
# the published chunk messages (its last sequence number), the ledger has one row per chunk and the workers
# committed every row once (no redelivery skipped, no dead letter).
# CPU seconds per component: the clients from GNU time, nats-server and
# PostgreSQL (all its processes, reaped backends included) from /proc, from the
# start of the run to its commit end (poll) or to the worker's exit (worker:
# the idle wait after the last commit, in which both are idle, included).
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

readonly TABLE=orders  # the Order entity's table, which the workers write
readonly SEED=1

sf=1 rounds=3 worker_threads="1 2" idle_exit_ms=1500 timeout=1800 build=1 commit_end=worker publish_format=binary
bench_options "--rounds --sf --no-build --keep" "--worker-threads --idle-exit-ms --timeout --commit-end --publish-format" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --worker-threads) worker_threads=$2; shift ;;
    --idle-exit-ms) idle_exit_ms=$2; shift ;;
    --timeout) timeout=$2; shift ;;
    --commit-end) commit_end=$2; shift ;;
    --publish-format) publish_format=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
nn_need_int --idle-exit-ms 1 "$idle_exit_ms"
nn_need_int --timeout 1 "$timeout"
case "$commit_end" in worker|poll) ;; *) nn_die "--commit-end must be worker or poll, not '$commit_end'" ;; esac
read -r -a threads_list <<<"$worker_threads"
[ ${#threads_list[@]} -gt 0 ] || nn_die "--worker-threads needs at least one count"
nn_need_int --worker-threads 1 "${threads_list[@]}"

variants=(direct)
for w in "${threads_list[@]}"; do variants+=("queue-seq-w$w" "queue-pipe-w$w"); done

# ---------------------------------------------------------------- runs


fail_run() {
  nn_log "FAILED: $1; logs in $run_dir (kept)"
  BENCH_KEEP=1
  bench_dump_logs "$run_dir"
  exit 1
}

check_table() {
  local name=$1 got
  got=$(bench_fingerprint "$TABLE")
  [ "${got%% *}" = "$rows" ] || fail_run "$name left ${got%% *} rows in $TABLE, expected $rows"
  if [ -z "$reference_fingerprint" ]; then
    reference_fingerprint=$got reference_run=$name
  elif [ "$got" != "$reference_fingerprint" ]; then
    fail_run "$name: table contents differ from $reference_run's (fingerprint $got vs $reference_fingerprint)"
  fi
}

# run_direct ROUND
run_direct() {
  local round=$1 name=direct t0 t1 pg0 pg1 wall cpu rss
  run_dir="$BENCH_TMP/logs/$round-$name"
  mkdir -p "$run_dir"
  bench_reset_tables "$TABLE"
  pg0=$(bench_pg_ticks_settled)
  t0=$(bench_now)
  /usr/bin/time -f '%e %U %S %M' -o "$run_dir/load.time" \
    "$NOMNOM" load "$ndjson" --on-conflict nothing --quiet >"$run_dir/load.log" 2>&1 \
    || fail_run "$name (round $round): nomnom load exited non-zero"
  t1=$(bench_now)
  pg1=$(bench_pg_ticks_settled)
  read -r _ cpu rss < <(bench_time_of "$run_dir/load.time")
  wall=$(bench_fsub "$t1" "$t0")
  check_table "$name (round $round)"
  # variant round total publish tail client_cpu worker_cpu nats_cpu pg_cpu client_rss_kb
  echo "$name $round $wall - - $cpu - 0 $(bench_ticks_to_s $((pg1 - pg0))) $rss" >>"$results"
  nn_log "round $round/$rounds $(printf '%-14s' "$name") $(printf '%7.3f' "$wall") s" \
    "(load $(bench_load_average))"
}

# run_queue ROUND MODE THREADS   (MODE: seq or pipe)
run_queue() {
  local round=$1 mode=$2 threads=$3 name="queue-$2-w$3"
  local worker_pid="" poller_pid="" t0 t1 t_end pg0 pg1 nats0 nats1 pub_cpu pub_rss worker_cpu
  run_dir="$BENCH_TMP/logs/$round-$name"
  mkdir -p "$run_dir"
  bench_fresh_nats
  bench_reset_tables "$TABLE"
  # (timeout: a worker that never goes idle fails the run rather than hang it)
  local worker_cmd=(timeout "$timeout" "$NOMNOM" worker --threads "$threads" --idle-exit-ms "$idle_exit_ms" --json)
  pg0=$(bench_pg_ticks_settled) nats0=$(bench_proc_ticks "$NN_NATS_PID")
  if [ "$mode" = pipe ]; then
    bench_spawn worker_pid /usr/bin/time -f '%e %U %S %M' -o "$run_dir/worker.time" \
      "${worker_cmd[@]}" >"$run_dir/worker.json" 2>"$run_dir/worker.log"
    # Connected (topology ensured) and past its bookkeeping-table setup.
    local ready=0
    for _ in $(seq 1 300); do
      if grep -q draining "$run_dir/worker.log" 2>/dev/null &&
         [ "$(bench_sql "SELECT to_regclass('public.nomnom_ledger') IS NOT NULL")" = t ]; then
        ready=1
        break
      fi
      kill -0 "$worker_pid" 2>/dev/null || break
      sleep 0.01
    done
    [ "$ready" = 1 ] || fail_run "$name (round $round): the worker did not get ready"
  fi
  if [ "$commit_end" = poll ]; then
    bench_spawn poller_pid bench_commit_poller "$rows" "$timeout" "$run_dir/poller.log"
  fi
  t0=$(bench_now)
  /usr/bin/time -f '%e %U %S %M' -o "$run_dir/publish.time" \
    "$NOMNOM" load "$ndjson" --via-nats --publish-format "$publish_format" --json >"$run_dir/publish.json" 2>"$run_dir/publish.log" \
    || fail_run "$name (round $round): nomnom load --via-nats exited non-zero"
  t1=$(bench_now)
  if [ "$mode" = seq ]; then
    bench_spawn worker_pid /usr/bin/time -f '%e %U %S %M' -o "$run_dir/worker.time" \
      "${worker_cmd[@]}" >"$run_dir/worker.json" 2>"$run_dir/worker.log"
  fi
  if [ "$commit_end" = poll ]; then
    bench_wait_commit "$poller_pid" "$worker_pid" || fail_run "$name (round $round): not every row was committed (poller)"
    t_end=$(bench_poller_result "$run_dir/poller.log") || fail_run "$name (round $round): no commit time from the poller"
    pg1=$(bench_pg_ticks_settled) nats1=$(bench_proc_ticks "$NN_NATS_PID")
    bench_wait_worker "$worker_pid" || fail_run "$name (round $round): the worker exited non-zero"
  else
    bench_wait_worker "$worker_pid" || fail_run "$name (round $round): the worker exited non-zero (or ran past --timeout)"
    pg1=$(bench_pg_ticks_settled) nats1=$(bench_proc_ticks "$NN_NATS_PID")
    t_end=$(jq -r '.last_commit_unix // empty' "$run_dir/worker.json")
    [ -n "$t_end" ] || fail_run "$name (round $round): the worker reported no commit"
  fi

  # Checks.
  local pub_rows pub_chunks pub_rejected w_rows w_msgs w_dead w_dead_msgs w_dups ledger stored dead
  read -r pub_rows pub_chunks pub_rejected < <(jq -r '"\(.published_rows) \(.published_chunks) \(.rejected)"' "$run_dir/publish.json")
  [ "$pub_rows $pub_rejected" = "$rows 0" ] \
    || fail_run "$name (round $round): published $pub_rows rows ($pub_rejected rejected), expected $rows"
  read -r w_rows w_msgs w_dead w_dead_msgs w_dups < <(jq -r \
    '"\(.rows_committed) \(.messages_committed) \(.rows_dead) \(.messages_dead) \(.redeliveries_skipped)"' "$run_dir/worker.json")
  [ "$w_rows $w_msgs $w_dead $w_dead_msgs $w_dups" = "$rows $pub_chunks 0 0 0" ] \
    || fail_run "$name (round $round): worker committed $w_rows rows in $w_msgs messages (dead $w_dead rows, $w_dead_msgs messages, $w_dups redeliveries skipped); expected $rows rows in $pub_chunks messages"
  ledger=$(bench_sql "SELECT count(*) || ' ' || count(DISTINCT msg_id) || ' ' || sum(rows_committed) || ' ' || sum(rows_dead) FROM nomnom_ledger")
  [ "$ledger" = "$pub_chunks $pub_chunks $rows 0" ] \
    || fail_run "$name (round $round): ledger (chunks, distinct ids, rows, dead) = $ledger, expected $pub_chunks $pub_chunks $rows 0"
  dead=$(bench_sql "SELECT count(*) FROM nomnom_dead_letters")
  [ "$dead" = 0 ] || fail_run "$name (round $round): $dead dead letters"
  read -r _ stored < <(bench_stream_state MESSAGES)
  [ "$stored" = "$pub_chunks" ] || fail_run "$name (round $round): the stream stored $stored messages, $pub_chunks were published"
  check_table "$name (round $round)"

  read -r _ pub_cpu pub_rss < <(bench_time_of "$run_dir/publish.time")
  read -r _ worker_cpu _ < <(bench_time_of "$run_dir/worker.time")
  local total publish tail
  total=$(bench_fsub "$t_end" "$t0") publish=$(bench_fsub "$t1" "$t0") tail=$(bench_fsub "$t_end" "$t1")
  echo "$name $round $total $publish $tail $pub_cpu $worker_cpu $(bench_ticks_to_s $((nats1 - nats0)))" \
    "$(bench_ticks_to_s $((pg1 - pg0))) $pub_rss $pub_chunks" >>"$results"
  nn_log "round $round/$rounds $(printf '%-14s' "$name") $(printf '%7.3f' "$total") s" \
    "(publish $publish s, tail $tail s, $pub_chunks chunks; load $(bench_load_average))"
}

# ---------------------------------------------------------------- report

# round_ratio_median VARIANT: the median over rounds of VARIANT's time / the
# direct load's time in the same round.
round_ratio_median() {
  awk -v n="$1" '$1 == "direct" { d[$2] = $3 } $1 == n { q[$2] = $3 }
    END { for (r in q) if (r in d) print q[r] / d[r] }' "$results" | bench_median
}

col_median() { # col_median VARIANT COLUMN
  awk -v n="$1" -v c="$2" '$1 == n && $c != "-" { print $c }' "$results" | bench_median
}

print_report() {
  local name med min max ratio pub tail
  echo
  echo "## Queue benchmark: TPC-H orders SF $sf ($rows rows), $rounds round(s)"
  echo
  echo "| variant | median s | min s | max s | queue / direct (median of per-round ratios) | rows/s | publish s (median) | tail after publish s (median) |"
  echo "|---|---:|---:|---:|---|---:|---:|---:|"
  for name in "${variants[@]}"; do
    read -r med min max < <(awk -v n="$name" '$1 == n { print $3 }' "$results" | bench_stats)
    if [ "$name" = direct ]; then
      ratio="(baseline)" pub="-" tail="-"
    else
      ratio=$(awk -v r="$(round_ratio_median "$name")" 'BEGIN { printf "%.2f (%s)", r, r <= 1.2 ? "target ≤ 1.2 met" : "target ≤ 1.2 NOT met" }')
      pub=$(col_median "$name" 4) tail=$(col_median "$name" 5)
    fi
    printf '| %s | %.2f | %.2f | %.2f | %s | %.0f | %s | %s |\n' "$name" "$med" "$min" "$max" "$ratio" \
      "$(awk -v r="$rows" -v s="$med" 'BEGIN { print r / s }')" "$pub" "$tail"
  done
  echo
  echo "CPU seconds per run (medians): clients from GNU time (user+sys); nats-server and all PostgreSQL processes from /proc over the run."
  echo
  echo "| variant | loader / publisher | worker | nats-server | PostgreSQL | sum | sum / (wall × $(nproc) CPUs) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for name in "${variants[@]}"; do
    local c w n p sum
    c=$(col_median "$name" 6) w=$(col_median "$name" 7) n=$(col_median "$name" 8) p=$(col_median "$name" 9)
    [ "$w" = - ] || w=$(printf '%.2f' "$w")
    sum=$(awk -v a="$c" -v b="$w" -v c="$n" -v d="$p" 'BEGIN { printf "%.2f", a + (b == "-" ? 0 : b) + c + d }')
    med=$(col_median "$name" 3)
    printf '| %s | %.2f | %s | %.2f | %.2f | %.2f | %s |\n' "$name" "$c" "$w" "$n" "$p" "$sum" \
      "$(awk -v s="$sum" -v t="$med" -v n="$(nproc)" 'BEGIN { printf "%.0f%%", 100 * s / (t * n) }')"
  done
  echo
  echo "Input: orders.ndjson $(du -h "$ndjson" | cut -f1), seed $SEED; publisher: default --jobs 2, --publish-format $publish_format, --chunk-rows 1000" \
    "($(col_median queue-seq-w"${threads_list[0]}" 11 | xargs printf '%.0f') chunk messages); workers: --fetch-batch 100 (default)," \
    "--on-conflict nothing (default), --idle-exit-ms $idle_exit_ms. Queue time = publish start → last row committed" \
    "($([ "$commit_end" = poll ] && echo "ledger polled every 20 ms" || echo "the worker's report of its last commit; rows counted once at the end")). Every run into a fresh table and a fresh stream; counts, ledger, stream and" \
    "content fingerprint verified after each run."
  echo
  bench_machine_facts nats
}

# ---------------------------------------------------------------- main

bench_prepare "$build"
nn_on_exit bench_cleanup
results="$BENCH_TMP/results.txt"
ndjson="$BENCH_TMP/orders.ndjson"
reference_fingerprint="" reference_run="" run_dir=""

nn_log "bench-queue: generating TPC-H orders SF $sf (seed $SEED)"
"$NOMNOM" gen tpch orders --sf "$sf" --seed "$SEED" -o "$ndjson"
rows=$(wc -l <"$ndjson")
[ "$rows" -gt 0 ] || nn_die "generated no rows"
nn_log "bench-queue: $rows rows, $(du -h "$ndjson" | cut -f1); variants: ${variants[*]}"

NN_PG_DURABLE=1 nn_start_postgres
export DATABASE_URL
BENCH_LOAD_BEFORE=$(bench_load_average) BENCH_STARTED=$(date -u "+%Y-%m-%d %H:%M:%S UTC")
start=$SECONDS
for ((round = 1; round <= rounds; round++)); do
  for name in "${variants[@]}"; do
    case "$name" in
      direct) run_direct "$round" ;;
      queue-seq-w*) run_queue "$round" seq "${name#queue-seq-w}" ;;
      queue-pipe-w*) run_queue "$round" pipe "${name#queue-pipe-w}" ;;
    esac
  done
done
nn_log "bench-queue: ${#variants[@]} variants x $rounds rounds in $(nn_duration $((SECONDS - start)))"
print_report
