#!/usr/bin/env bash
# e2e: error texts cut inside multi-byte characters never break an answer.
# A batch of a good row and a bad one whose error excerpt (40 bytes) is cut at
# every byte offset of a 2-, 3- and 4-byte character, for every field type,
# gets a 202 whose body is valid JSON (this once killed nomnomd: the excerpt
# was cut mid-character and serialising the 202 threw inside a noexcept
# publish-ack callback); invalid UTF-8 in the query, headers and bodies gets
# a valid JSON error. nomnomd stays up and every good row is stored once.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
mkdir -p "$E2E_TMP/entities"
cat >"$E2E_TMP/entities/every_type.yaml" <<'YAML'
entity:
  name: EveryType
  source_type: root
  fields:
    - { name: id, type: String, args: [64], nullable: false }
    - { name: s, type: String, nullable: true }
    - { name: s5, type: String, args: [5], nullable: true }
    - { name: i, type: Integer, nullable: true }
    - { name: b, type: BigInt, nullable: true }
    - { name: f, type: Float, nullable: true }
    - { name: n, type: Decimal, nullable: true }
    - { name: ok, type: Boolean, nullable: true }
    - { name: d, type: Date, nullable: true }
    - { name: ts, type: DateTime, nullable: true }
    - { name: j, type: Json, nullable: true }
  persistence:
    database: { conformant_table: every_type, conformant_id_column: id, unicity_fields: [id] }
YAML
e2e_start_daemon --workers 1 --entities "$E2E_TMP/entities" --entity EveryType

read -r good failures < <(python3 "$E2E_DIR/utf8_errors.py" 127.0.0.1 "$DAEMON_PORT" 2>"$E2E_TMP/driver.log") \
  || e2e_fail "driver failed: $(tail -n 5 "$E2E_TMP/driver.log")"
[ "$failures" = 0 ] || e2e_fail "$failures answers were wrong: $(head -n 10 "$E2E_TMP/driver.log")"
e2e_pass "every answer was the expected status with a valid UTF-8 JSON body"
kill -0 "$DAEMON_PID" 2>/dev/null || e2e_fail "nomnomd died"
e2e_pass "nomnomd is still running"
# 10 fields x 12 cuts, plus the second (valid) rows of the 2 string-like fields, plus the last batch.
assert_eq "$good" 145 "good rows answered 202"
wait_until "SELECT count(*) FROM every_type WHERE id LIKE 'ok-%'" "$good" 60 "good rows stored"
assert_eq "$(sql "SELECT count(*) FROM every_type WHERE id NOT LIKE 'ok-%'")" 0 "bad rows stored"
