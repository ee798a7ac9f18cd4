#!/usr/bin/env bash
# nomnomd's POST /ingest/message against an HTTP ceiling on the same machine:
# nginx (Debian's nginx-light, 2 workers, `return 202` with a small JSON body)
# under the same wrk settings, alternating within each round. Prints a
# markdown report (logs go to stderr, the report to stdout).
#
# Usage: scripts/bench-http-ceiling.sh [options]
#   --rounds N          rounds (default 5); each runs nginx, then nomnomd
#   --duration S        seconds per wrk run (default 10)
#   --connections C     wrk -c (default 1024)
#   --wrk-threads N     wrk -t (default 2)
#   --nomnomd-args "…"  extra nomnomd options
#   --no-build          skip scripts/deps.sh --bench and scripts/build.sh
#   --keep              keep the temp dir
#   -h, --help          this text
#
# Both servers get the same request: wrk POSTs the same TPC-H order (natively,
# no Lua per request) with Content-Type: application/json, keep-alive. nomnomd
# runs API-only (--workers 0) with a fresh nats-server and a 16 GiB stream, so
# every 202 is a message stored in JetStream; nginx answers 202 with a 60-byte
# JSON body and stores nothing. Only 2xx answers count (wrk's total minus its
# non-2xx count); the ratio is nomnomd / nginx per round, and the report's
# figure is the median of those ratios. nomnomd's own accepted counter
# (/metrics) must not be lower than wrk's 2xx count. CPU seconds during the
# run: the server (nomnomd or the nginx workers), nats-server, wrk (GNU time).
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

rounds=5 duration=10 connections=1024 wrk_threads=2 nomnomd_args="" build=1
bench_options "--rounds --no-build --keep" "--duration --connections --wrk-threads --nomnomd-args" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift ;;
    --connections) connections=$2; shift ;;
    --wrk-threads) wrk_threads=$2; shift ;;
    --nomnomd-args) nomnomd_args=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
nn_need_int --duration 1 "$duration"
nn_need_int --connections 1 "$connections"
nn_need_int --wrk-threads 1 "$wrk_threads"
command -v nginx >/dev/null || nn_die "nginx missing (scripts/deps.sh --bench installs nginx-light)"

bench_prepare "$build" psql curl jq nats-server wrk
BENCH_STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
BENCH_LOAD_BEFORE=$(bench_load_average)
trap bench_cleanup EXIT
nn_start_postgres 2>/dev/null
results="$BENCH_TMP/results.txt"
: >"$results"
body=$("$NOMNOM" gen tpch orders --sf 0.000001 --seed 7 | head -n 1)
cat >"$BENCH_TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$body]]
EOF
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---------------------------------------------------------------- one wrk run
# run_wrk NAME URL SERVER_PIDS...: wrk against URL; appends
# "name round accepted_per_s server_cpu nats_cpu wrk_cpu non2xx errors" to results.
run_wrk() {
  local name=$1 url=$2 d0=0 d1=0 n0 n1 p total non2xx errors accepted wrk_cpu
  shift 2
  for p in "$@"; do d0=$((d0 + $(bench_proc_ticks "$p"))); done
  n0=$(bench_proc_ticks "${NN_NATS_PID:-0}")
  /usr/bin/time -f '%e %U %S %M' -o "$run_dir/wrk.time" \
    wrk -t "$wrk_threads" -c "$connections" -d "${duration}s" -s "$BENCH_TMP/post.lua" "$url" >"$run_dir/wrk.txt" 2>&1 ||
    { cat "$run_dir/wrk.txt" >&2; nn_die "$name: wrk failed"; }
  for p in "$@"; do d1=$((d1 + $(bench_proc_ticks "$p"))); done
  n1=$(bench_proc_ticks "${NN_NATS_PID:-0}")
  total=$(awk '/requests in/ { print $1 }' "$run_dir/wrk.txt")
  non2xx=$(awk '/Non-2xx or 3xx responses/ { print $NF }' "$run_dir/wrk.txt")
  errors=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$run_dir/wrk.txt")
  accepted=$((total - ${non2xx:-0}))
  read -r _ wrk_cpu _ < <(bench_time_of "$run_dir/wrk.time")
  ACCEPTED=$accepted
  echo "$name $round $(awk -v a="$accepted" -v s="$duration" 'BEGIN { printf "%.0f", a / s }')" \
    "$(bench_ticks_to_s $((d1 - d0))) $(bench_ticks_to_s $((n1 - n0))) $wrk_cpu ${non2xx:-0} ${errors:-0}" >>"$results"
  nn_log "round $round/$rounds $(printf '%-8s' "$name") $(awk -v a="$accepted" -v s="$duration" 'BEGIN { printf "%.0f", a / s }') 2xx/s" \
    "(non-2xx ${non2xx:-0}, socket errors ${errors:-0}; load $(bench_load_average))"
}

run_nginx() {
  run_dir="$BENCH_TMP/logs/$round-nginx"
  mkdir -p "$run_dir"
  local port conf pid
  port=$(nn_free_port)
  conf="$run_dir/nginx.conf"
  cat >"$conf" <<EOF
worker_processes 2;
pid $run_dir/nginx.pid;
error_log $run_dir/error.log warn;
daemon off;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_buffer_size 16k;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location / {
      default_type application/json;
      return 202 '{"message_id":"00000000-0000-0000-0000-000000000000.0","status":"accepted"}';
    }
  }
}
EOF
  bench_spawn pid nginx -c "$conf" -p "$run_dir"
  local deadline=$((SECONDS + 20))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "http://127.0.0.1:$port/ingest/message")" = 202 ]; do
    [ "$SECONDS" -lt "$deadline" ] || nn_die "nginx did not start: $(cat "$run_dir/error.log")"
    sleep 0.1
  done
  # shellcheck disable=SC2046  # the worker pids, one word each
  NN_NATS_PID_SAVED=${NN_NATS_PID:-} NN_NATS_PID=""
  run_wrk nginx "http://127.0.0.1:$port/ingest/message" "$pid" $(pgrep -P "$pid")
  NN_NATS_PID=$NN_NATS_PID_SAVED
  bench_stop "$pid"
}

run_nomnomd() {
  run_dir="$BENCH_TMP/logs/$round-nomnomd"
  mkdir -p "$run_dir"
  local port pid counted
  bench_fresh_nats
  port=$(nn_free_port)
  # shellcheck disable=SC2086  # extra options, word-split on purpose
  bench_spawn pid "$NOMNOMD" --listen "127.0.0.1:$port" --workers 0 --stream-max-mb 16384 --db "$DATABASE_URL" \
    --max-connections $((connections + 64)) $nomnomd_args >"$run_dir/nomnomd.log" 2>&1
  local deadline=$((SECONDS + 30))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ]; do
    [ "$SECONDS" -lt "$deadline" ] || nn_die "nomnomd not ready: $(tail -n 3 "$run_dir/nomnomd.log")"
    sleep 0.1
  done
  run_wrk nomnomd "http://127.0.0.1:$port/ingest/message" "$pid"
  sleep 1
  counted=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^nomnom_api_messages_accepted_total / { print $2 }')
  [ -n "$counted" ] && [ "${counted%.*}" -ge "$ACCEPTED" ] ||
    nn_die "nomnomd counted ${counted:-nothing} accepted messages, wrk saw $ACCEPTED 2xx"
  bench_stop "$pid"
}

nn_log "wrk -t $wrk_threads -c $connections -d ${duration}s, $rounds rounds"
for round in $(seq 1 "$rounds"); do
  run_nginx
  run_nomnomd
done

col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$results" | bench_median; }
# In round order (awk's `for (r in d)` order is unspecified).
ratios=$(awk '$1 == "nginx" { n[$2] = $3 } $1 == "nomnomd" { d[$2] = $3; if ($2 > last) last = $2 }
  END { for (r = 1; r <= last; r++) if (n[r] > 0 && (r in d)) printf "%.3f\n", d[r] / n[r] }' "$results")
echo "## nomnomd vs nginx: POST /ingest/message (scripts/bench-http-ceiling.sh)"
echo
bench_machine_facts nats
echo "- wrk -t $wrk_threads -c $connections -d ${duration}s, the same TPC-H order every request; $rounds rounds alternating nginx, nomnomd"
echo
echo "| server | 2xx/s (median) | server CPU-s | nats-server CPU-s | wrk CPU-s |"
echo "|---|---:|---:|---:|---:|"
for n in nginx nomnomd; do
  printf '| %s | %.0f | %s | %s | %s |\n' "$n" "$(col "$n" 3)" "$(col "$n" 4)" "$(col "$n" 5)" "$(col "$n" 6)"
done
echo
echo "**nomnomd / nginx, median of the per-round ratios: $(bench_median <<<"$ratios")** (per round: $(tr '\n' ' ' <<<"$ratios"))"
echo
echo '```'
cat "$results"
echo '```'
