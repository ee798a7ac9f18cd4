#!/usr/bin/env bash
# e2e: nomnomd --allow-table serves a hand-made table without an entity file:
# ?table= on /ingest/message and /ingest/batch, a separate `nomnom worker`
# resolves the table's entity from the catalog and loads the exact rows; a
# row the table's CHECK refuses becomes a dead letter; tables not listed and
# nomnom's own tables are refused (404 / startup error), ?entity= with ?table= is 400.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
sql "CREATE SCHEMA hand; CREATE TABLE hand.things (id int8 PRIMARY KEY, name text NOT NULL, amount numeric(12,3),
  seen timestamptz, flag bool, doc jsonb, n int4 CHECK (n >= 0))" >/dev/null
sql "CREATE TABLE other (id int8 PRIMARY KEY)" >/dev/null

if "$NOMNOMD_BIN" --listen 127.0.0.1:0 --db "$DATABASE_URL" --nats "$NATS_URL" --workers 0 \
  --allow-table nomnom_ledger >"$E2E_TMP/refused.log" 2>&1; then
  e2e_fail "nomnomd accepted --allow-table nomnom_ledger"
fi
assert_contains "$(cat "$E2E_TMP/refused.log")" "belongs to nomnom" "--allow-table nomnom_ledger refused at startup"

NOMNOM_ALLOW_TABLES=hand.things e2e_start_daemon --workers 0
e2e_start_worker worker --on-conflict update

http POST '/ingest/message?table=hand.things' -H 'Content-Type: application/json' \
  --data '{"id": 1, "name": "one", "amount": 1.2345, "seen": "2024-05-01T10:00:00+02:00", "flag": true, "doc": {"a": 1}, "n": 1}'
assert_eq "$HTTP_STATUS" "202" "/ingest/message?table=hand.things"

printf '%s\n' \
  '{"id": 2, "name": "two", "amount": 2, "seen": "2024-05-02T00:00:00Z", "flag": false, "doc": [1], "n": 2}' \
  '{"id": 3, "name": "three", "amount": null, "seen": null, "flag": null, "doc": null, "n": -5}' \
  '{"id": 4, "name": "four", "amount": 4.0005, "seen": "2024-05-04T00:00:00Z", "flag": true, "doc": "x", "n": 4}' \
  >"$E2E_TMP/batch.ndjson"
http POST '/ingest/batch?table=hand.things' -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/batch.ndjson"
assert_eq "$HTTP_STATUS" "202" "/ingest/batch?table=hand.things"

wait_until "SELECT count(*) FROM hand.things" "3" 30 "rows in hand.things"
assert_eq "$(sql "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', id, name, amount,
  to_char(seen AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), flag, doc, n), ';' ORDER BY id) FROM hand.things")" \
  '1|one|1.235|2024-05-01 08:00:00|t|{"a": 1}|1;2|two|2.000|2024-05-02 00:00:00|f|[1]|2;4|four|4.001|2024-05-04 00:00:00|t|"x"|4' \
  "exact rows in hand.things"
wait_until "SELECT count(*) FROM nomnom_dead_letters WHERE entity = 'table.hand.things' AND raw LIKE '%\"three\"%'" "1" 30 \
  "the CHECK-refused row dead-lettered"

http POST '/ingest/message?table=other' -H 'Content-Type: application/json' --data '{"id": 1}'
assert_eq "$HTTP_STATUS" "404" "a table not listed"
assert_contains "$HTTP_BODY" "--allow-table" "the 404 says why"
http POST '/ingest/message?table=nomnom_ledger' -H 'Content-Type: application/json' --data '{"id": 1}'
assert_eq "$HTTP_STATUS" "404" "nomnom's own table"
http POST '/ingest/message?table=hand.things&entity=Order' -H 'Content-Type: application/json' --data '{"id": 1}'
assert_eq "$HTTP_STATUS" "400" "?table= with ?entity="
http POST '/ingest/message?table=hand.things' -H 'Content-Type: application/json' --data '{"id": "x", "name": "y"}'
assert_eq "$HTTP_STATUS" "400" "a row that does not fit the table's columns"

e2e_log "all checks passed"
