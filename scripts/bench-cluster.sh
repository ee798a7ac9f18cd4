#!/usr/bin/env bash
# Scale-out benchmark against a 3-node JetStream cluster (R3 streams) and
# prints a markdown report (logs go to stderr, the report to stdout).
#
# Usage: scripts/bench-cluster.sh [options]
#   --sf X             scale factor of the generated orders (default 0.2 = 300,000 rows)
#   --rounds N         rounds of all variants, alternating within a round (default 3)
#   --workers L        worker process counts (default "1 2 4"), each `nomnom worker --threads 1`
#   --api-seconds S    seconds of wrk per API run (default 10)
#   --connections C    wrk -c for the API runs (default 256)
#   --no-build         skip scripts/deps.sh --bench and scripts/build.sh
#   --keep             keep the temp dir (data, logs, raw results) at exit
#   -h, --help         this text
#
# Variants, each with a fresh 3-node cluster (empty stores) and a fresh
# `orders` table (ledger and dead letters dropped):
#   workers-K  the rows are published first (`nomnom load --via-nats
#              --stream-replicas 3`, not timed), then K `nomnom worker`
#              processes (one thread each, each given the three URLs) are
#              started at once; the time runs until the ledger's committed row
#              count reaches the row count (one polling session, see
#              bench_commit_poller). Checks: every row committed once (table
#              count and distinct keys), no dead letter.
#   api-R1, api-R3
#              one API-only nomnomd (--workers 0) with --stream-replicas R
#              against the cluster; wrk -t2 -c C POSTs the same order to
#              /ingest/message for S s; the accepted rate counts 2xx answers
#              only (wrk's total minus its non-2xx count); nomnomd's own
#              count of accepted messages (/metrics) must not be lower.
# CPU seconds per process group: workers from GNU time, the three
# nats-servers and PostgreSQL (all its processes) from /proc, nomnomd from
# /proc. On a 2-core machine these runs measure contention (every process
# shares the same two CPUs), not scale-out: the per-row CPU costs are what a
# sizing argument can use (bench/README.md).
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

readonly TABLE=orders

sf=0.2 rounds=3 workers_list="1 2 4" api_seconds=10 connections=256 build=1
bench_options "--rounds --sf --no-build --keep" "--workers --api-seconds --connections" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers_list=$2; shift ;;
    --api-seconds) api_seconds=$2; shift ;;
    --connections) connections=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
nn_need_int --api-seconds 1 "$api_seconds"
nn_need_int --connections 1 "$connections"
read -r -a worker_counts <<<"$workers_list"
nn_need_int --workers 1 "${worker_counts[@]}"

# ---------------------------------------------------------------- the cluster
CL_PID=() CL_PORT=() CL_MPORT=() CL_DIR=""
cluster_stop() {
  local p
  for p in "${CL_PID[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${CL_PID[@]}"; do wait "$p" 2>/dev/null || true; done
  CL_PID=()
  [ -z "$CL_DIR" ] || rm -rf "$CL_DIR"
  CL_DIR=""
}
cluster_ticks() {
  local p total=0
  for p in "${CL_PID[@]}"; do total=$((total + $(bench_proc_ticks "$p"))); done
  echo "$total"
}
# cluster_start: three fresh servers; tried again on new ports when a server
# dies at start (a free port taken in between).
cluster_start() {
  local attempt
  for attempt in 1 2 3 4 5; do
    cluster_try_start && return 0
    nn_log "cluster start attempt $attempt failed: $(grep -h FTL "$CL_DIR"/n*.log | head -n 1)"
  done
  tail -n 5 "$CL_DIR"/n*.log >&2
  nn_die "the 3-node JetStream cluster did not form"
}
cluster_try_start() {
  cluster_stop
  CL_DIR=$(mktemp -d "$BENCH_TMP/cluster.XXXXXX")
  local i p ports=() routes
  while [ ${#ports[@]} -lt 9 ]; do
    p=$(nn_free_port)
    [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
  done
  CL_PORT=("${ports[@]:0:3}") CL_MPORT=("${ports[@]:3:3}")
  local rport=("${ports[@]:6:3}")
  routes="nats://127.0.0.1:${rport[0]},nats://127.0.0.1:${rport[1]},nats://127.0.0.1:${rport[2]}"
  for i in 0 1 2; do
    nats-server -a 127.0.0.1 -p "${CL_PORT[$i]}" -m "${CL_MPORT[$i]}" -js -sd "$CL_DIR/n$i" \
      --server_name "n$i" --cluster_name nomnom-bench --cluster "nats://127.0.0.1:${rport[$i]}" \
      --routes "$routes" >>"$CL_DIR/n$i.log" 2>&1 &
    CL_PID[i]=$!
  done
  NATS_URLS="nats://127.0.0.1:${CL_PORT[0]},nats://127.0.0.1:${CL_PORT[1]},nats://127.0.0.1:${CL_PORT[2]}"
  # Formed once the meta leader lists both other peers as current.
  local deadline=$((SECONDS + 60))
  while :; do
    for i in 0 1 2; do
      kill -0 "${CL_PID[$i]}" 2>/dev/null || return 1
    done
    for i in 0 1 2; do
      if curl -sf -m 2 "http://127.0.0.1:${CL_MPORT[$i]}/jsz" 2>/dev/null |
        jq -e '[.meta_cluster.replicas[]? | select(.current)] | length == 2' >/dev/null; then
        return 0
      fi
    done
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}
trap 'cluster_stop; bench_cleanup' EXIT

fail_run() {
  nn_log "FAILED: $1; logs in $run_dir (kept)"
  BENCH_KEEP=1
  bench_dump_logs "$run_dir"
  exit 1
}

# run_workers ROUND K
run_workers() {
  local round=$1 k=$2 name="workers-$2" i t0 t_end pg0 pg1 nats0 nats1 poller_pid pids=() cpu=0 c got
  run_dir="$BENCH_TMP/logs/$round-$name"
  mkdir -p "$run_dir"
  cluster_start
  bench_reset_tables "$TABLE"
  "$NOMNOM" load "$ndjson" --via-nats --nats "$NATS_URLS" --stream-replicas 3 --stream-max-mb 16384 --json \
    >"$run_dir/publish.json" 2>"$run_dir/publish.log" || fail_run "$name: publish failed"
  [ "$(jq -r .published_rows "$run_dir/publish.json")" = "$rows" ] || fail_run "$name: not every row published"
  pg0=$(bench_pg_ticks_settled) nats0=$(cluster_ticks)
  bench_spawn poller_pid bench_commit_poller "$rows" 1800 "$run_dir/poller.log"
  t0=$(bench_now)
  for i in $(seq 1 "$k"); do
    local pid
    bench_spawn pid /usr/bin/time -f '%e %U %S %M' -o "$run_dir/worker-$i.time" \
      "$NOMNOM" worker --threads 1 --idle-exit-ms 1500 --nats "$NATS_URLS" --stream-replicas 3 --stream-max-mb 16384 --json \
      >"$run_dir/worker-$i.json" 2>"$run_dir/worker-$i.log"
    pids+=("$pid")
  done
  # Until the poller saw every row: a worker that exits before fails the run.
  local waiting=("$poller_pid" "${pids[@]}") first st keep p
  while :; do
    st=0 first=""
    wait -n -p first "${waiting[@]}" || st=$?
    [ "$first" != "$poller_pid" ] || { [ "$st" = 0 ] || fail_run "$name: not every row was committed"; break; }
    [ "$st" = 0 ] || fail_run "$name: worker (pid $first) exited with status $st"
    keep=()
    for p in "${waiting[@]}"; do [ "$p" = "$first" ] || keep+=("$p"); done
    waiting=("${keep[@]}")
  done
  t_end=$(bench_poller_result "$run_dir/poller.log") || fail_run "$name: no commit time"
  pg1=$(bench_pg_ticks_settled) nats1=$(cluster_ticks)
  for pid in "${waiting[@]:1}"; do wait "$pid" || fail_run "$name: a worker exited non-zero"; done
  for i in $(seq 1 "$k"); do
    read -r _ c _ < <(bench_time_of "$run_dir/worker-$i.time")
    cpu=$(awk -v a="$cpu" -v b="$c" 'BEGIN { printf "%.2f", a + b }')
  done
  got=$(bench_sql "SELECT count(*) || ' ' || count(DISTINCT order_key) FROM $TABLE")
  [ "$got" = "$rows $rows" ] || fail_run "$name: table has $got (rows, distinct keys), expected $rows $rows"
  [ "$(bench_sql 'SELECT count(*) FROM nomnom_dead_letters')" = 0 ] || fail_run "$name: dead letters"
  local wall
  wall=$(bench_fsub "$t_end" "$t0")
  # variant round seconds rate client_cpu nats_cpu pg_cpu
  echo "$name $round $wall $(awk -v r="$rows" -v w="$wall" 'BEGIN { printf "%.0f", r / w }') $cpu" \
    "$(bench_ticks_to_s $((nats1 - nats0))) $(bench_ticks_to_s $((pg1 - pg0)))" >>"$results"
  nn_log "round $round/$rounds $(printf '%-10s' "$name") $wall s (load $(bench_load_average))"
  cluster_stop
}

# run_api ROUND R
run_api() {
  local round=$1 r=$2 name="api-R$2" port pid nats0 nats1 d0 d1 total non2xx accepted stats_accepted
  run_dir="$BENCH_TMP/logs/$round-$name"
  mkdir -p "$run_dir"
  cluster_start
  port=$(nn_free_port)
  bench_spawn pid "$NOMNOMD" --listen "127.0.0.1:$port" --workers 0 --nats "$NATS_URLS" --stream-replicas "$r" \
    --stream-max-mb 16384 --db "$DATABASE_URL" >"$run_dir/nomnomd.log" 2>&1
  local deadline=$((SECONDS + 60))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail_run "$name: nomnomd not ready"
    sleep 0.2
  done
  nats0=$(cluster_ticks) d0=$(bench_proc_ticks "$pid")
  wrk -t2 -c "$connections" -d "${api_seconds}s" -s "$BENCH_TMP/post.lua" "http://127.0.0.1:$port/ingest/message" \
    >"$run_dir/wrk.txt" 2>&1 || fail_run "$name: wrk failed"
  nats1=$(cluster_ticks) d1=$(bench_proc_ticks "$pid")
  total=$(awk '/requests in/ { print $1 }' "$run_dir/wrk.txt")
  non2xx=$(awk '/Non-2xx or 3xx responses/ { print $NF }' "$run_dir/wrk.txt")
  accepted=$((total - ${non2xx:-0}))
  # nomnomd's own count of 202 answers; wrk does not count answers still in
  # flight when it stops, so nomnomd's may be a little higher, never lower.
  sleep 1
  stats_accepted=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^nomnom_api_messages_accepted_total / { print $2 }')
  [ -n "$stats_accepted" ] && [ "${stats_accepted%.*}" -ge "$accepted" ] ||
    fail_run "$name: wrk counted $accepted 2xx answers, nomnomd counted ${stats_accepted:-nothing}"
  echo "$name $round $api_seconds $(awk -v a="$accepted" -v s="$api_seconds" 'BEGIN { printf "%.0f", a / s }')" \
    "$(bench_ticks_to_s $((d1 - d0))) $(bench_ticks_to_s $((nats1 - nats0))) - $accepted" >>"$results"
  nn_log "round $round/$rounds $(printf '%-10s' "$name") $accepted accepted in $api_seconds s, ${non2xx:-0} non-2xx (load $(bench_load_average))"
  bench_stop "$pid"
  cluster_stop
}

# ---------------------------------------------------------------- main
bench_prepare "$build" psql curl jq nats-server wrk
BENCH_STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
BENCH_LOAD_BEFORE=$(bench_load_average)
NN_PG_DURABLE=1 nn_start_postgres 2>/dev/null
results="$BENCH_TMP/results.txt"
: >"$results"
ndjson="$BENCH_TMP/orders.ndjson"
"$NOMNOM" gen tpch orders --sf "$sf" --seed 1 -o "$ndjson"
rows=$(wc -l <"$ndjson")
body=$("$NOMNOM" gen tpch orders --sf 0.000001 --seed 7 | head -n 1)
cat >"$BENCH_TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$body]]
EOF
nn_log "$rows rows; variants: ${worker_counts[*]/#/workers-} api-R1 api-R3; $rounds rounds"
for round in $(seq 1 "$rounds"); do
  for k in "${worker_counts[@]}"; do run_workers "$round" "$k"; done
  run_api "$round" 1
  run_api "$round" 3
done

col() { awk -v n="$1" -v c="$2" '$1 == n && $c != "-" { print $c }' "$results" | bench_median; }
int() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
per_m() { awk -v a="$1" -v r="$2" 'BEGIN { if (a == "-") print "-"; else printf "%.2f", a * 1000000 / r }'; }
echo "## Scale-out against a 3-node JetStream cluster (scripts/bench-cluster.sh)"
echo
bench_machine_facts nats
echo "- $rows rows (TPC-H orders, SF $sf), $rounds rounds, medians; streams R3 unless named"
echo
echo "| workers (processes × 1 thread) | seconds | rows/s committed | worker CPU-s per 1M rows | 3 nats-servers CPU-s per 1M rows | PostgreSQL CPU-s per 1M rows |"
echo "|---|---:|---:|---:|---:|---:|"
for k in "${worker_counts[@]}"; do
  n="workers-$k"
  echo "| $k | $(col "$n" 3) | $(int "$(col "$n" 4)") | $(per_m "$(col "$n" 5)" "$rows") | $(per_m "$(col "$n" 6)" "$rows") | $(per_m "$(col "$n" 7)" "$rows") |"
done
echo
echo "| API (one nomnomd, --workers 0, wrk -t2 -c $connections, ${api_seconds} s) | accepted req/s (2xx) | nomnomd CPU-s per 100k accepted | 3 nats-servers CPU-s per 100k accepted |"
echo "|---|---:|---:|---:|"
for r in 1 3; do
  n="api-R$r"
  acc=$(col "$n" 8)
  echo "| stream replicas $r | $(int "$(col "$n" 4)") | $(awk -v c="$(col "$n" 5)" -v a="$acc" 'BEGIN { printf "%.2f", c * 100000 / a }') | $(awk -v c="$(col "$n" 6)" -v a="$acc" 'BEGIN { printf "%.2f", c * 100000 / a }') |"
done
echo
echo "Raw results (variant round seconds rate cpu...):"
echo
echo '```'
cat "$results"
echo '```'
