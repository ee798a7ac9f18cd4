#!/usr/bin/env bash
# e2e: `nomnom load --into TABLE` loads NDJSON into a table created by hand,
# without an entity file: keys map to columns by name, the conflict key is the
# table's primary key; conflict modes error, nothing and update give the exact
# contents expected, for every supported column type (jsonb, json, numeric,
# timestamptz, uuid, text[], varchar(n)[], int2, int8, float4, bool, text),
# with bad values rejected naming the field; schema --from-table's YAML keeps
# the exact types. A column of an unsupported type and nomnom's own tables
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

# Every type --into supports, in one hand-made table, in every conflict mode
# (the default, error, nothing, update): jsonb, json (text kept as sent),
# numeric(12,3), timestamptz, uuid, text[] (NULL elements, the string "NULL",
# the empty array), varchar(3)[], int2, int8, float4, bool, text.
sql "CREATE TABLE hand.kinds (id int8 PRIMARY KEY, doc jsonb, raw json, amount numeric(12,3) NOT NULL,
  seen timestamptz, uid uuid, tags text[], codes varchar(3)[], small int2, ratio float4, flag bool, note text)" >/dev/null
kinds() {
  sql "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', id, doc, raw, amount,
       to_char(seen AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), uid, tags, cardinality(tags), codes, small,
       ratio, flag, note), ';' ORDER BY id) FROM hand.kinds"
}
cat >"$E2E_TMP/kinds1.ndjson" <<'JSON'
{"id": 1, "doc": {"a": [1, 2]}, "raw": {"b" : 1,  "a":2}, "amount": 12.3456, "seen": "2024-05-01T10:00:00.5+02:00", "uid": "123e4567-e89b-12d3-a456-426614174000", "tags": ["x", null, "NULL", "a b", "\u00e9\"q"], "codes": ["ab", "c"], "small": -32768, "ratio": 1.5, "flag": true, "note": "one"}
{"id": 2, "doc": null, "raw": [1, "two"], "amount": -0.001, "seen": null, "uid": null, "tags": [], "codes": null, "small": 32767, "ratio": 3.4028235e38, "flag": false, "note": null}
{"id": 3, "doc": [], "raw": "s", "amount": 0, "tags": [null], "small": 0, "ratio": 0.1, "flag": null, "note": "three"}
JSON
row1='1|{"a": [1, 2]}|{"b" : 1,  "a":2}|12.346|2024-05-01 08:00:00.500000|123e4567-e89b-12d3-a456-426614174000|{x,NULL,"NULL","a b","é\"q"}|5|{ab,c}|-32768|1.5|t|one'
row2='2||[1, "two"]|-0.001|||{}|0||32767|3.4028235e+38|f|'
row3='3|[]|"s"|0.000|||{NULL}|1||0|0.1||three'
out=$("$NOMNOM_BIN" load "$E2E_TMP/kinds1.ndjson" --into hand.kinds --quiet 2>&1) || e2e_fail "load --into kinds failed: $out"
assert_eq "$(kinds)" "$row1;$row2;$row3" "every type, default conflict mode"
assert_eq "$(sql "SELECT tags[2] IS NULL, tags[3], array_position(tags, NULL), pg_typeof(ratio), ratio = 0.1::float4
  FROM hand.kinds WHERE id = 1 OR id = 3 ORDER BY id")" "t|NULL|2|real|f
t||1|real|t" "NULL elements are NULL, the string NULL is text; float4 values"

# Bad values: each a reject naming the field and why; the good row beside them is loaded.
cat >"$E2E_TMP/kinds_bad.ndjson" <<'JSON'
{"id": 10, "amount": 1, "small": 32768}
{"id": 11, "amount": 1, "small": -32769}
{"id": 12, "amount": 1, "ratio": 1e39}
{"id": 13, "amount": 1, "ratio": 1e-50}
{"id": 14, "amount": 1, "tags": ["a", 1]}
{"id": 15, "amount": 1, "tags": "a"}
{"id": 16, "amount": 1, "codes": ["abcd"]}
{"id": 17, "amount": 1, "tags": [["a"]]}
{"id": 18, "amount": 1, "raw": {"a": }}
{"id": 19, "amount": 1, "small": 1.5}
{"id": 20, "amount": 1, "small": -7, "ratio": -2.5e-3, "tags": ["ok"], "codes": ["abc", null]}
JSON
out=$("$NOMNOM_BIN" load "$E2E_TMP/kinds_bad.ndjson" --into hand.kinds --rejects "$E2E_TMP/kinds.rejects" 2>&1) &&
  e2e_fail "bad values were accepted: $out"
rejects=$(cat "$E2E_TMP/kinds.rejects" 2>/dev/null || true)
e2e_log "rejects: $rejects"
for want in "field 'small': 32768 is out of range for SmallInt" "field 'small': -32769 is out of range for SmallInt" \
  "field 'ratio': number 1e39 is out of range for Real" "field 'ratio': number 1e-50 is out of range for Real" \
  "field 'tags': element 2: expected a string or null, got number" \
  "field 'tags': expected an array of strings, got string" \
  "field 'codes': element 1: string of 4 characters is longer than VARCHAR(3)" \
  "field 'tags': element 1: expected a string or null, got array" "field 'small': 1.5 is not an integer"; do
  assert_contains "$rejects" "$want" "reject reason"
done
assert_eq "$(sql "SELECT count(*) FROM hand.kinds WHERE id BETWEEN 10 AND 19")" "0" "no rejected row in the table"
assert_eq "$(sql "SELECT format('%s|%s|%s|%s', small, ratio, tags, codes) FROM hand.kinds WHERE id = 20")" \
  "-7|-0.0025|{ok}|{abc,NULL}" "the good row beside the bad ones"
sql "DELETE FROM hand.kinds WHERE id = 20" >/dev/null

cat >"$E2E_TMP/kinds2.ndjson" <<'JSON'
{"id": 2, "doc": {"n": 2}, "raw": {"z":null}, "amount": 2, "seen": "2025-01-01T00:00:00Z", "uid": "a0eebc999c0b4ef8bb6d6bb9bd380a12", "tags": ["new", null], "codes": [], "small": -1, "ratio": -2.5, "flag": true, "note": "TWO"}
{"id": 4, "doc": {"four": 4}, "raw": 4, "amount": 4.0005, "tags": ["d"], "codes": ["dd"], "small": 4, "ratio": 4e-45, "flag": false, "note": "four"}
JSON
row2new='2|{"n": 2}|{"z":null}|2.000|2025-01-01 00:00:00.000000|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12|{new,NULL}|2|{}|-1|-2.5|t|TWO'
row4='4|{"four": 4}|4|4.001|||{d}|1|{dd}|4|4e-45|f|four'
if out=$("$NOMNOM_BIN" load "$E2E_TMP/kinds2.ndjson" --into hand.kinds --on-conflict error --quiet 2>&1); then
  e2e_fail "conflict mode error loaded a duplicate key into kinds: $out"
fi
assert_eq "$(kinds)" "$row1;$row2;$row3;$row4" "kinds after mode error (id 2 rejected and unchanged, id 4 added)"
sql "DELETE FROM hand.kinds WHERE id = 4" >/dev/null
out=$("$NOMNOM_BIN" load "$E2E_TMP/kinds2.ndjson" --into hand.kinds --on-conflict nothing --quiet 2>&1) ||
  e2e_fail "kinds mode nothing failed: $out"
assert_eq "$(kinds)" "$row1;$row2;$row3;$row4" "kinds after mode nothing (id 2 kept, id 4 added)"
out=$("$NOMNOM_BIN" load "$E2E_TMP/kinds2.ndjson" --into hand.kinds --on-conflict update --quiet 2>&1) ||
  e2e_fail "kinds mode update failed: $out"
assert_eq "$(kinds)" "$row1;$row2new;$row3;$row4" "kinds after mode update (id 2 replaced)"

# schema --from-table of kinds: the YAML keeps every exact type; its DDL makes
# the same columns, and loading with it gives the same rows.
mkdir -p "$E2E_TMP/kents"
"$NOMNOM_BIN" schema --from-table hand.kinds >"$E2E_TMP/kents/kinds.yaml" || e2e_fail "schema --from-table kinds failed"
assert_contains "$(cat "$E2E_TMP/kents/kinds.yaml")" "args: [12, 3]" "numeric(12,3) as Decimal args"
"$NOMNOM_BIN" schema --entities "$E2E_TMP/kents" kinds --table hand.kinds_copy >"$E2E_TMP/kinds.sql" ||
  e2e_fail "schema of the YAML failed"
sql "$(cat "$E2E_TMP/kinds.sql")" >/dev/null
coltypes() {
  sql "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NN' ELSE ''
       END, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '$1'::regclass AND attnum > 0 AND NOT attisdropped"
}
assert_eq "$(coltypes hand.kinds_copy)" "$(coltypes hand.kinds)" "DDL from the YAML: the table's column types"
sql "TRUNCATE hand.kinds" >/dev/null
out=$("$NOMNOM_BIN" load "$E2E_TMP/kinds1.ndjson" --entities "$E2E_TMP/kents" --quiet 2>&1) ||
  e2e_fail "load with the YAML of kinds failed: $out"
assert_eq "$(kinds)" "$row1;$row2;$row3" "rows loaded with the YAML entity"

# schema --from-table prints an entity file; loading with it gives the same rows.
mkdir -p "$E2E_TMP/ents"
"$NOMNOM_BIN" schema --from-table hand.things >"$E2E_TMP/ents/things.yaml" || e2e_fail "schema --from-table failed"
assert_contains "$(cat "$E2E_TMP/ents/things.yaml")" 'conformant_table: "hand.things"' "schema --from-table output"
assert_contains "$(cat "$E2E_TMP/ents/things.yaml")" 'unicity_fields: ["id"]' "schema --from-table key"
sql "TRUNCATE hand.things" >/dev/null
out=$("$NOMNOM_BIN" load "$first" --entities "$E2E_TMP/ents" --quiet 2>&1) ||
  e2e_fail "the YAML entity of hand.things (Decimal args [12, 3]) did not load: $out"
assert_eq "$(contents)" \
  '1|one|12.346|2024-05-01 08:00:00.500000|t|{"a": [1, 2]}|7;2|two|-0.001|2024-05-01 00:00:00.000000|f||' \
  "rows loaded with the YAML entity from schema --from-table"

e2e_log "all checks passed"
