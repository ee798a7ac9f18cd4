#!/usr/bin/env bash
# e2e: `nomnom load --into TABLE` loads NDJSON into a table created by hand,
# without an entity file: keys map to columns by name, the conflict key is the
# table's primary key; conflict modes error, nothing and update give the exact
# contents expected. A column of an unsupported type and nomnom's own tables
# are refused with a clear error.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$NOMNOM_BIN" ] || e2e_fail "nomnom not built: $NOMNOM_BIN"
# shellcheck disable=SC2119  # no extra postgres settings
nn_start_postgres || e2e_fail "PostgreSQL did not start"

sql "CREATE SCHEMA hand; CREATE TABLE hand.things (id int8 PRIMARY KEY, name text NOT NULL, amount numeric(12,3),
  seen timestamptz, flag bool, doc jsonb, n int4, serial_no int8 GENERATED ALWAYS AS IDENTITY)" >/dev/null

contents() {
  sql "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', id, name, amount, to_char(seen AT TIME ZONE 'UTC',
       'YYYY-MM-DD HH24:MI:SS.US'), flag, doc, n), ';' ORDER BY id) FROM hand.things"
}

first="$E2E_TMP/first.ndjson"
cat >"$first" <<'JSON'
{"id": 1, "name": "one", "amount": 12.3456, "seen": "2024-05-01T10:00:00.5+02:00", "flag": true, "doc": {"a": [1, 2]}, "n": 7}
{"id": 2, "name": "two", "amount": -0.001, "seen": "2024-05-01T00:00:00Z", "flag": false, "doc": null, "n": null}
JSON
out=$("$NOMNOM_BIN" load "$first" --into hand.things --quiet 2>&1) || e2e_fail "load --into failed: $out"
assert_eq "$(contents)" \
  '1|one|12.346|2024-05-01 08:00:00.500000|t|{"a": [1, 2]}|7;2|two|-0.001|2024-05-01 00:00:00.000000|f||' \
  "rows after the first load (numeric rounded to scale 3, timestamptz in UTC)"

second="$E2E_TMP/second.ndjson"
cat >"$second" <<'JSON'
{"id": 2, "name": "TWO", "amount": 2, "seen": "2025-01-01T00:00:00Z", "flag": true, "doc": {"b": 1}, "n": 2}
{"id": 3, "name": "three", "amount": 3.5, "seen": "2025-01-02T00:00:00Z", "flag": true, "doc": [], "n": 3}
JSON
if out=$("$NOMNOM_BIN" load "$second" --into hand.things --on-conflict error --quiet 2>&1); then
  e2e_fail "conflict mode error loaded a duplicate key: $out"
fi
# The duplicate is rejected (exit status non-zero); the good row beside it is not lost.
assert_eq "$(contents)" \
  '1|one|12.346|2024-05-01 08:00:00.500000|t|{"a": [1, 2]}|7;2|two|-0.001|2024-05-01 00:00:00.000000|f||;3|three|3.500|2025-01-02 00:00:00.000000|t|[]|3' \
  "rows after mode error (id 2 rejected and unchanged, id 3 added)"
sql "DELETE FROM hand.things WHERE id = 3" >/dev/null

out=$("$NOMNOM_BIN" load "$second" --into hand.things --on-conflict nothing --quiet 2>&1) ||
  e2e_fail "mode nothing failed: $out"
assert_eq "$(contents)" \
  '1|one|12.346|2024-05-01 08:00:00.500000|t|{"a": [1, 2]}|7;2|two|-0.001|2024-05-01 00:00:00.000000|f||;3|three|3.500|2025-01-02 00:00:00.000000|t|[]|3' \
  "rows after mode nothing (id 2 kept, id 3 added)"

out=$("$NOMNOM_BIN" load "$second" --into hand.things --on-conflict update --quiet 2>&1) ||
  e2e_fail "mode update failed: $out"
assert_eq "$(contents)" \
  '1|one|12.346|2024-05-01 08:00:00.500000|t|{"a": [1, 2]}|7;2|TWO|2.000|2025-01-01 00:00:00.000000|t|{"b": 1}|2;3|three|3.500|2025-01-02 00:00:00.000000|t|[]|3' \
  "rows after mode update (id 2 replaced)"
assert_eq "$(sql 'SELECT count(DISTINCT serial_no) FROM hand.things')" "3" "identity column filled by the server"

sql "CREATE TABLE spots (id int8 PRIMARY KEY, place point)" >/dev/null
if out=$("$NOMNOM_BIN" load "$first" --into spots --quiet 2>&1); then e2e_fail "a point column was accepted"; fi
assert_contains "$out" "column 'place': type point is not supported" "error for an unsupported column"
assert_contains "$out" "public.spots" "the error names the table"

sql "CREATE TABLE IF NOT EXISTS nomnom_ledger_probe (id int8 PRIMARY KEY)" >/dev/null
if out=$("$NOMNOM_BIN" load "$first" --into nomnom_ledger_probe --quiet 2>&1); then
  e2e_fail "a nomnom_ table was accepted"
fi
assert_contains "$out" "belongs to nomnom" "nomnom's own tables are refused"

if out=$("$NOMNOM_BIN" load "$first" --into hand.things --table x --quiet 2>&1); then
  e2e_fail "--into with --table was accepted"
fi
assert_contains "$out" "cannot be combined" "--into with --table"

# uuid columns, as the key too: the usual spellings, a bad one rejected naming it.
sql "CREATE TABLE hand.ids (id uuid PRIMARY KEY, v int4)" >/dev/null
printf '%s\n' '{"id": "123e4567-e89b-12d3-a456-426614174000", "v": 1}' \
  '{"id": "{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}", "v": 2}' '{"id": "a0eebc999c0b4ef8bb6d6bb9bd380a12", "v": 3}' \
  '{"id": "not-a-uuid", "v": 4}' >"$E2E_TMP/ids.ndjson"
out=$("$NOMNOM_BIN" load "$E2E_TMP/ids.ndjson" --into hand.ids --on-conflict update 2>&1) && e2e_fail "a bad UUID was accepted"
assert_contains "$out" "invalid UUID 'not-a-uuid'" "a bad UUID is rejected naming it"
printf '%s\n' '{"id": "123E4567-E89B-12D3-A456-426614174000", "v": 9}' >"$E2E_TMP/ids2.ndjson"
"$NOMNOM_BIN" load "$E2E_TMP/ids2.ndjson" --into hand.ids --on-conflict update --quiet || e2e_fail "uuid update failed"
assert_eq "$(sql "SELECT string_agg(id || '=' || v, ';' ORDER BY id) FROM hand.ids")" \
  "123e4567-e89b-12d3-a456-426614174000=9;a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11=2;a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12=3" \
  "uuid rows after load and update"

# schema --from-table prints an entity file; loading with it gives the same rows.
mkdir -p "$E2E_TMP/ents"
"$NOMNOM_BIN" schema --from-table hand.things >"$E2E_TMP/ents/things.yaml" || e2e_fail "schema --from-table failed"
assert_contains "$(cat "$E2E_TMP/ents/things.yaml")" 'conformant_table: "hand.things"' "schema --from-table output"
assert_contains "$(cat "$E2E_TMP/ents/things.yaml")" 'unicity_fields: ["id"]' "schema --from-table key"
sql "TRUNCATE hand.things" >/dev/null
out=$("$NOMNOM_BIN" load "$first" --entities "$E2E_TMP/ents" --quiet 2>&1) && e2e_fail "the YAML entity accepted numeric(12,3) as numeric: $out"
assert_contains "$out" "numeric(12,3)" "a YAML entity (Decimal: numeric) is checked against the exact column type"

e2e_log "all checks passed"
