#!/usr/bin/env bash
# e2e: rows that only PostgreSQL rejects (a CHECK constraint on a pre-created
# orders table) go to nomnom_dead_letters with PostgreSQL's message and to the
# MESSAGES_DLQ stream, while the rest of their chunk commits; the status of
# the batch and of single messages says so.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
# The seed's orders table, plus a CHECK the entity knows nothing about.
sql "CREATE TABLE orders (
    order_key      VARCHAR(255) NOT NULL PRIMARY KEY,
    customer_key   VARCHAR(255) NOT NULL,
    order_status   VARCHAR(1)   NOT NULL,
    total_price    DOUBLE PRECISION NOT NULL,
    order_date     VARCHAR(255) NOT NULL,
    order_priority VARCHAR(255),
    clerk          VARCHAR(255),
    ship_priority  INTEGER,
    comment        TEXT,
    CONSTRAINT orders_price_check CHECK (total_price >= 0))"
e2e_start_daemon --workers 1 --linger-ms 1000

# --- a batch: lines 3, 7 and 8 have negative prices ---------------------------------------
for i in $(seq 1 10); do
  case $i in 3 | 7 | 8) order_json "dl-$i" "-$i.5" ;; *) order_json "dl-$i" "$i.25" ;; esac
  echo
done >"$E2E_TMP/batch.ndjson"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/batch.ndjson"
assert_status 202 "POST /ingest/batch (the API cannot know about the CHECK)"
assert_eq "$(json_get status),$(json_get accepted),$(json_get rejected)" accepted,10,0 "batch answer"
bid=$(json_get batch_id)
wait_status "$bid" processed 20
assert_eq "$(json_get rows)" 7 "rows of the batch per /ingest/status"
assert_eq "$(json_get rows_dead)" 3 "rows_dead of the batch per /ingest/status"

assert_eq "$(sql "SELECT string_agg(order_key, ',' ORDER BY order_key::text COLLATE \"C\") FROM orders")" \
  "dl-1,dl-10,dl-2,dl-4,dl-5,dl-6,dl-9" "rows committed (the good ones)"
assert_eq "$(sql "SELECT string_agg(line::text, ',' ORDER BY line) FROM nomnom_dead_letters WHERE batch_id = '$bid'")" \
  "3,7,8" "dead-letter lines of the batch"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters WHERE batch_id = '$bid' AND msg_id = '$bid:0' AND entity = 'Order'
                   AND error LIKE '%violates check constraint \"orders_price_check\"%'")" 3 \
  "dead letters with PostgreSQL's check-constraint message"
assert_eq "$(sql "SELECT raw::json->>'order_key' || ' ' || (raw::json->>'total_price') FROM nomnom_dead_letters WHERE line = 7")" \
  "dl-7 -7.5" "raw row of the dead letter of line 7"
assert_eq "$(sql "SELECT rows_committed, rows_dead, dead FROM nomnom_ledger WHERE batch_id = '$bid'")" "7|3|f" \
  "ledger row of the batch"
e2e_log "dead letter: $(sql "SELECT error FROM nomnom_dead_letters WHERE line = 3")"

# --- two messages sharing a chunk (linger): one good, one rejected ------------------------
curl -sS -m 30 -o "$E2E_TMP/bad.json" -H 'Content-Type: application/json' \
  --data-binary "$(order_json dm-bad -1)" "$DAEMON_URL/ingest/message" &
bad_pid=$!
post_json /ingest/message "$(order_json dm-good 5)"
assert_status 202 "POST /ingest/message (good)"
good=$(json_get message_id)
wait "$bad_pid" || e2e_fail "POST /ingest/message (negative price) failed"
bad=$(json_get message_id "$(cat "$E2E_TMP/bad.json")")
assert_eq "${bad%.*}" "${good%.*}" "chunk of the two messages (they share it)"
wait_status "$good" processed 20
wait_status "$bad" dead 20
assert_contains "$(json_get error)" "orders_price_check" "error in the status of the rejected message"
assert_eq "$(sql "SELECT count(*) FROM orders WHERE order_key LIKE 'dm-%'")" 1 "rows stored from the two messages"

# --- a batch whose every row is rejected ---------------------------------------------------
printf '%s\n%s\n' "$(order_json da-1 -1)" "$(order_json da-2 -2)" >"$E2E_TMP/all-bad.ndjson"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/all-bad.ndjson"
assert_status 202 "POST /ingest/batch (every row breaks the CHECK)"
all_bad=$(json_get batch_id)
wait_status "$all_bad" dead 20
assert_contains "$(json_get error)" "orders_price_check" "error in the status of the all-rejected batch"
assert_eq "$(sql "SELECT rows_committed, rows_dead, dead FROM nomnom_ledger WHERE batch_id = '$all_bad'")" "0|2|f" \
  "ledger row of the all-rejected batch"

# --- the dead-letter stream ------------------------------------------------------------------
deadline=$((SECONDS + 10))
until [ "$(nats_stream_messages MESSAGES_DLQ)" = 6 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
assert_eq "$(nats_stream_messages MESSAGES_DLQ)" 6 "messages in the MESSAGES_DLQ stream (one per dead row)"
assert_eq "$(nats_stream_stored MESSAGES)" 3 "messages stored in the MESSAGES stream"
assert_eq "$(nats_stream_messages MESSAGES)" 0 "messages left in the MESSAGES work queue once committed"

http GET /stats
assert_eq "$(json_get workers.rows_dead),$(json_get workers.rows_committed)" 6,8 "/stats workers rows_dead,rows_committed"
assert_eq "$(json_get database.dead_letters)" 6 "/stats database.dead_letters"
assert_eq "$(curl -sS "$DAEMON_URL/metrics" | awk '$1 == "nomnom_worker_rows_dead_total" { print $2 }')" 6 \
  "nomnom_worker_rows_dead_total"
