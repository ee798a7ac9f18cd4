#!/usr/bin/env bash
# e2e: Idempotency-Key on /ingest/message: the same key twice (also with a
# different body, and after a daemon restart) is stored once; the repeat is
# answered "duplicate" with the same message_id. After JetStream's duplicate
# window the key is stored in the stream again, and the worker's ledger keeps
# the row from being written twice.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
# JetStream duplicate window, seconds: long enough that a daemon restart under
# CPU load ends well inside it (the test needs that), short enough to wait out.
window=30
e2e_start_daemon --workers 1 --duplicate-window "$window"

t0=$SECONDS
post_json /ingest/message "$(order_json idem-1)" -H 'Idempotency-Key: order-idem-1'
assert_status 202 "first POST with Idempotency-Key"
assert_eq "$(json_get status)" accepted "first answer status"
first_id=$(json_get message_id)

post_json /ingest/message "$(order_json idem-1)" -H 'Idempotency-Key: order-idem-1'
assert_status 202 "second POST with the same key"
assert_eq "$(json_get status)" duplicate "second answer status"
assert_eq "$(json_get message_id)" "$first_id" "message_id of the duplicate"

# Same key, different body: a conflict, and nothing stored.
post_json /ingest/message "$(order_json idem-2)" -H 'Idempotency-Key: order-idem-1'
assert_status 409 "same key, different body"
assert_contains "$(json_get error)" "another body" "answer for a different body under the same key"

# Another key: another message.
post_json /ingest/message "$(order_json idem-3)" -H 'Idempotency-Key: order-idem-3'
assert_status 202 "POST with another key"
assert_eq "$(json_get status)" accepted "answer status for another key"
other_id=$(json_get message_id)
assert_ne "$other_id" "$first_id" "message_id for another key"

wait_status "$first_id" processed 20
wait_status "$other_id" processed 20
sleep 1  # a second copy, if one had been stored, would be committed by now
assert_eq "$(sql "SELECT string_agg(order_key, ',' ORDER BY order_key) FROM orders")" "idem-1,idem-3" "rows in orders"
assert_eq "$(sql "SELECT count(*) FROM nomnom_ledger WHERE batch_id = '${first_id%.0}'")" 1 "ledger rows for the key"
assert_eq "$(nats_stream_stored MESSAGES)" 2 "messages stored in the JetStream stream"

# A new daemon process (same JetStream): the key is still known.
e2e_stop_daemon TERM
assert_eq "$DAEMON_RC" 0 "exit code of the first daemon"
e2e_start_daemon --workers 1 --duplicate-window "$window"
post_json /ingest/message "$(order_json idem-1)" -H 'Idempotency-Key: order-idem-1'
[ $((SECONDS - t0)) -lt "$window" ] ||
  e2e_fail "too slow to test: the daemon restart ended $((SECONDS - t0)) s after the first post, past the ${window} s duplicate window"
assert_status 202 "same key after a daemon restart"
assert_eq "$(json_get status)" duplicate "answer status after a daemon restart"
assert_eq "$(json_get message_id)" "$first_id" "message_id after a daemon restart"
http GET "/ingest/status/$first_id"
assert_status 200 "status of the first message from the new daemon"
assert_eq "$(json_get status)" processed "status of the first message from the new daemon"

http GET /stats
assert_eq "$(json_get api.duplicates)" 1 "duplicates counted by the new daemon"
assert_eq "$(json_get database.rows_committed)" 2 "rows committed per /stats"

# After the duplicate window JetStream stores the key again (the API cannot
# tell it is a repeat); the worker finds the chunk in its ledger and skips it.
while [ $((SECONDS - t0)) -le $((window + 1)) ]; do sleep 0.5; done
post_json /ingest/message "$(order_json idem-5)" -H 'Idempotency-Key: order-idem-1'
assert_status 202 "same key after the duplicate window"
assert_eq "$(json_get status)" accepted "answer status after the duplicate window"
assert_eq "$(json_get message_id)" "$first_id" "message_id after the duplicate window"
assert_eq "$(nats_stream_stored MESSAGES)" 3 "messages stored in the JetStream stream after the window"
deadline=$((SECONDS + 20))
while :; do
  http GET /stats
  [ "$(json_get workers.redeliveries_skipped)" != 1 ] || break
  [ "$SECONDS" -lt "$deadline" ] || e2e_fail "the worker did not skip the repeated chunk within 20 s: $HTTP_BODY"
  sleep 0.2
done
e2e_pass "the worker skipped the repeated chunk (in its ledger)"
assert_eq "$(json_get jetstream.consumer_lag)" 0 "consumer lag after the repeat"
assert_eq "$(sql "SELECT string_agg(order_key, ',' ORDER BY order_key) FROM orders")" "idem-1,idem-3" "rows in orders after the repeat"
assert_eq "$(sql "SELECT count(*) FROM nomnom_ledger")" 2 "ledger rows after the repeat"

# Keys are bounded.
post_json /ingest/message "$(order_json idem-4)" -H "Idempotency-Key: $(printf 'k%.0s' $(seq 1 257))"
assert_status 400 "Idempotency-Key of 257 characters"
assert_eq "$(sql "SELECT count(*) FROM orders")" 2 "rows in orders at the end"
