#!/usr/bin/env bash
# e2e: nested orders through nomnomd and its worker (--entities
# data/tpch/entities-nested, --on-conflict update): the original's example
# order with two line items lands in orders and order_line_items exactly; a bad
# line item is a 400 naming it; in a batch the bad order alone is rejected; a
# re-sent order replaces its line items; every message fills each table once.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
e2e_start_daemon --workers 1 --chunk-rows 100 --linger-ms 50 --on-conflict update \
  --entities "$E2E_ROOT/data/tpch/entities-nested"

item() {  # item LINE PART [extra JSON members]
  printf '{"line_number":%s,"part_key":"%s","supplier_key":"S-%s","quantity":2,"extended_price":40.5%s}' "$1" "$2" "$2" "${3:-}"
}
nested() {  # nested KEY ITEMS_JSON
  printf '{"order_key":"%s","customer_key":"CUST-%s","order_status":"O","total_price":99.99,"order_date":"2024-01-01","line_items":[%s]}' \
    "$1" "$1" "$2"
}
items_of() {
  sql "SELECT string_agg(line_number || ':' || part_key, ',' ORDER BY line_number) FROM order_line_items WHERE order_key = '$1'"
}

# --- the original's example order, one message ------------------------------------
post_json '/ingest/message?entity=Order' "$(nested 123 "$(item 1 P1 ',"discount":0.05,"tax":0.08'),$(item 2 P2)")"
assert_status 202 "POST /ingest/message nested order"
mid=$(json_get message_id)
wait_status "$mid" processed 30
assert_eq "$(sql "SELECT order_key, customer_key, order_status, total_price FROM orders")" "123|CUST-123|O|99.99" \
  "orders row"
assert_eq "$(sql "SELECT order_key, line_number, part_key, supplier_key, quantity, extended_price, discount, tax FROM order_line_items ORDER BY line_number")" \
  "123|1|P1|S-P1|2|40.5|0.05|0.08
123|2|P2|S-P2|2|40.5||" "order_line_items rows"

# --- a bad line item: 400 naming the element, nothing stored --------------------------
post_json '/ingest/message?entity=Order' "$(nested 124 "$(item 1 P1),{\"line_number\":2}")"
assert_status 400 "POST a nested order with a bad line item"
assert_contains "$(json_get error)" "line_items[1].part_key: missing required field" "error names the element"

# --- a batch: the order with a bad item is rejected alone ------------------------------
{
  nested b-1 "$(item 1 X),$(item 2 Y)"; echo
  nested b-bad "$(item 1 X),$(item 1 Z)"; echo
  nested b-2 "$(item 1 X)"; echo
} >"$E2E_TMP/batch.ndjson"
http POST '/ingest/batch?entity=Order' -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/batch.ndjson"
assert_status 202 "POST /ingest/batch with one bad order"
assert_eq "$(json_get accepted),$(json_get rejected)" 2,1 "accepted, rejected"
assert_contains "$(json_get errors.0.error)" "line_items[1]: duplicate key" "batch error names the element"
bid=$(json_get batch_id)
wait_status "$bid" processed 30
assert_eq "$(items_of b-1)" "1:X,2:Y" "line items of b-1"
assert_eq "$(items_of b-2)" "1:X" "line items of b-2"
assert_eq "$(sql "SELECT count(*) FROM orders WHERE order_key = 'b-bad'")" 0 "no b-bad order"

# --- update: a re-sent order replaces its line items -----------------------------------
post_json '/ingest/message?entity=Order' "$(nested 123 "$(item 2 P2-new),$(item 3 P3)")"
assert_status 202 "POST re-sent order 123"
wait_status "$(json_get message_id)" processed 30
assert_eq "$(items_of 123)" "2:P2-new,3:P3" "line items of the re-sent order"

assert_eq "$(sql "SELECT count(*) FROM orders")" 3 "rows in orders"
assert_eq "$(sql "SELECT count(*) FROM order_line_items")" 5 "rows in order_line_items"
assert_eq "$(sql "SELECT sum(rows_committed) FROM nomnom_ledger")" 4 "orders committed per the ledger"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "no dead letters"

# --- nomnom load --via-nats: lines validated with their elements, published whole -------
{
  nested v-1 "$(item 1 V1),$(item 2 V2)"; echo
  nested v-bad "$(item 1 V1 ',"quantity":"x"')"; echo
  nested v-2 "$(item 1 V3)"; echo
} >"$E2E_TMP/via.ndjson"
rc=0
"$NOMNOM_BIN" load "$E2E_TMP/via.ndjson" --via-nats --nats "$NATS_URL" \
  --entities "$E2E_ROOT/data/tpch/entities-nested" --json >"$E2E_TMP/via.json" 2>"$E2E_TMP/via.err" || rc=$?
assert_eq "$rc" 3 "nomnom load --via-nats exit code (one rejected line)"
assert_eq "$(json_get published_rows "$(cat "$E2E_TMP/via.json")")" 2 "published rows"
assert_contains "$(cat "$E2E_TMP/via.err")" "quantity" "the reject names the element's field"
wait_until "SELECT count(*) FROM orders WHERE order_key LIKE 'v-%'" 2 30 "orders from --via-nats"
wait_until "SELECT count(*) FROM order_line_items WHERE order_key LIKE 'v-%'" 3 30 "line items from --via-nats"

# --- depth 2 (tests/fixtures/entities-deep): Order -> OrderLineItem -> OrderLineItemAdjustment -----
# Its Order also targets `orders` (with other columns): a daemon of its own on
# emptied tables.
e2e_stop_daemon
sql "DROP TABLE orders, order_line_items, nomnom_versions_orders"
e2e_start_daemon --workers 1 --chunk-rows 100 --linger-ms 50 --on-conflict update \
  --entities "$E2E_ROOT/tests/fixtures/entities-deep"
deep_rows() {
  printf '%s\n--\n%s\n--\n%s' \
    "$(sql "SELECT order_key, customer_key FROM orders ORDER BY 1")" \
    "$(sql "SELECT order_key, line_number, part_key FROM order_line_items ORDER BY 1, 2")" \
    "$(sql "SELECT order_key, line_number, adjustment_no, amount, reason FROM order_line_item_adjustments ORDER BY 1, 2, 3")"
}
post_json '/ingest/message?entity=Order' \
  '{"order_key":"d1","customer_key":"c1","line_items":[{"line_number":1,"part_key":"p1","adjustments":[{"no":1,"amount":5,"reason":"promo"},{"no":2,"amount":-1.5}]},{"line_number":2,"part_key":"p2"}]}'
assert_status 202 "POST a depth-2 order"
wait_status "$(json_get message_id)" processed 30
assert_eq "$(deep_rows)" "d1|c1
--
d1|1|p1
d1|2|p2
--
d1|1|1|5|promo
d1|1|2|-1.5|" "depth 2: the rows of all three tables"

post_json '/ingest/message?entity=Order' \
  '{"order_key":"d2","customer_key":"c","line_items":[{"line_number":1,"part_key":"p","adjustments":[{"no":1,"amount":"x"}]}]}'
assert_status 400 "POST a depth-2 order with a bad adjustment"
assert_contains "$(json_get error)" "line_items[0].adjustments[0].amount: expected a number, got string" \
  "the error names the full path"

# update: the re-sent order replaces its whole subtree.
post_json '/ingest/message?entity=Order' \
  '{"order_key":"d1","customer_key":"c1-new","line_items":[{"line_number":2,"part_key":"p2","adjustments":[{"no":1,"amount":9}]}]}'
assert_status 202 "POST the depth-2 order again"
wait_status "$(json_get message_id)" processed 30
assert_eq "$(deep_rows)" "d1|c1-new
--
d1|2|p2
--
d1|2|1|9|" "depth 2: the re-sent order's subtree replaced"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "no dead letters"

# --- depth 2 through nomnom load --via-nats: every level validated before publishing, -----
# one bad adjustment costs only its order, the daemon's worker fills all three tables.
cat >"$E2E_TMP/deep.ndjson" <<'NDJSON'
{"order_key":"v1","customer_key":"cv1","line_items":[{"line_number":1,"part_key":"a","adjustments":[{"no":1,"amount":1.25},{"no":2,"amount":2,"reason":"r"}]},{"line_number":2,"part_key":"b"}]}
{"order_key":"vbad","customer_key":"c","line_items":[{"line_number":1,"part_key":"p","adjustments":[{"no":1,"amount":"x"}]}]}
{"order_key":"v2","customer_key":"cv2","line_items":[{"line_number":1,"part_key":"c","adjustments":[{"no":1,"amount":-3}]}]}
NDJSON
rc=0
"$NOMNOM_BIN" load "$E2E_TMP/deep.ndjson" --via-nats --nats "$NATS_URL" --entity Order \
  --entities "$E2E_ROOT/tests/fixtures/entities-deep" --json >"$E2E_TMP/deep.json" 2>"$E2E_TMP/deep.err" || rc=$?
assert_eq "$rc" 3 "depth 2 via nats: exit code (one rejected line)"
assert_eq "$(json_get published_rows "$(cat "$E2E_TMP/deep.json")")" 2 "depth 2 via nats: published rows"
assert_contains "$(cat "$E2E_TMP/deep.err")" "line_items[0].adjustments[0].amount" \
  "depth 2 via nats: the reject names the full path"
wait_until "SELECT count(*) FROM order_line_item_adjustments WHERE order_key LIKE 'v%'" 3 30 \
  "adjustments from depth 2 via nats"
assert_eq "$(deep_rows | grep -E '^(v|--)')" "v1|cv1
v2|cv2
--
v1|1|a
v1|2|b
v2|1|c
--
v1|1|1|1.25|
v1|1|2|2|r
v2|1|1|-3|" "depth 2 via nats: the rows of all three tables"
assert_eq "$(sql "SELECT count(*) FROM orders WHERE order_key = 'vbad'")" 0 "depth 2 via nats: the bad order is nowhere"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "no dead letters"
