#!/usr/bin/env bash
# e2e: `nomnom load --via-nats` in both chunk formats (--publish-format ndjson
# and binary, the pgcopy1 tuples) drained by `nomnom worker`: the same table
# contents (fingerprint) from both, fewer bytes in the stream for binary; a
# row of a binary chunk that a CHECK constraint refuses is dead-lettered with
# a JSON rendering of its tuple while the rest of its chunk commits (ledger,
# dead-letter stream, /ingest/status); binary chunks published with a changed
# entity definition (a column's type) are not applied but dead-lettered whole
# with both schema fingerprints.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
e2e_start_daemon --workers 0  # only for /ingest/status

"$NOMNOM_BIN" gen tpch orders --sf 0.01 -o "$E2E_TMP/orders.ndjson"
rows=$(wc -l <"$E2E_TMP/orders.ndjson")

table_fp() { sql "SELECT count(*) || ' ' || md5(string_agg(o::text, E'\n' ORDER BY order_key COLLATE \"C\")) FROM orders o"; }
reset() { sql "TRUNCATE orders; TRUNCATE nomnom_ledger; TRUNCATE nomnom_dead_letters" >/dev/null; }
# publish FORMAT [load args...]: publishes the file; sets CHUNKS and BYTES (in the stream before any worker).
publish() {
  local fmt=$1 out
  shift
  out=$("$NOMNOM_BIN" load --via-nats --nats "$NATS_URL" --publish-format "$fmt" --chunk-rows 1000 --json "$@" \
    "$E2E_TMP/orders.ndjson" 2>"$E2E_TMP/load-$fmt.log") || e2e_fail "load --via-nats ($fmt) failed: $(cat "$E2E_TMP/load-$fmt.log")"
  assert_eq "$(json_get published_rows "$out")" "$rows" "rows published ($fmt)"
  assert_eq "$(json_get publish_format "$out")" "$fmt" "publish_format in the load's summary"
  CHUNKS=$(json_get published_chunks "$out")
  assert_eq "$(nats_stream_messages MESSAGES)" "$CHUNKS" "chunk messages in the stream ($fmt)"
  BYTES=$(nats_stream_state MESSAGES bytes)
}
drain() {
  e2e_start_worker "worker-$1" --idle-exit-ms 1500 --json
  e2e_wait_pid "$WORKER_PID" 90 "worker-$1"
  assert_eq "$WAIT_RC" 0 "exit code of worker-$1"
  assert_eq "$(nats_stream_messages MESSAGES)" 0 "messages left in the stream after worker-$1"
}

# --- both formats: same table -------------------------------------------------------------
publish ndjson
ndjson_bytes=$BYTES
drain ndjson
ndjson_fp=$(table_fp)
assert_eq "${ndjson_fp%% *}" "$rows" "rows in orders (ndjson)"
assert_eq "$(sql "SELECT count(*), sum(rows_committed), sum(rows_dead) FROM nomnom_ledger")" "$CHUNKS|$rows|0" "ledger (ndjson)"

reset
publish binary
binary_bytes=$BYTES
e2e_log "stream bytes: ndjson $ndjson_bytes, binary $binary_bytes"
assert_cmp "$binary_bytes" -lt "$ndjson_bytes" "bytes in the stream: binary below ndjson"
drain binary
assert_eq "$(table_fp)" "$ndjson_fp" "table fingerprint from binary chunks = from ndjson chunks"
assert_eq "$(sql "SELECT count(*), sum(rows_committed), sum(rows_dead), count(*) FILTER (WHERE dead) FROM nomnom_ledger")" \
  "$CHUNKS|$rows|0|0" "ledger (binary)"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "dead letters (binary)"
assert_eq "$(json_get rows_committed "$(cat "$E2E_TMP/worker-binary.out")")" "$rows" "rows committed by worker-binary"

# --- the default for an entity without derived entities is binary -------------------------
reset
out=$("$NOMNOM_BIN" load --via-nats --nats "$NATS_URL" --json "$E2E_TMP/orders.ndjson" 2>"$E2E_TMP/load-default.log") \
  || e2e_fail "load --via-nats (default format) failed: $(cat "$E2E_TMP/load-default.log")"
assert_eq "$(json_get publish_format "$out")" binary "default --publish-format"
drain default
assert_eq "$(table_fp)" "$ndjson_fp" "table fingerprint from the default format"

# --- a row of a binary chunk refused by PostgreSQL -----------------------------------------
reset
line=$(sed -n 1234p "$E2E_TMP/orders.ndjson")
key=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["order_key"])' "$line")
sql "ALTER TABLE orders ADD CONSTRAINT orders_not_this_one CHECK (order_key <> '$key')" >/dev/null
publish binary
drain rejected
assert_eq "$(sql "SELECT count(*) FROM orders")" $((rows - 1)) "rows in orders (one refused)"
assert_eq "$(sql "SELECT count(*) FROM orders WHERE order_key = '$key'")" 0 "the refused row is not in orders"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters WHERE error LIKE '%orders_not_this_one%'")" 1 \
  "dead letter with PostgreSQL's check-constraint message"
raw=$(sql "SELECT raw FROM nomnom_dead_letters")
e2e_log "dead letter raw: $raw"
python3 -c '
import json, sys
raw, orig = json.loads(sys.argv[1]), json.loads(sys.argv[2])
missing = [k for k in orig if k not in raw]
diff = [k for k in raw if raw[k] != orig.get(k)]
if missing or diff:
    sys.exit("raw differs from the published line: missing %s, different %s" % (missing, diff))
' "$raw" "$line" || e2e_fail "raw of the dead letter is not the refused row as JSON"
e2e_pass "raw of the dead letter is the refused row as JSON"
bid=$(sql "SELECT batch_id FROM nomnom_dead_letters")
msg=$(sql "SELECT msg_id FROM nomnom_dead_letters")
dl_line=$(sql "SELECT line FROM nomnom_dead_letters")
assert_eq "$(sql "SELECT rows_committed, rows_dead, dead FROM nomnom_ledger WHERE msg_id = '$msg'")" \
  "$(sql "SELECT rows_committed FROM nomnom_ledger WHERE msg_id = '$msg'")|1|f" "ledger row of the chunk (one dead row)"
assert_eq "$(sql "SELECT sum(rows_committed), sum(rows_dead) FROM nomnom_ledger")" "$((rows - 1))|1" "ledger sums"
wait_status "$bid" processed 20
assert_eq "$(json_get rows_dead)" 1 "rows_dead of the chunk's batch per /ingest/status"
http GET "/ingest/status/$bid.$((dl_line - 1))"
assert_eq "$(json_get status)" dead "status of the refused row's message id"
assert_contains "$(json_get error)" "orders_not_this_one" "error in the status of the refused row"
deadline=$((SECONDS + 10))
until [ "$(nats_stream_messages MESSAGES_DLQ)" = 1 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
assert_eq "$(nats_stream_messages MESSAGES_DLQ)" 1 "messages in the MESSAGES_DLQ stream"
sql "ALTER TABLE orders DROP CONSTRAINT orders_not_this_one" >/dev/null

# --- binary chunks for another definition: not applied -------------------------------------
# The same columns but comment VARCHAR(300) instead of TEXT: the tuples' bytes
# are the same, so only the schema fingerprint keeps them out.
reset
cp -r "$(dirname "${BASH_SOURCE[0]}")/../../data/tpch/entities" "$E2E_TMP/changed"
python3 - "$E2E_TMP/changed/order.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = "    - name: comment\n      type: String\n"
assert old in s
open(p, "w").write(s.replace(old, old + "      args: [300]\n"))
PY
publish binary --entities "$E2E_TMP/changed"
dlq_before=$(nats_stream_messages MESSAGES_DLQ)
drain mismatch
assert_eq "$(sql "SELECT count(*) FROM orders")" 0 "rows applied from chunks encoded for another definition"
assert_eq "$(sql "SELECT count(*), count(*) FILTER (WHERE dead), sum(rows_committed) FROM nomnom_ledger")" "$CHUNKS|$CHUNKS|0" \
  "ledger: every chunk dead, no row committed"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters WHERE line IS NULL AND left(raw, 2) = '\\x'
                   AND error ~ 'schema mismatch.*schema ''[0-9a-f]{16}''.*schema ''[0-9a-f]{16}'''")" "$CHUNKS" \
  "whole-chunk dead letters naming both fingerprints"
err=$(sql "SELECT error FROM nomnom_dead_letters LIMIT 1")
e2e_log "dead letter: $err"
fps=$(grep -oE "schema '[0-9a-f]{16}'" <<<"$err" | sort -u | wc -l)
assert_eq "$fps" 2 "two different fingerprints in the error"
deadline=$((SECONDS + 10))
until [ "$(nats_stream_messages MESSAGES_DLQ)" = $((dlq_before + CHUNKS)) ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
assert_eq "$(nats_stream_messages MESSAGES_DLQ)" $((dlq_before + CHUNKS)) "whole chunks in the MESSAGES_DLQ stream"
