#!/usr/bin/env bash
# Measures what open dashboards cost nomnomd: its CPU time (utime + stime from
# /proc/PID/stat) over a window with no viewer, then with N viewers on
# /dashboard/events (curl -N each), and prints a markdown report. nomnomd runs
# with its embedded worker, idle (no ingest), so the difference is the
# viewers' cost: one shared snapshot a second, written N times.
#
# Usage: scripts/bench-dashboard.sh [options]
#   --viewers N        open /dashboard/events streams in the busy windows (default 50)
#   --seconds S        length of each CPU window (default 30)
#   --rounds R         rounds, each a window with no viewer, then one with N (default 3)
#   --no-build         skip scripts/deps.sh --bench and scripts/build.sh
#   --keep             keep the temp dir (nomnomd's log, what each viewer received) at exit
#   -h, --help         this text
# Uses a throwaway PostgreSQL and nats-server of its own.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

viewers=50 seconds=30 rounds=3 build=1
bench_options "--rounds --no-build --keep" "--viewers --seconds" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --viewers) viewers=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
nn_need_int --viewers 1 "$viewers"
nn_need_int --seconds 1 "$seconds"

bench_prepare "$build" curl nats-server
trap bench_cleanup EXIT
tmp=$BENCH_TMP
nn_start_postgres >&2
nn_start_nats >&2
port=$(nn_free_port)
daemon=""
bench_spawn daemon "$NOMNOMD" --listen "127.0.0.1:$port" --db "$DATABASE_URL" --nats "$NATS_URL" --workers 1 \
  --dashboard-viewers $((viewers + 10)) >"$tmp/nomnomd.log" 2>&1
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/ready" || { bench_dump_logs "$tmp"; nn_die "nomnomd not ready"; }
# Fill the snapshot's list of rejects (20 bad lines with their reasons), so the
# viewers get a snapshot of realistic size.
{
  for i in $(seq 1 20); do echo "{\"order_key\": \"bad-$i\", \"total_price\": \"not a number\"}"; done
  echo '{"order_key":"ok-1","customer_key":"C","order_status":"O","total_price":1,"order_date":"2024-01-01"}'
} | curl -sS -o /dev/null -H 'Content-Type: application/x-ndjson' --data-binary @- "http://127.0.0.1:$port/ingest/batch"
sleep 3
snapshot_bytes=$(curl -sS "http://127.0.0.1:$port/dashboard/snapshot" | wc -c)
echo "nomnomd idle with one embedded worker; snapshot of $snapshot_bytes bytes; $seconds s windows; CPU = utime + stime of nomnomd from /proc"
echo

hz=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$daemon/stat"; }
# cpu_window: prints the percent of one core nomnomd used over $seconds s.
cpu_window() {
  local t0 t1 s0 s1
  t0=$(ticks)
  s0=$(date +%s.%N)
  sleep "$seconds"
  t1=$(ticks)
  s1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%.2f", (b - a) / hz / (s1 - s0) * 100 }'
}

echo "| round | viewers | nomnomd CPU (% of one core) | events per viewer |"
echo "|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  idle=$(cpu_window)
  echo "| $r | 0 | $idle | - |"
  clients=()
  for i in $(seq 1 "$viewers"); do
    curl -sS -N -m $((seconds + 10)) "http://127.0.0.1:$port/dashboard/events" >"$tmp/viewer-$i.txt" 2>/dev/null &
    clients+=($!)
  done
  sleep 3
  open=$(curl -sS "http://127.0.0.1:$port/dashboard/snapshot" >/dev/null && echo ok)
  [ "$open" = ok ] || nn_die "GET /dashboard/snapshot failed"
  count_events() { for i in $(seq 1 "$viewers"); do grep -c '^data: {' "$tmp/viewer-$i.txt" || true; done; }
  count_events >"$tmp/before"
  busy=$(cpu_window)
  count_events >"$tmp/after"
  kill "${clients[@]}" 2>/dev/null || true
  wait "${clients[@]}" 2>/dev/null || true
  # Events each viewer received during the window: the fewest and the most.
  events=$(paste "$tmp/before" "$tmp/after" | awk '{ print $2 - $1 }' | sort -n | awk '{ a[NR] = $1 } END { print a[1] "-" a[NR] }')
  echo "| $r | $viewers | $busy | $events |"
  sleep 2
done
