#!/usr/bin/env bash
# Benchmarks nomnomd's ingest API with wrk and prints a markdown report (logs
# go to stderr, the report to stdout).
#
# Usage: scripts/bench-http.sh [options]
#   --rounds N             rounds of every configuration, alternating (default 3)
#   --duration S           seconds per wrk run (default 15)
#   --wrk-threads N        wrk -t (default 2)
#   --connections L        wrk -c values for /ingest/message (default "64 256")
#   --batch-connections L  wrk -c values for /ingest/batch (default "8")
#   --batch-kb KB          size of the /ingest/batch body (default 1000: ~1 MB, 4,000+ rows)
#   --workers L            nomnomd --workers values (default "1 0"; 0 = the API alone)
#   --endpoints L          which endpoints (default "message batch")
#   --drain-timeout S      with workers: how long to wait for /ingest/message rows
#                          to be committed after wrk (default 600)
#   --nomnomd-args "..."   extra nomnomd options (e.g. "--linger-ms 5 --http-threads 1")
#   --message-body B       unique (default): a new order_key per request, made in
#                          wrk's Lua; fixed: the same order, sent by wrk natively
#   --via-nats-anchor      in every round, after the batch runs, also time
#                          `nomnom load --via-nats` publishing the batch body's
#                          rows (repeated to --anchor-mb) to a fresh nats-server,
#                          and report /ingest/batch MB/s over its MB/s per round
#                          (issue 9's target: >= 0.8)
#   --anchor-mb MB         size of that input (default 360, about SF 1)
#   --no-build             skip scripts/deps.sh --bench and scripts/build.sh
#   --keep                 keep the temp dir (logs, wrk output, raw results) at exit
#   -h, --help             this text
#
# Every run: a fresh nats-server (empty JetStream store), a fresh `orders`
# table (ledger and dead letters dropped), a fresh nomnomd (--workers W,
# --stream-max-mb 16384 so that no accepted message is discarded by the
# stream's size limit), waited for until /ready; then
#   message  wrk -t T -c C -d S --latency POST /ingest/message, one TPC-H order
#            per request with a unique order_key per request (thread id and
#            counter in wrk's Lua `request`), keep-alive. With
#            --message-body fixed: the same order every request, sent by wrk
#            natively (no Lua per request or response, so wrk itself takes
#            less of the shared CPUs); the API does the same work for it
#            (validates, new message id, publishes every one); with workers
#            the table then keeps one row, and the ledger's committed row
#            count is what must reach the accepted count
#   batch    the same with POST /ingest/batch and a ~1 MB NDJSON body of TPC-H
#            orders (read from a generated file in the Lua `init`; the same
#            body every time, so its keys repeat and the table keeps one copy)
# The Lua `response` callback counts 202 and non-202 answers; wrk's socket
# errors are reported too. After wrk, /stats is read until stable, and the
# script fails unless: the daemon accepted between the 202s wrk saw and that
# plus C (requests in flight when wrk stopped), no publish failed, and the
# stream stored exactly the chunk messages the daemon published (its last
# sequence number) and, without workers, still holds them all. For message
# runs with workers, it waits until every accepted row is committed and
# checks that the table holds exactly that many rows (unique keys); "drain"
# is the time from wrk's end to that commit. Batch runs with workers report
# the rows committed during the run, not a full drain.
# CPU seconds during the wrk run: nomnomd, nats-server and all PostgreSQL
# processes from /proc, wrk from GNU time. All of them share the same CPUs.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

readonly TABLE=orders
readonly STREAM_MAX_MB=16384
# The /ingest/message body: a TPC-H order; the Lua script puts a unique
# order_key between these two parts.
readonly MESSAGE_PREFIX='{"order_key":"'
readonly MESSAGE_SUFFIX='","customer_key":"36901","order_status":"O","total_price":173665.47,"order_date":"1996-01-02","order_priority":"5-LOW","clerk":"Clerk#000000951","ship_priority":0,"comment":"nstructions sleep furiously among "}'

rounds=3 duration=15 wrk_threads=2 connections="64 256" batch_connections="8" batch_kb=1000
workers_list="1 0" endpoints="message batch" drain_timeout=600 build=1 nomnomd_args="" message_body=unique
anchor=0 anchor_mb=360
bench_options "--rounds --no-build --keep" "--duration --wrk-threads --connections --batch-connections --batch-kb --workers --endpoints --drain-timeout --nomnomd-args --message-body --anchor-mb" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift ;;
    --wrk-threads) wrk_threads=$2; shift ;;
    --connections) connections=$2; shift ;;
    --batch-connections) batch_connections=$2; shift ;;
    --batch-kb) batch_kb=$2; shift ;;
    --workers) workers_list=$2; shift ;;
    --endpoints) endpoints=$2; shift ;;
    --drain-timeout) drain_timeout=$2; shift ;;
    --nomnomd-args) nomnomd_args=$2; shift ;;
    --message-body) message_body=$2; shift ;;
    --via-nats-anchor) anchor=1 ;;
    --anchor-mb) anchor_mb=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
nn_need_int --duration 1 "$duration"
nn_need_int --wrk-threads 1 "$wrk_threads"
nn_need_int --batch-kb 1 "$batch_kb"
nn_need_int --drain-timeout 1 "$drain_timeout"
nn_need_int --anchor-mb 1 "$anchor_mb"
read -r -a msg_conns <<<"$connections"
read -r -a batch_conns <<<"$batch_connections"
read -r -a worker_counts <<<"$workers_list"
read -r -a endpoint_list <<<"$endpoints"
nn_need_int --connections 1 "${msg_conns[@]}"
nn_need_int --batch-connections 1 "${batch_conns[@]}"
nn_need_int --workers 0 "${worker_counts[@]}"
for v in "${endpoint_list[@]}"; do
  [[ $v = message || $v = batch ]] || nn_die "--endpoints: '$v' is neither message nor batch"
done
[ $((${#worker_counts[@]} * ${#endpoint_list[@]})) -gt 0 ] || nn_die "--workers and --endpoints need a value"
[ "$message_body" = unique ] || [ "$message_body" = fixed ] || nn_die "--message-body: '$message_body' is neither unique nor fixed"
if [ "$anchor" = 1 ]; then
  [[ " ${endpoint_list[*]} " = *" batch "* ]] || nn_die "--via-nats-anchor compares with /ingest/batch: add batch to --endpoints"
fi
command -v wrk >/dev/null || nn_die "wrk missing (scripts/deps.sh --bench installs it)"
read -r -a extra_daemon_args <<<"$nomnomd_args"

# ---------------------------------------------------------------- wrk scripts

write_lua() {
  # Shared: per-thread counters of 202 / other answers, and a machine-readable
  # summary line from done().
  cat >"$BENCH_TMP/common.lua" <<'EOF'
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
ok, bad = 0, 0
function response(status, headers, body)
  if status == 202 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local ok_total, bad_total = 0, 0
  for _, t in ipairs(threads) do
    ok_total = ok_total + t:get("ok")
    bad_total = bad_total + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d ok=%d non202=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, ok_total, bad_total, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
EOF
  if [ "$message_body" = fixed ]; then
    # The same order every request, sent by wrk without Lua per request or
    # response; wrk counts non-2xx answers itself (summary.errors.status).
    cat >"$BENCH_TMP/message.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '${MESSAGE_PREFIX}1-1${MESSAGE_SUFFIX}'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d ok=%d non202=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.requests - e.status, e.status, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
EOF
  else
  # One order per request; order_key "<thread>-<counter>" is unique per run.
  cat >"$BENCH_TMP/message.lua" <<EOF
dofile("$BENCH_TMP/common.lua")
local n = 0
local headers = { ["Content-Type"] = "application/json" }
function request()
  n = n + 1
  return wrk.format("POST", "/ingest/message", headers, '$MESSAGE_PREFIX' .. tid .. '-' .. n .. '$MESSAGE_SUFFIX')
end
EOF
  fi
  cat >"$BENCH_TMP/batch.lua" <<EOF
dofile("$BENCH_TMP/common.lua")
local req
function init(args)
  local f = assert(io.open("$BENCH_TMP/batch.ndjson", "rb"))
  local body = f:read("*a")
  f:close()
  req = wrk.format("POST", "/ingest/batch", { ["Content-Type"] = "application/x-ndjson" }, body)
end
function request()
  return req
end
EOF
}

# ---------------------------------------------------------------- runs

# stats_field JSON_FILE JQ_PATH
stats_field() { jq -r "$2 // 0" "$1"; }

# Reads /stats into FILE until rows_accepted is the same twice 200 ms apart.
stable_stats() {
  local file=$1 prev=-1 cur
  for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$port/stats" >"$file" || return 1
    cur=$(stats_field "$file" .api.rows_accepted)
    [ "$cur" = "$prev" ] && return 0
    prev=$cur
    sleep 0.2
  done
  return 1
}

fail_run() {
  nn_log "FAILED: $1; logs in $run_dir (kept)"
  BENCH_KEEP=1
  bench_dump_logs "$run_dir"
  exit 1
}

# run_one ENDPOINT WORKERS CONNECTIONS ROUND
run_one() {
  local endpoint=$1 workers=$2 conns=$3 round=$4 name="$1-w$2-c$3"
  local daemon_pid="" d0 d1 n0 n1 p0 p1
  run_dir="$BENCH_TMP/logs/$round-$name"
  mkdir -p "$run_dir"
  bench_fresh_nats
  bench_reset_tables "$TABLE"
  port=$(nn_free_port)
  bench_spawn daemon_pid "$NOMNOMD" --listen "127.0.0.1:$port" --workers "$workers" \
    --stream-max-mb "$STREAM_MAX_MB" --log-level warn "${extra_daemon_args[@]}" >"$run_dir/nomnomd.log" 2>&1
  local ready=0
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ "$ready" = 1 ] || fail_run "$name (round $round): nomnomd did not get ready"
  bench_sql CHECKPOINT >/dev/null

  d0=$(bench_proc_ticks "$daemon_pid") n0=$(bench_proc_ticks "$NN_NATS_PID") p0=$(bench_pg_ticks_settled)
  /usr/bin/time -f '%e %U %S %M' -o "$run_dir/wrk.time" \
    wrk -t "$wrk_threads" -c "$conns" -d "${duration}s" --latency -s "$BENCH_TMP/$endpoint.lua" \
    "http://127.0.0.1:$port/ingest/$endpoint" >"$run_dir/wrk.out" 2>&1 \
    || fail_run "$name (round $round): wrk failed"
  local t_wrk_end
  t_wrk_end=$(bench_now)
  d1=$(bench_proc_ticks "$daemon_pid") n1=$(bench_proc_ticks "$NN_NATS_PID") p1=$(bench_pg_ticks_settled)
  local wrk_cpu
  wrk_cpu=$(tail -n 1 "$run_dir/wrk.time" | awk '{ printf "%.2f", $2 + $3 }')

  local result requests duration_us ok non202 sockerr p50 p99
  result=$(grep '^RESULT ' "$run_dir/wrk.out") || fail_run "$name (round $round): no RESULT line from wrk"
  kv() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$result"; }
  requests=$(kv requests) duration_us=$(kv duration_us) ok=$(kv ok) non202=$(kv non202)
  sockerr=$(($(kv connect) + $(kv read) + $(kv write) + $(kv timeout)))
  p50=$(kv p50_us) p99=$(kv p99_us)
  # wrk ends early on Ctrl-C (and exits 0): do not report a partial run.
  [ "$duration_us" -ge $((duration * 900000)) ] \
    || fail_run "$name (round $round): wrk stopped after $((duration_us / 1000)) ms of ${duration} s (interrupted?)"

  stable_stats "$run_dir/stats.json" || fail_run "$name (round $round): /stats did not settle"
  local accepted rows_accepted chunks publish_errors stream_msgs stored committed_during
  if [ "$endpoint" = message ]; then
    accepted=$(stats_field "$run_dir/stats.json" .api.messages_accepted)
  else
    accepted=$(stats_field "$run_dir/stats.json" .api.batches_accepted)
  fi
  rows_accepted=$(stats_field "$run_dir/stats.json" .api.rows_accepted)
  chunks=$(stats_field "$run_dir/stats.json" .api.chunks_published)
  publish_errors=$(stats_field "$run_dir/stats.json" .api.publish_errors)
  read -r stream_msgs stored < <(bench_stream_state MESSAGES)
  committed_during=$(stats_field "$run_dir/stats.json" .workers.rows_committed)
  if [ "$accepted" -lt "$ok" ] || [ "$accepted" -gt $((ok + conns)) ]; then
    fail_run "$name (round $round): nomnomd accepted $accepted, wrk saw $ok answers 202 (with $conns connections)"
  fi
  [ "$publish_errors" = 0 ] || fail_run "$name (round $round): $publish_errors publish errors"
  [ "$stored" = "$chunks" ] || fail_run "$name (round $round): the stream stored $stored messages, nomnomd published $chunks"
  # Without workers nothing may have left the stream (no limit discarded any).
  if [ "$workers" = 0 ] && [ "$stream_msgs" != "$chunks" ]; then
    fail_run "$name (round $round): the stream holds $stream_msgs of the $chunks messages nomnomd published"
  fi

  local drain="-"
  if [ "$endpoint" = message ] && [ "$workers" -gt 0 ]; then
    local poller_pid="" t_end got dead
    bench_spawn poller_pid bench_commit_poller "$rows_accepted" "$drain_timeout" "$run_dir/poller.log"
    bench_wait_commit "$poller_pid" "$daemon_pid" || fail_run "$name (round $round): not every accepted row was committed"
    t_end=$(bench_poller_result "$run_dir/poller.log") || fail_run "$name (round $round): no commit time from the poller"
    drain=$(awk -v a="$t_end" -v b="$t_wrk_end" 'BEGIN { d = a - b; printf "%.2f", d < 0 ? 0 : d }')
    got=$(bench_sql "SELECT count(*) FROM $TABLE")
    local want=$rows_accepted
    [ "$message_body" = unique ] || want=1  # the same order_key every time
    [ "$got" = "$want" ] || fail_run "$name (round $round): $TABLE holds $got rows, $want expected ($rows_accepted accepted)"
    dead=$(bench_sql "SELECT count(*) FROM nomnom_dead_letters")
    [ "$dead" = 0 ] || fail_run "$name (round $round): $dead dead letters"
  fi
  bench_stop "$daemon_pid"
  grep -q ' error ' "$run_dir/nomnomd.log" && nn_log "note: nomnomd logged errors in $name (round $round): $(grep -m1 ' error ' "$run_dir/nomnomd.log")"

  local secs rps mbps rows_s
  secs=$(awk -v d="$duration_us" 'BEGIN { printf "%.3f", d / 1e6 }')
  rps=$(awk -v n="$ok" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  if [ "$endpoint" = batch ]; then
    mbps=$(awk -v n="$ok" -v b="$batch_bytes" -v s="$secs" 'BEGIN { printf "%.1f", n * b / s / 1e6 }')
    rows_s=$(awk -v n="$ok" -v r="$batch_rows" -v s="$secs" 'BEGIN { printf "%.0f", n * r / s }')
  else
    mbps=$(awk -v n="$ok" -v b="$message_bytes" -v s="$secs" 'BEGIN { printf "%.1f", n * b / s / 1e6 }')
    rows_s=$rps
  fi
  # name round ok_per_s MB_per_s rows_per_s p50_ms p99_ms non202 sockerr nomnomd_cpu nats_cpu pg_cpu wrk_cpu secs drain committed_during requests
  echo "$name $round $rps $mbps $rows_s $(awk -v a="$p50" -v b="$p99" 'BEGIN { printf "%.2f %.2f", a / 1000, b / 1000 }')" \
    "$non202 $sockerr $(bench_ticks_to_s $((d1 - d0))) $(bench_ticks_to_s $((n1 - n0))) $(bench_ticks_to_s $((p1 - p0)))" \
    "$wrk_cpu $secs $drain $committed_during $requests" >>"$results"
  nn_log "round $round/$rounds $(printf '%-20s' "$name") $rps req/s accepted, $mbps MB/s, p99 $(awk -v b="$p99" 'BEGIN { printf "%.1f", b / 1000 }') ms," \
    "non-202 $non202, socket errors $sockerr, drain $drain s (load $(bench_load_average))"
}

# run_anchor ROUND: `nomnom load --via-nats` publishes the anchor file (the
# batch body repeated) to a fresh nats-server, no worker; appends
# "anchor ROUND MB_per_s wall_s publisher_cpu nats_cpu rows" to results.
run_anchor() {
  local round=$1 n0 n1 t0 t1 secs pub_rows pub_chunks pub_rejected stored
  run_dir="$BENCH_TMP/logs/$round-anchor"
  mkdir -p "$run_dir"
  bench_fresh_nats
  bench_reset_tables "$TABLE"
  n0=$(bench_proc_ticks "$NN_NATS_PID")
  t0=$(bench_now)
  /usr/bin/time -f '%e %U %S %M' -o "$run_dir/publish.time" \
    "$NOMNOM" load "$BENCH_TMP/anchor.ndjson" --table "$TABLE" --via-nats --json >"$run_dir/publish.json" 2>"$run_dir/publish.log" \
    || fail_run "anchor (round $round): nomnom load --via-nats exited non-zero"
  t1=$(bench_now)
  n1=$(bench_proc_ticks "$NN_NATS_PID")
  read -r pub_rows pub_chunks pub_rejected < <(jq -r '"\(.published_rows) \(.published_chunks) \(.rejected)"' "$run_dir/publish.json")
  if [ "$pub_rows" != "$anchor_rows" ] || [ "$pub_rejected" != 0 ]; then
    fail_run "anchor (round $round): published $pub_rows rows ($pub_rejected rejected), $anchor_rows expected"
  fi
  read -r _ stored < <(bench_stream_state MESSAGES)
  [ "$stored" = "$pub_chunks" ] || fail_run "anchor (round $round): the stream stored $stored messages, $pub_chunks published"
  secs=$(bench_fsub "$t1" "$t0")
  echo "anchor $round $(awk -v b="$anchor_bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1e6 }') $secs" \
    "$(bench_time_of "$run_dir/publish.time" | awk '{ print $2 }') $(bench_ticks_to_s $((n1 - n0))) $pub_rows" >>"$results"
  nn_log "round $round/$rounds anchor: load --via-nats $(awk -v b="$anchor_bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1e6 }') MB/s ($secs s; load $(bench_load_average))"
}

# ---------------------------------------------------------------- report

configs=()
for endpoint in "${endpoint_list[@]}"; do
  for w in "${worker_counts[@]}"; do
    if [ "$endpoint" = message ]; then
      for c in "${msg_conns[@]}"; do configs+=("message $w $c"); done
    else
      for c in "${batch_conns[@]}"; do configs+=("batch $w $c"); done
    fi
  done
done

col() { awk -v n="$1" -v c="$2" '$1 == n && $c != "-" { print $c }' "$results"; }

print_report() {
  local cfg endpoint w c name med min max mbps rows p50 p99 non202 sockerr target cpu_d cpu_n cpu_p cpu_w secs drain committed total
  echo
  echo "## nomnomd ingest API benchmark (wrk -t $wrk_threads -d ${duration}s), $rounds round(s)"
  echo
  echo "| endpoint | embedded workers | connections | accepted req/s (median) | min | max | MB/s accepted | rows/s accepted | p50 ms | p99 ms | non-202 (all rounds) | socket errors | target |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for cfg in "${configs[@]}"; do
    read -r endpoint w c <<<"$cfg"
    name="$endpoint-w$w-c$c"
    read -r med min max < <(col "$name" 3 | bench_stats)
    mbps=$(col "$name" 4 | bench_median) rows=$(col "$name" 5 | bench_median)
    p50=$(col "$name" 6 | bench_median) p99=$(col "$name" 7 | bench_median)
    non202=$(col "$name" 8 | awk '{ s += $1 } END { print s + 0 }')
    sockerr=$(col "$name" 9 | awk '{ s += $1 } END { print s + 0 }')
    if [ "$endpoint" = message ]; then
      target=$(awk -v v="$med" 'BEGIN { print (v >= 50000 ? "≥ 50,000 req/s: met" : "≥ 50,000 req/s: NOT met") }')
    else
      target=$(awk -v v="$mbps" 'BEGIN { print (v >= 200 ? "≥ 200 MB/s: met" : "≥ 200 MB/s: NOT met") }')
    fi
    printf '| %s | %s | %s | %.0f | %.0f | %.0f | %.1f | %.0f | %.2f | %.2f | %s | %s | %s |\n' \
      "/ingest/$endpoint" "$w" "$c" "$med" "$min" "$max" "$mbps" "$rows" "$p50" "$p99" "$non202" "$sockerr" "$target"
  done
  echo
  echo "CPU seconds during the ${duration}s wrk run (medians) and what the workers did:"
  echo
  echo "| endpoint | embedded workers | connections | nomnomd | nats-server | PostgreSQL | wrk | sum / (wall × $(nproc) CPUs) | rows committed during the run | drain after wrk s (message runs with workers) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for cfg in "${configs[@]}"; do
    read -r endpoint w c <<<"$cfg"
    name="$endpoint-w$w-c$c"
    cpu_d=$(col "$name" 10 | bench_median) cpu_n=$(col "$name" 11 | bench_median)
    cpu_p=$(col "$name" 12 | bench_median) cpu_w=$(col "$name" 13 | bench_median)
    secs=$(col "$name" 14 | bench_median) drain=$(col "$name" 15 | bench_median)
    committed=$(col "$name" 16 | bench_median)
    total=$(awk -v a="$cpu_d" -v b="$cpu_n" -v c="$cpu_p" -v d="$cpu_w" -v s="$secs" -v n="$(nproc)" \
      'BEGIN { printf "%.0f%%", 100 * (a + b + c + d) / (s * n) }')
    [ "$w" -gt 0 ] || committed="-"
    [ "$committed" = - ] || committed=$(printf '%.0f' "$committed")
    [ "$drain" = - ] || drain=$(printf '%.2f' "$drain")
    printf '| %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %s | %s | %s |\n' \
      "/ingest/$endpoint" "$w" "$c" "$cpu_d" "$cpu_n" "$cpu_p" "$cpu_w" "$total" "$committed" "$drain"
  done
  echo
  local message_desc="unique order_key per request, from wrk's Lua request()"
  [ "$message_body" = unique ] || message_desc="the same order every request, wrk without Lua per request (--message-body fixed)"
  echo "Bodies: /ingest/message $message_bytes bytes (one TPC-H order, $message_desc);" \
    "/ingest/batch $batch_bytes bytes ($batch_rows TPC-H orders, the same body every request). MB/s = 202 answers ×" \
    "body bytes / wrk's duration (10^6 bytes). nomnomd: ${nomnomd_args:-no extra options}; its defaults:" \
    "--http-threads 2, --linger-ms 1, --chunk-rows 1000, --chunk-kb 512, workers --fetch-batch 100." \
    "Every run: fresh nats-server, table and nomnomd;" \
    "accepted counts checked against wrk's 202s and the stream's stored messages against the published chunks."
  echo
  bench_machine_facts nats
  echo "- wrk $(wrk -v 2>&1 | head -n 1 | awk '{print $2}') runs on the same machine as everything else"
  [ "$anchor" = 1 ] || return 0
  local ratios bname
  echo
  echo "### /ingest/batch against \`nomnom load --via-nats\` publishing the same rows (--via-nats-anchor)"
  echo
  echo "Anchor: $anchor_rows rows, $anchor_bytes bytes (the batch body repeated), published to a fresh" \
    "nats-server in every round after the batch runs; MB/s = input bytes / the process's wall time."
  echo
  echo "| /ingest/batch configuration | batch MB/s (median) | load --via-nats MB/s (median) | batch / via-nats, median of the per-round ratios | per round |"
  echo "|---|---:|---:|---:|---|"
  for cfg in "${configs[@]}"; do
    read -r endpoint w c <<<"$cfg"
    [ "$endpoint" = batch ] || continue
    bname="$endpoint-w$w-c$c"
    ratios=$(awk -v n="$bname" '$1 == n { b[$2] = $4 } $1 == "anchor" { a[$2] = $3; if ($2 > last) last = $2 }
      END { for (r = 1; r <= last; r++) if (a[r] > 0 && (r in b)) printf "%.3f\n", b[r] / a[r] }' "$results")
    printf '| -w%s -c%s | %.1f | %.1f | **%s** | %s |\n' "$w" "$c" "$(col "$bname" 4 | bench_median)" \
      "$(col anchor 3 | bench_median)" "$(bench_median <<<"$ratios")" "$(tr '\n' ' ' <<<"$ratios")"
  done
  echo
  echo "Anchor CPU (medians): publisher $(col anchor 5 | bench_median) s, nats-server $(col anchor 6 | bench_median) s, wall $(col anchor 4 | bench_median) s."
}

# ---------------------------------------------------------------- main

bench_prepare "$build"
nn_on_exit bench_cleanup
results="$BENCH_TMP/results.txt"
run_dir="" port=""

# The batch body: whole TPC-H order lines, up to --batch-kb KB.
"$NOMNOM" gen tpch orders --sf 0.01 --seed 1 -o "$BENCH_TMP/orders.ndjson"
awk -v max=$((batch_kb * 1000)) '{ n += length($0) + 1; if (n > max) exit; print }' \
  "$BENCH_TMP/orders.ndjson" >"$BENCH_TMP/batch.ndjson"
batch_bytes=$(stat -c %s "$BENCH_TMP/batch.ndjson")
batch_rows=$(wc -l <"$BENCH_TMP/batch.ndjson")
[ "$batch_rows" -gt 0 ] || nn_die "--batch-kb $batch_kb is smaller than one row"
if [ "$anchor" = 1 ]; then
  reps=$(((anchor_mb * 1000000 + batch_bytes - 1) / batch_bytes))
  for ((i = 0; i < reps; i++)); do cat "$BENCH_TMP/batch.ndjson"; done >"$BENCH_TMP/anchor.ndjson"
  anchor_bytes=$(stat -c %s "$BENCH_TMP/anchor.ndjson")
  anchor_rows=$((reps * batch_rows))
fi
message_bytes=$((${#MESSAGE_PREFIX} + ${#MESSAGE_SUFFIX} + 8))  # with order_key "1-100000"
[ "$message_body" = unique ] || message_bytes=$((${#MESSAGE_PREFIX} + ${#MESSAGE_SUFFIX} + 3))  # "1-1"
write_lua
nn_log "bench-http: batch body $batch_bytes bytes, $batch_rows rows; configurations: ${#configs[@]}"

NN_PG_DURABLE=1 nn_start_postgres
export DATABASE_URL
BENCH_LOAD_BEFORE=$(bench_load_average) BENCH_STARTED=$(date -u "+%Y-%m-%d %H:%M:%S UTC")
start=$SECONDS
for ((round = 1; round <= rounds; round++)); do
  for cfg in "${configs[@]}"; do
    read -r endpoint w c <<<"$cfg"
    run_one "$endpoint" "$w" "$c" "$round"
  done
  [ "$anchor" = 0 ] || run_anchor "$round"
done
nn_log "bench-http: ${#configs[@]} configurations x $rounds rounds in $(nn_duration $((SECONDS - start)))"
print_report
