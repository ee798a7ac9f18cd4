#!/usr/bin/env bash
# e2e: ?table= under a worker crash. nomnomd serves a hand-made table with
# every type --into supports (--allow-table, API only: --workers 0); batches
# are posted with ?table=; a `nomnom worker` is SIGKILLed while blocked on a
# table lock before its first ack, a second one SIGKILLed with part of the
# chunks committed (fetched, unacked chunks are redelivered after
# --ack-wait-ms), and a third drains the rest. Every accepted row is in
# the table exactly once with the exact contents of the same rows loaded with
# `nomnom load --into`; a row the table's CHECK refuses is dead-lettered naming
# the constraint; a row nomnom cannot encode (int2 out of range) is refused
# with 400 naming the field.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

posts=${E2E_POSTS:-400}  # batches of 12 rows
ack=(--ack-wait-ms 2000)
e2e_start_services
columns="id int8 PRIMARY KEY, doc jsonb, raw json, amount numeric(12,3) NOT NULL, seen timestamptz, uid uuid,
  tags text[], codes varchar(4)[], small int2, ratio float4, flag bool, note text CHECK (note <> 'refuse me')"
sql "CREATE SCHEMA hand; CREATE TABLE hand.events ($columns); CREATE TABLE hand.events_ref ($columns)" >/dev/null

# The batches, the good rows (for the reference table) and the row the CHECK refuses.
python3 - "$E2E_TMP" "$posts" <<'PY'
import json, os, sys
tmp, posts = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{tmp}/batches")
good = open(f"{tmp}/good.ndjson", "w")
n = 0
for b in range(posts):
    lines = []
    for _ in range(12):
        n += 1
        row = {"id": n, "doc": {"n": n, "even": n % 2 == 0}, "raw": {"k" : [n, "x"]}, "amount": f"{n}.{n % 1000:03d}5",
               "seen": f"2024-01-{1 + n % 28:02d}T{n % 24:02d}:00:00.25+01:00",
               "uid": f"{n:08x}-0000-4000-8000-{n:012x}",
               "tags": [f"t{n}", None, "NULL", "é \"q\""][: n % 5] if n % 7 else [],
               "codes": ["abcd", None] if n % 3 == 0 else None,
               "small": n % 65536 - 32768, "ratio": n / 3, "flag": [True, False, None][n % 3],
               "note": None if n % 11 == 0 else f"row {n}"}
        if n % 13 == 0:
            del row["raw"], row["seen"]  # missing keys are NULL
        line = json.dumps(row, ensure_ascii=False)
        lines.append(line)
        good.write(line + "\n")
    if b == posts // 2:
        lines.append(json.dumps({"id": 10**9, "amount": 1, "note": "refuse me"}))
    open(f"{tmp}/batches/{b:05d}.ndjson", "w").write("\n".join(lines) + "\n")
print(n, file=open(f"{tmp}/rows", "w"))
PY
rows=$(cat "$E2E_TMP/rows")

NOMNOM_ALLOW_TABLES=hand.events e2e_start_daemon --workers 0 "${ack[@]}"
for f in "$E2E_TMP"/batches/*.ndjson; do
  code=$(curl -s -o "$E2E_TMP/post.out" -w '%{http_code}' -H 'Content-Type: application/x-ndjson' \
    --data-binary "@$f" "$DAEMON_URL/ingest/batch?table=hand.events")
  [ "$code" = 202 ] || e2e_fail "POST $f: $code $(cat "$E2E_TMP/post.out")"
done
e2e_pass "$posts batches of $rows rows (and one the CHECK refuses) answered 202"
http POST '/ingest/message?table=hand.events' -H 'Content-Type: application/json' \
  --data '{"id": -1, "amount": 1, "small": 99999}'
assert_eq "$HTTP_STATUS" "400" "a row with int2 out of range"
assert_contains "$HTTP_BODY" "small" "the 400 names the field"
assert_contains "$HTTP_BODY" "out of range for SmallInt" "the 400 says why"
chunks=$(nats_stream_messages MESSAGES)
assert_cmp "$chunks" -ge "$posts" "messages in the stream"

# Worker 0: killed -9 before any ack. A session holds hand.events, so the
# worker fetches chunks and blocks writing them; it dies with them unacked and
# uncommitted. (Its PostgreSQL session, left waiting for the lock, aborts when
# the lock goes: the client is gone before COMMIT.)
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
  -c "BEGIN" -c "LOCK TABLE hand.events IN EXCLUSIVE MODE" -c "SELECT pg_sleep(120) AS e2e_lock_holder" -c "COMMIT" \
  >"$E2E_TMP/lock.out" 2>&1 &
lock_pid=$!
E2E_PIDS+=("$lock_pid")
wait_until "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS e2e_lock_holder%' AND state = 'active' AND pid <> pg_backend_pid()" \
  1 10 "sessions holding the lock"
e2e_start_worker worker-0 "${ack[@]}" --fetch-batch 4
zero=$WORKER_PID
wait_until "SELECT count(*) > 0 FROM pg_locks WHERE relation = 'hand.events'::regclass AND NOT granted" t 20 \
  "worker-0 waiting for the lock"
kill -KILL "$zero"
wait "$zero" 2>/dev/null || true
e2e_forget_pid "$zero"
sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%AS e2e_lock_holder%' AND pid <> pg_backend_pid()" >/dev/null
e2e_wait_pid "$lock_pid" 10 "the lock-holding psql"
assert_eq "$(sql "SELECT count(*) FROM nomnom_ledger")|$(sql "SELECT count(*) FROM hand.events")" "0|0" \
  "nothing committed by worker-0, killed while blocked before its first ack"
pending=$(nats_consumer num_ack_pending)
assert_cmp "$pending" -gt 0 "chunks fetched by worker-0 and left unacked (redelivered after the ack wait)"

# Worker 1: killed -9 once part of the chunks are committed.
e2e_worker_killed_at worker-1 $((chunks / 5)) "${ack[@]}" --fetch-batch 4
at_kill=$KILLED_AT
rows_at_kill=$(sql "SELECT count(*) FROM hand.events")
e2e_log "worker-1 killed with $at_kill of $chunks chunks ($rows_at_kill rows) committed"
assert_cmp "$at_kill" -lt "$chunks" "chunks committed when worker-1 was killed (the kill came mid-run)"

e2e_start_worker worker-2 "${ack[@]}" --fetch-batch 4 --idle-exit-ms 5000 --json
e2e_wait_pid "$WORKER_PID" 120 "worker-2"
assert_eq "$WAIT_RC" 0 "exit code of worker-2"
e2e_log "worker-2: $(cat "$E2E_TMP/worker-2.out")"

assert_eq "$(sql "SELECT count(*), count(DISTINCT id), sum(id) FROM hand.events")" \
  "$rows|$rows|$((rows * (rows + 1) / 2))" "count(*), count(DISTINCT id), sum(id): every row once"
assert_eq "$(sql "SELECT count(*), count(DISTINCT msg_id), sum(rows_committed), sum(rows_dead) FROM nomnom_ledger")" \
  "$chunks|$chunks|$rows|1" "ledger: chunks once each, rows committed, the dead row"

# The same rows through `nomnom load --into`: identical contents, column by column.
out=$("$NOMNOM_BIN" load "$E2E_TMP/good.ndjson" --into hand.events_ref --quiet 2>&1) ||
  e2e_fail "load --into the reference table failed: $out"
fingerprint() { sql "SELECT count(*), md5(string_agg(t::text, E'\n' ORDER BY id)) FROM $1 t"; }
assert_eq "$(fingerprint hand.events)" "$(fingerprint hand.events_ref)" "contents equal the --into load of the same rows"
# And exact values, independent of the encoder: a few rows by hand.
assert_eq "$(sql "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s', raw, amount, uid, tags, codes, small, ratio, flag, note)
  FROM hand.events WHERE id IN (6, 12, 13) ORDER BY id")" \
  '{"k": [6, "x"]}|6.007|00000006-0000-4000-8000-000000000006|{t6}|{abcd,NULL}|-32762|2|t|row 6
{"k": [12, "x"]}|12.013|0000000c-0000-4000-8000-00000000000c|{t12,NULL}|{abcd,NULL}|-32756|4|t|row 12
|13.014|0000000d-0000-4000-8000-00000000000d|{t13,NULL,"NULL"}||-32755|4.3333335|f|row 13' "rows 6, 12 and 13"
assert_eq "$(sql "SELECT count(*) FROM hand.events WHERE tags = '{}'")" \
  "$(python3 -c "print(sum(1 for n in range(1, $rows + 1) if n % 7 == 0 or n % 5 == 0))")" "empty arrays"

assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters WHERE entity = 'table.hand.events'")" "1" "dead letters"
reason=$(sql "SELECT error FROM nomnom_dead_letters WHERE entity = 'table.hand.events' AND raw LIKE '%refuse me%'")
e2e_log "dead letter: $reason"
assert_contains "$reason" "events_note_check" "the dead letter names the CHECK constraint"
http GET /stats
assert_eq "$(json_get jetstream.consumer_lag)" 0 "consumer lag at the end"

e2e_log "all checks passed"
