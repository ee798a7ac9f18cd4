#!/usr/bin/env bash
# e2e fault: the stream is full. An API-only nomnomd with --stream-max-mb 1
# takes a steady HTTP load with no worker running until JetStream refuses
# chunks (discard new): those requests are answered 503, nothing accepted is
# pushed out. Then a second nomnomd with an embedded worker (same stream
# settings) drains the stream, and the first one answers 202 again. Every
# row answered 202 is in orders exactly once; no row answered 503 is (each
# request is one chunk, so a 503 stored nothing); nothing is dead-lettered.
# shellcheck source=faults_lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/faults_lib.sh"

stream=(--stream-max-mb 1 --ack-wait-ms 2000 "${FAULTS_WORKER_OPTS[@]}")
e2e_start_services
faults_create_orders
e2e_start_daemon --workers 0 --linger-ms 5 "${stream[@]}"
api_pid=$DAEMON_PID

faults_start_load load --threads 4 --batch-rows 20 --pause-ms 10
deadline=$((SECONDS + 60))
until [ "$(faults_progress load 2)" -ge 20 ]; do
  [ "$SECONDS" -lt "$deadline" ] || e2e_fail "no 503 within 60 s (answered 202: $(faults_progress load), stream: $(nats_stream_state MESSAGES bytes) bytes)"
  sleep 0.2
done
full_at=$(faults_progress load)
e2e_pass "the full stream made nomnomd answer 503 ($(faults_progress load 2) times after $full_at 202s)"
sleep 1
e2e_log "stream when full: $(nats_stream_messages MESSAGES) messages, $(nats_stream_state MESSAGES bytes) bytes, sequences $(nats_stream_state MESSAGES first_seq)..$(nats_stream_state MESSAGES last_seq)"
# No worker has run: nothing may have left the stream (a work queue that
# refuses new messages when full: an acknowledged chunk is never dropped).
assert_eq "$(nats_stream_state MESSAGES first_seq),$(nats_stream_messages MESSAGES)" \
  "1,$(nats_stream_state MESSAGES last_seq)" "first sequence, messages in the full stream before any worker ran"

e2e_start_daemon --workers 1 --fetch-batch 10 --linger-ms 5 "${stream[@]}"
e2e_log "a second nomnomd with an embedded worker drains the stream"
faults_wait_load load $((full_at + 100)) 60
e2e_pass "requests answered 202 again once the worker drains the stream"
faults_stop_load load
faults_alive "$api_pid" "the API-only nomnomd"
assert_eq "$(python3 -c 'import json, sys; print(sorted(set(json.load(open(sys.argv[1]))["statuses"]) - {"202", "503"}))' "$E2E_TMP/load-load/summary.json")" \
  "[]" "answers other than 202 and 503"
e2e_log "the first 503 answer: $(json_get first_bodies.503 "$(cat "$E2E_TMP/load-load/summary.json")")"

faults_collect_keys
http GET /stats
e2e_log "/stats of the nomnomd with the worker: $HTTP_BODY"
faults_wait_done 60
faults_check_exactly_once not-stored
