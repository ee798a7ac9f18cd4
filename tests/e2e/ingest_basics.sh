#!/usr/bin/env bash
# e2e: /ingest/message and /ingest/batch -> JetStream -> embedded worker ->
# PostgreSQL, and GET /ingest/status/{id} for messages, batches (partial, and
# spanning several chunks) and unknown ids.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
e2e_start_daemon --workers 1 --chunk-rows 100 --linger-ms 50

uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'

# --- one message ---------------------------------------------------------------
post_json /ingest/message "$(order_json m-1 12.5)"
assert_status 202 "POST /ingest/message"
assert_eq "$(json_get status)" accepted "message status"
mid=$(json_get message_id)
assert_match "$mid" "${uuid_re}\\.0\$" "message_id"
wait_status "$mid" processed 20
assert_eq "$(json_get kind)" message "kind of $mid"
assert_eq "$(json_get rows)" 1 "rows of $mid"
assert_eq "$(sql "SELECT customer_key, order_status, total_price, ship_priority FROM orders WHERE order_key = 'm-1'")" \
  "CUST-m-1|O|12.5|0" "stored row m-1"

# --- concurrent messages share chunks (linger), each has its own id ----------------
pids=()
for i in 1 2 3 4 5 6; do
  curl -sS -m 30 -o "$E2E_TMP/c$i.json" -H 'Content-Type: application/json' \
    --data-binary "$(order_json "c-$i")" "$DAEMON_URL/ingest/message" &
  pids+=($!)
done
wait "${pids[@]}"
ids=()
for i in 1 2 3 4 5 6; do
  ids+=("$(json_get message_id "$(cat "$E2E_TMP/c$i.json")")")
done
assert_eq "$(printf '%s\n' "${ids[@]}" | sort -u | wc -l)" 6 "distinct message ids of 6 concurrent messages"
for id in "${ids[@]}"; do wait_status "$id" processed 20; done
assert_eq "$(sql "SELECT count(*) FROM orders WHERE order_key LIKE 'c-%'")" 6 "rows of the concurrent messages"

# --- a batch with bad lines: 202 partial, line numbers count blank lines -------------
{
  order_json b-1; echo
  order_json b-2; echo
  echo '{"order_key":"b-bad-1",'            # line 3: malformed
  echo                                      # line 4: blank, skipped
  order_json b-3; echo                      # line 5
  echo '{"order_key":"b-bad-2"}'            # line 6: missing fields
  order_json b-bad-3 '"cheap"'; echo        # line 7: wrong type
  printf '%s' "$(order_json b-4)"           # line 8: no final newline
} >"$E2E_TMP/batch.ndjson"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/batch.ndjson"
assert_status 202 "POST /ingest/batch with 3 bad lines"
assert_eq "$(json_get status)" partial "batch status"
assert_eq "$(json_get accepted)" 4 "batch accepted"
assert_eq "$(json_get rejected)" 3 "batch rejected"
assert_eq "$(json_get errors.0.line),$(json_get errors.1.line),$(json_get errors.2.line)" 3,6,7 "errors[].line"
assert_contains "$(json_get errors.1.error)" customer_key "error of line 6"
assert_contains "$(json_get errors.2.error)" total_price "error of line 7"
bid=$(json_get batch_id)
assert_match "$bid" "${uuid_re}\$" "batch_id"
wait_status "$bid" processed 20
assert_eq "$(json_get kind)" batch "kind of $bid"
assert_eq "$(json_get rows)" 4 "rows of $bid"
assert_eq "$(json_get rows_dead)" 0 "rows_dead of $bid"
assert_eq "$(sql "SELECT string_agg(order_key, ',' ORDER BY order_key) FROM orders WHERE order_key LIKE 'b-%'")" \
  "b-1,b-2,b-3,b-4" "rows stored from the batch (only the good ones)"

# --- a batch of 1000 rows in 10 chunks ----------------------------------------------
for i in $(seq 1 1000); do order_json "big-$i"; echo; done >"$E2E_TMP/big.ndjson"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/big.ndjson"
assert_status 202 "POST /ingest/batch of 1000 rows"
assert_eq "$(json_get status),$(json_get accepted),$(json_get rejected)" accepted,1000,0 "big batch answer"
big=$(json_get batch_id)
wait_status "$big" processed 30
assert_eq "$(json_get rows)" 1000 "rows of the big batch"
assert_eq "$(sql "SELECT count(*), min(chunk_count), max(chunk_count), count(DISTINCT chunk_index) FROM nomnom_ledger WHERE batch_id = '$big'")" \
  "10|10|10|10" "ledger chunks of the big batch"
assert_eq "$(sql "SELECT count(*) FROM orders WHERE order_key LIKE 'big-%'")" 1000 "rows stored from the big batch"

# --- unknown ids ------------------------------------------------------------------------
for id in 6f1c2a9e-1b7d-4c1e-9b8e-2f0d3c4b5a69 6f1c2a9e-1b7d-4c1e-9b8e-2f0d3c4b5a69.0 not-an-id; do
  http GET "/ingest/status/$id"
  assert_status 404 "GET /ingest/status/$id (unknown)"
  assert_contains "$(json_get error)" unknown "404 body for $id"
done

# Everything accepted is in the table, nothing else.
assert_eq "$(sql "SELECT count(*) FROM orders")" 1011 "rows in orders"
assert_eq "$(sql "SELECT sum(rows_committed) FROM nomnom_ledger")" 1011 "rows committed per the ledger"
