#!/usr/bin/env bash
# e2e fault: the stream fills up to a byte-exact boundary. With no worker
# running, an API-only nomnomd (--stream-max-mb 1) is sent messages until
# less than two more fit, then one whose stored record is 25 bytes larger
# than the free space while its payload and headers alone fit
# (stream_boundary.py). nomnomd must answer it 503, or 202 with nothing else
# lost: the full stream must still hold every chunk it acknowledged (first
# sequence 1, no message missing), and once a worker drains it every row
# answered 202 is in orders exactly once. (nats-server 2.9 checks the payload
# against max_bytes but counts the whole record, then drops the oldest
# message to get under the limit, even with discard new on a work queue.)
# shellcheck source=faults_lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/faults_lib.sh"

stream=(--stream-max-mb 1 --ack-wait-ms 2000 "${FAULTS_WORKER_OPTS[@]}")
e2e_start_services
faults_create_orders
e2e_start_daemon --workers 0 --linger-ms 0 "${stream[@]}"

mkdir -p "$E2E_TMP/load-boundary"
LOAD_NAMES+=(boundary)
out=$(python3 "$E2E_DIR/stream_boundary.py" "$DAEMON_PORT" "$NN_NATS_MONITOR_PORT" MESSAGES "$E2E_TMP/load-boundary" \
  2>"$E2E_TMP/boundary.log") || e2e_fail "stream_boundary.py failed: $(cat "$E2E_TMP/boundary.log")"
e2e_log "boundary: $out"
assert_match "$(json_get boundary_status "$out")" '^(202|503)$' "answer to the message at the boundary"
assert_eq "$(json_get after.first_seq "$out"),$(json_get after.messages "$out")" "1,$(json_get after.last_seq "$out")" \
  "first sequence, messages in the stream after the message at the boundary (nothing dropped)"

e2e_start_daemon --workers 1 --fetch-batch 10 "${stream[@]}"
faults_collect_keys
faults_wait_done 60
faults_check_exactly_once not-stored
