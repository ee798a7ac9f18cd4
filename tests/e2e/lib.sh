# shellcheck shell=bash
# shellcheck disable=SC2034  # the globals set here (DAEMON_RC, WAIT_RC, ...) are read by the test scripts
# Helpers for the end-to-end tests of nomnomd / nomnom worker (tests/e2e/*.sh).
#
# A test script sources this file, then calls e2e_start_services (its own
# PostgreSQL and nats-server on free loopback ports, see
# scripts/lib/services.sh) and e2e_start_daemon. Everything it starts is
# stopped on exit, also on failure. The first failed assertion ends the script
# (exit 1) with a message saying what was expected and what was found, the
# tail of the logs of the processes it started, and the summary line
#   e2e <name>: N passed, M failed
#
# Environment: NOMNOM_BIN, NOMNOMD_BIN (set by CTest; default: build/),
# E2E_KEEP=1 keeps the temp directory (logs) for a look after the run.
set -eEuo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_ROOT=$(cd "$E2E_DIR/../.." && pwd)
# shellcheck source=../../scripts/lib/services.sh source-path=SCRIPTDIR
source "$E2E_ROOT/scripts/lib/services.sh"

E2E_NAME=$(basename "$0" .sh)
NOMNOM_BIN=${NOMNOM_BIN:-$E2E_ROOT/build/cli/nomnom}
NOMNOMD_BIN=${NOMNOMD_BIN:-$E2E_ROOT/build/daemon/nomnomd}
E2E_PASSED=0
E2E_FAILED=0
E2E_STARTED=$SECONDS
E2E_TMP=$(mktemp -d /tmp/nomnom-e2e.XXXXXX)
chmod 755 "$E2E_TMP"
E2E_PIDS=()      # background processes to stop at exit
E2E_CLEANUP=()   # shell commands the EXIT trap runs (containers to remove, ...)
DAEMON_PID=""    # the nomnomd started by e2e_start_daemon
DAEMON_URL=""    # http://127.0.0.1:<port>
DAEMON_PORT=""
DAEMON_LOG=""
HTTP_STATUS=""   # set by http
HTTP_BODY=""

e2e_log() { printf '[e2e %s] %s\n' "$E2E_NAME" "$*" >&2; }

# Ends the script: the assertion message, then the logs (by the EXIT trap).
e2e_fail() {
  E2E_FAILED=$((E2E_FAILED + 1))
  printf '[e2e %s] FAILED: %s\n' "$E2E_NAME" "$*" >&2
  exit 1
}

e2e_pass() {
  E2E_PASSED=$((E2E_PASSED + 1))
  e2e_log "ok: $*"
}

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
  if [ "$1" == "$2" ]; then e2e_pass "$3 = $2"; else e2e_fail "$3: expected '$2', got '$1'"; fi
}

# assert_ne ACTUAL UNEXPECTED WHAT
assert_ne() {
  if [ "$1" != "$2" ]; then e2e_pass "$3 = $1 (not $2)"; else e2e_fail "$3: expected anything but '$2'"; fi
}

# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() {
  if [[ "$1" == *"$2"* ]]; then e2e_pass "$3 contains '$2'"; else e2e_fail "$3: expected to contain '$2', got '$1'"; fi
}

# assert_match STRING REGEX WHAT   (bash =~)
assert_match() {
  if [[ "$1" =~ $2 ]]; then e2e_pass "$3 '$1' matches $2"; else e2e_fail "$3: '$1' does not match $2"; fi
}

# assert_cmp A OP B WHAT   (integers; OP is one of -lt -le -gt -ge -eq -ne)
assert_cmp() {
  if [[ "$1" =~ ^-?[0-9]+$ && "$3" =~ ^-?[0-9]+$ ]] && test "$1" "$2" "$3"; then
    e2e_pass "$4: $1 $2 $3"
  else
    e2e_fail "$4: expected $1 $2 $3"
  fi
}

# assert_status EXPECTED WHAT: the status of the last http call.
assert_status() {
  if [ "$HTTP_STATUS" == "$1" ]; then
    e2e_pass "$2 -> HTTP $1"
  else
    e2e_fail "$2: expected HTTP $1, got $HTTP_STATUS: $HTTP_BODY"
  fi
}

# Stops what the script started, prints the summary line. The EXIT trap.
e2e_cleanup() {
  local rc=$? pid
  set +e
  trap - EXIT
  if [ "$rc" != 0 ] && [ "$E2E_FAILED" = 0 ]; then
    # Not a failed assertion: a command failed under set -e.
    E2E_FAILED=1
    printf '[e2e %s] FAILED: exit %s after: %s\n' "$E2E_NAME" "$rc" "${E2E_LAST_ERROR:-?}" >&2
  fi
  for pid in "${E2E_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  local cmd
  for cmd in "${E2E_CLEANUP[@]}"; do eval "$cmd"; done
  for pid in "${E2E_PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "$E2E_FAILED" != 0 ]; then
    local f
    for f in "$E2E_TMP"/*.log "${NN_NATS_DIR:-/nonexistent}/server.log" "${NN_PG_DIR:-/nonexistent}/server.log"; do
      [ -f "$f" ] || continue
      printf -- '----- last lines of %s -----\n' "$f" >&2
      tail -n 25 "$f" >&2
    done
  fi
  nn_stop_services
  if [ "${E2E_KEEP:-0}" = 1 ]; then e2e_log "kept $E2E_TMP"; else rm -rf "$E2E_TMP"; fi
  echo "e2e $E2E_NAME: $E2E_PASSED passed, $E2E_FAILED failed ($((SECONDS - E2E_STARTED)) s)"
  [ "$E2E_FAILED" = 0 ] || exit 1
  exit "$rc"
}
trap e2e_cleanup EXIT
E2E_LAST_ERROR=""
trap 'E2E_LAST_ERROR="line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 143' TERM
trap 'exit 130' INT

# Own PostgreSQL and nats-server (exports DATABASE_URL, NATS_URL, NN_* ports).
e2e_start_services() {
  [ -x "$NOMNOM_BIN" ] || e2e_fail "nomnom not built: $NOMNOM_BIN"
  [ -x "$NOMNOMD_BIN" ] || e2e_fail "nomnomd not built: $NOMNOMD_BIN"
  # shellcheck disable=SC2119  # no extra postgres settings
  nn_start_postgres || e2e_fail "PostgreSQL did not start"
  nn_start_nats || e2e_fail "nats-server did not start"
}

# Restarts nats-server on the same ports and JetStream directory after
# e2e_stop_nats (services.sh starts it; this keeps its port for reconnects).
e2e_stop_nats() {
  kill -TERM "$NN_NATS_PID" 2>/dev/null || true
  wait "$NN_NATS_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NN_NATS_PORT") 2>/dev/null || return 0
    sleep 0.1
  done
  e2e_fail "nats-server still listens on $NN_NATS_PORT after SIGTERM"
}

e2e_start_nats_again() {
  nats-server -a 127.0.0.1 -p "$NN_NATS_PORT" -m "$NN_NATS_MONITOR_PORT" -js -sd "$NN_NATS_DIR/js" \
    >>"$NN_NATS_DIR/server.log" 2>&1 &
  NN_NATS_PID=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NN_NATS_PORT") 2>/dev/null && return 0
    kill -0 "$NN_NATS_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$NN_NATS_DIR/server.log" >&2
  e2e_fail "nats-server did not start again on port $NN_NATS_PORT"
}

# e2e_start_daemon [nomnomd flags...]: nomnomd on a free port, waits for
# /ready. Sets DAEMON_PID, DAEMON_PORT, DAEMON_URL, DAEMON_LOG. Each call logs
# to a new file (daemon-1.log, daemon-2.log, ...).
E2E_DAEMONS=0
e2e_start_daemon() {
  local attempt
  E2E_DAEMONS=$((E2E_DAEMONS + 1))
  DAEMON_LOG="$E2E_TMP/daemon-$E2E_DAEMONS.log"
  for attempt in 1 2 3 4 5; do
    DAEMON_PORT=$(nn_free_port)
    DAEMON_URL="http://127.0.0.1:$DAEMON_PORT"
    "$NOMNOMD_BIN" --listen "127.0.0.1:$DAEMON_PORT" --db "$DATABASE_URL" --nats "$NATS_URL" "$@" \
      >>"$DAEMON_LOG" 2>&1 &
    DAEMON_PID=$!
    E2E_PIDS+=("$DAEMON_PID")
    if e2e_wait_http "$DAEMON_URL/ready" 200 30 "$DAEMON_PID"; then
      e2e_log "nomnomd $* on $DAEMON_URL (pid $DAEMON_PID)"
      return 0
    fi
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    e2e_forget_pid "$DAEMON_PID"
    # A port taken between nn_free_port and bind: try another one.
    grep -qi 'address already in use' "$DAEMON_LOG" || break
    e2e_log "port $DAEMON_PORT taken (attempt $attempt), trying another"
  done
  e2e_fail "nomnomd did not become ready (log: $(tail -n 5 "$DAEMON_LOG"))"
}

# Drops a reaped process from the list the EXIT trap stops (its pid may be reused).
e2e_forget_pid() {
  local keep=() p
  for p in "${E2E_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  E2E_PIDS=("${keep[@]}")
}

# e2e_stop_daemon [SIGNAL]: signals nomnomd and waits; sets DAEMON_RC.
DAEMON_RC=""
e2e_stop_daemon() {
  local sig=${1:-TERM}
  kill "-$sig" "$DAEMON_PID" 2>/dev/null || true
  DAEMON_RC=0
  wait "$DAEMON_PID" || DAEMON_RC=$?
  e2e_forget_pid "$DAEMON_PID"
}

# e2e_start_worker NAME [nomnom worker flags...]: `nomnom worker` in the
# background, logging to NAME.log. Sets WORKER_PID.
WORKER_PID=""
e2e_start_worker() {
  local name=$1
  shift
  "$NOMNOM_BIN" worker --db "$DATABASE_URL" --nats "$NATS_URL" "$@" >"$E2E_TMP/$name.out" 2>"$E2E_TMP/$name.log" &
  WORKER_PID=$!
  E2E_PIDS+=("$WORKER_PID")
}

# e2e_worker_killed_at NAME KILL_AT WORKER_OPTS...: starts `nomnom worker`
# NAME and SIGKILLs it as soon as nomnom_ledger holds KILL_AT chunks; fails
# when the worker exits first or has not got there within 60 s. Sets
# KILLED_AT to the ledger's chunk count after the kill.
KILLED_AT=""
e2e_worker_killed_at() {
  local name=$1 kill_at=$2 pid done_chunks deadline=$((SECONDS + 60))
  shift 2
  e2e_start_worker "$name" "$@"
  pid=$WORKER_PID
  while :; do
    done_chunks=$(sql "SELECT count(*) FROM nomnom_ledger" 2>/dev/null || echo 0)
    [ "$done_chunks" -lt "$kill_at" ] || break
    kill -0 "$pid" 2>/dev/null || e2e_fail "$name exited early: $(cat "$E2E_TMP/$name.log")"
    [ "$SECONDS" -lt "$deadline" ] || e2e_fail "$name committed only $done_chunks chunks in 60 s"
    sleep 0.02
  done
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  e2e_forget_pid "$pid"
  KILLED_AT=$(sql "SELECT count(*) FROM nomnom_ledger")
}

# e2e_wait_pid PID TIMEOUT WHAT: waits for a background process to exit;
# sets WAIT_RC. Fails when it still runs after TIMEOUT seconds.
WAIT_RC=""
e2e_wait_pid() {
  local pid=$1 timeout=$2 what=$3 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || e2e_fail "$what still running after ${timeout} s"
    sleep 0.2
  done
  WAIT_RC=0
  wait "$pid" || WAIT_RC=$?
  e2e_forget_pid "$pid"
}

# e2e_wait_http URL STATUS TIMEOUT [PID]: polls until URL answers STATUS;
# returns 1 on timeout or when PID (if given) exits.
e2e_wait_http() {
  local url=$1 want=$2 deadline=$((SECONDS + $3)) pid=${4:-} got
  while [ "$SECONDS" -lt "$deadline" ]; do
    got=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)
    [ "$got" == "$want" ] && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

# http METHOD PATH [curl args...]: a request to the daemon; sets HTTP_STATUS
# and HTTP_BODY (the response body). Not in a subshell, so the globals stick.
http() {
  local method=$1 path=$2
  shift 2
  HTTP_STATUS=$(curl -sS -m 30 -o "$E2E_TMP/http.body" -w '%{http_code}' -X "$method" "$@" "$DAEMON_URL$path") \
    || e2e_fail "curl $method $path failed (status '$HTTP_STATUS')"
  HTTP_BODY=$(cat "$E2E_TMP/http.body")
}

# post_json PATH BODY [curl args...]: POST with Content-Type: application/json.
post_json() {
  local path=$1 body=$2
  shift 2
  http POST "$path" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# json_get PATH [JSON]: a field of JSON (default: HTTP_BODY) by a dotted path
# ("errors.0.line"); objects and arrays are printed as JSON, booleans as
# true/false, null as null. Fails the test when the path does not exist.
json_get() {
  local out
  out=$(python3 -c '
import json, sys
d = json.loads(sys.argv[2])
for k in [k for k in sys.argv[1].split(".") if k]:
    d = d[int(k)] if isinstance(d, list) else d[k]
if isinstance(d, (dict, list)) or d is None or isinstance(d, bool):
    print(json.dumps(d))
else:
    print(d)
' "$1" "${2-$HTTP_BODY}" 2>&1) || e2e_fail "no field '$1' in: ${2-$HTTP_BODY} ($out)"
  printf '%s\n' "$out"
}

# sql QUERY: one psql command; unaligned, tuples only.
sql() {
  psql -X -q -At -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"
}

# wait_until QUERY EXPECTED TIMEOUT [WHAT]: polls QUERY until it prints
# EXPECTED; fails with the last value after TIMEOUT seconds.
wait_until() {
  local query=$1 want=$2 deadline=$((SECONDS + $3)) what=${4:-$1} got=""
  while :; do
    got=$(sql "$query" 2>&1 || true)
    if [ "$got" == "$want" ]; then
      e2e_pass "$what reached $want"
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || e2e_fail "$what: expected '$want' within $3 s, last value '$got'"
    sleep 0.2
  done
}

# wait_status ID EXPECTED TIMEOUT: polls GET /ingest/status/ID until its
# "status" field is EXPECTED (extra curl args from STATUS_CURL_ARGS).
STATUS_CURL_ARGS=()
wait_status() {
  local id=$1 want=$2 deadline=$((SECONDS + $3)) got=""
  while :; do
    http GET "/ingest/status/$id" "${STATUS_CURL_ARGS[@]}"
    got="$HTTP_STATUS $(json_get status 2>/dev/null || true)"
    if [ "$got" == "200 $want" ]; then
      e2e_pass "status of $id is $want"
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || e2e_fail "status of $id: expected $want within $3 s, last answer $HTTP_STATUS $HTTP_BODY"
    sleep 0.2
  done
}

# order_json KEY [PRICE]: one valid Order as a JSON line.
order_json() {
  printf '{"order_key":"%s","customer_key":"CUST-%s","order_status":"O","total_price":%s,"order_date":"2024-01-01","order_priority":"1-URGENT","clerk":"Clerk#001","ship_priority":0,"comment":"e2e"}' \
    "$1" "$1" "${2:-99.99}"
}

# nats_stream_messages STREAM: messages in a JetStream stream, from the
# nats-server monitoring endpoint (there is no nats CLI here).
nats_stream_messages() { nats_stream_state "$1" messages; }
# nats_stream_stored STREAM: messages ever stored in it (its last sequence
# number): the main stream is a work queue, so acked chunks leave it.
nats_stream_stored() { nats_stream_state "$1" last_seq; }
nats_stream_state() {
  curl -sS -m 5 "http://127.0.0.1:$NN_NATS_MONITOR_PORT/jsz?streams=1" | python3 -c '
import json, sys
j = json.load(sys.stdin)
for acc in j.get("account_details", []):
    for s in acc.get("stream_detail", []):
        if s["name"] == sys.argv[1]:
            print(s["state"][sys.argv[2]])
            sys.exit(0)
print("no stream " + sys.argv[1])
sys.exit(1)
' "$1" "$2"
}

# nats_consumer FIELD [STREAM] [CONSUMER]: a field of the durable consumer's
# info (num_ack_pending, num_pending, num_redelivered, ...) from the
# monitoring endpoint; default MESSAGES / workers.
nats_consumer() {
  curl -sS -m 5 "http://127.0.0.1:$NN_NATS_MONITOR_PORT/jsz?consumers=1" | python3 -c '
import json, sys
j = json.load(sys.stdin)
for acc in j.get("account_details", []):
    for s in acc.get("stream_detail", []):
        for c in s.get("consumer_detail", []) if s["name"] == sys.argv[2] else []:
            if c["name"] == sys.argv[3]:
                print(c.get(sys.argv[1], 0))
                sys.exit(0)
print("no consumer %s on %s" % (sys.argv[3], sys.argv[2]))
sys.exit(1)
' "$1" "${2:-MESSAGES}" "${3:-workers}"
}
