#!/usr/bin/env bash
# e2e: two workers commit the same chunks. worker-1 fetches every chunk of a
# batch and blocks in PostgreSQL (a test session holds a lock on orders). A
# blocked worker keeps its messages in progress (a heartbeat thread), so to
# get them redelivered worker-1 is paused (SIGSTOP, as a frozen pod) for
# longer than the ack wait: JetStream redelivers the chunks to worker-2,
# which blocks too; then worker-1 resumes. Once the lock is released both race: one commits, the
# other's ledger insert conflicts, it rolls back and acks the chunks as
# already committed. Every row is stored and counted once.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ack=(--ack-wait-ms 2000)
e2e_start_services
e2e_start_daemon --workers 0 "${ack[@]}" --chunk-rows 100
"$NOMNOM_BIN" schema Order | psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" >/dev/null

for i in $(seq 1 1000); do order_json "r-$i"; echo; done >"$E2E_TMP/batch.ndjson"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/batch.ndjson"
assert_status 202 "POST /ingest/batch of 1000 rows (10 chunks)"
bid=$(json_get batch_id)

# A session that holds orders until it is cancelled.
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
  -c "BEGIN" -c "LOCK TABLE orders IN EXCLUSIVE MODE" -c "SELECT pg_sleep(120) AS e2e_lock_holder" -c "COMMIT" \
  >"$E2E_TMP/lock.out" 2>&1 &
lock_pid=$!
E2E_PIDS+=("$lock_pid")
wait_until "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS e2e_lock_holder%' AND state = 'active' AND pid <> pg_backend_pid()" \
  1 10 "sessions holding the lock"
waiting="SELECT count(*) FROM pg_locks WHERE relation = 'orders'::regclass AND NOT granted"

e2e_start_worker worker-1 "${ack[@]}" --threads 1 --fetch-batch 100 --idle-exit-ms 4000 --json
w1=$WORKER_PID
wait_until "$waiting" 1 15 "workers waiting for the lock"
kill -STOP "$w1"
e2e_start_worker worker-2 "${ack[@]}" --threads 1 --fetch-batch 100 --idle-exit-ms 4000 --json
w2=$WORKER_PID
wait_until "$waiting" 2 20 "workers waiting for the lock (worker-2 got the redelivered chunks)"
kill -CONT "$w1"
assert_eq "$(sql "SELECT count(*) FROM nomnom_ledger")" 0 "chunks committed while the lock is held"

sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%AS e2e_lock_holder%' AND pid <> pg_backend_pid()" >/dev/null
e2e_wait_pid "$lock_pid" 10 "the lock-holding psql"
e2e_wait_pid "$w1" 60 "worker-1"
assert_eq "$WAIT_RC" 0 "exit code of worker-1"
e2e_wait_pid "$w2" 60 "worker-2"
assert_eq "$WAIT_RC" 0 "exit code of worker-2"
r1=$(cat "$E2E_TMP/worker-1.out")
r2=$(cat "$E2E_TMP/worker-2.out")
e2e_log "worker-1: $r1"
e2e_log "worker-2: $r2"

assert_eq "$(sql "SELECT count(*), count(DISTINCT order_key) FROM orders")" "1000|1000" "rows in orders"
assert_eq "$(sql "SELECT count(*), sum(rows_committed), count(DISTINCT chunk_index) FROM nomnom_ledger WHERE batch_id = '$bid'")" \
  "10|1000|10" "ledger: chunks, rows, distinct chunk indexes"
assert_eq "$(( $(json_get messages_committed "$r1") + $(json_get messages_committed "$r2") ))" 10 \
  "chunks committed by the two workers together"
assert_eq "$(( $(json_get rows_committed "$r1") + $(json_get rows_committed "$r2") ))" 1000 \
  "rows committed by the two workers together"
# The losing worker skips the chunks it holds. How many JetStream had
# redelivered when worker-2 fetched depends on timing (each expires on its
# own; CI once saw 8 of 10), so: at least one, and never more than the batch.
skipped=$(( $(json_get redeliveries_skipped "$r1") + $(json_get redeliveries_skipped "$r2") ))
assert_cmp "$skipped" -ge 1 "chunks the losing worker found in the ledger and skipped"
assert_cmp "$skipped" -le 10 "chunks the losing worker found in the ledger and skipped"
assert_cmp "$(cat "$E2E_TMP/worker-1.log" "$E2E_TMP/worker-2.log" | grep -c 'committed by another worker meanwhile')" -gt 0 \
  "log lines about the chunk committed by the other worker"
wait_status "$bid" processed 10
assert_eq "$(json_get rows)" 1000 "rows of the batch per /ingest/status"
http GET /stats
assert_eq "$(json_get jetstream.consumer_lag)" 0 "consumer lag at the end"
