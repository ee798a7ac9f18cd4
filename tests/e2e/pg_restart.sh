#!/usr/bin/env bash
# e2e: PostgreSQL stops and comes back (same port) while a `nomnom worker`
# drains the stream: the worker retries, and every row arrives exactly once.
# nomnomd's /health and /ingest/status report the outage meanwhile.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sf=${E2E_SF:-0.1}  # 150,000 rows
ack=(--ack-wait-ms 2000)
e2e_start_services
e2e_start_daemon --workers 0 "${ack[@]}"

"$NOMNOM_BIN" gen tpch orders --sf "$sf" -o "$E2E_TMP/orders.ndjson"
rows=$(wc -l <"$E2E_TMP/orders.ndjson")
key_sum=$(python3 -c 'import json, sys; print(sum(int(json.loads(l)["order_key"]) for l in open(sys.argv[1])))' \
  "$E2E_TMP/orders.ndjson")
load=$("$NOMNOM_BIN" load --via-nats --nats "$NATS_URL" "${ack[@]}" --chunk-rows 500 --json "$E2E_TMP/orders.ndjson" \
  2>"$E2E_TMP/load.log") || e2e_fail "nomnom load --via-nats failed: $(cat "$E2E_TMP/load.log")"
assert_eq "$(json_get published_rows "$load")" "$rows" "rows published"
chunks=$(json_get published_chunks "$load")

e2e_start_worker worker "${ack[@]}" --fetch-batch 1 --idle-exit-ms 6000 --json
worker=$WORKER_PID
deadline=$((SECONDS + 60))
while :; do
  done_chunks=$(sql "SELECT count(*) FROM nomnom_ledger" 2>/dev/null || echo 0)
  [ "$done_chunks" -lt $((chunks / 5)) ] || break
  kill -0 "$worker" 2>/dev/null || e2e_fail "the worker exited early: $(cat "$E2E_TMP/worker.log")"
  [ "$SECONDS" -lt "$deadline" ] || e2e_fail "the worker committed only $done_chunks chunks in 60 s"
  sleep 0.05
done

nn_pg_stop
e2e_log "PostgreSQL stopped with $done_chunks+ of $chunks chunks committed"
http GET /health
assert_status 503 "GET /health with PostgreSQL stopped"
assert_eq "$(json_get database)" unreachable "/health database with PostgreSQL stopped"
http GET /ingest/status/6f1c2a9e-1b7d-4c1e-9b8e-2f0d3c4b5a69
assert_status 503 "GET /ingest/status with PostgreSQL stopped"
sleep 4  # longer than the ack wait: held messages must stay the worker's (InProgress) or be redelivered
kill -0 "$worker" 2>/dev/null || e2e_fail "the worker died while PostgreSQL was down: $(tail -n 5 "$E2E_TMP/worker.log")"
e2e_pass "the worker kept running while PostgreSQL was down"
nn_pg_start_again
e2e_log "PostgreSQL started again on port $NN_PG_PORT"
at_restart=$(sql "SELECT count(*) FROM nomnom_ledger")
assert_cmp "$at_restart" -lt "$chunks" "chunks committed before the restart (the outage came mid-run)"

e2e_wait_pid "$worker" 90 "the worker"
assert_eq "$WAIT_RC" 0 "exit code of the worker"
assert_cmp "$(grep -c -E 'will retry|retrying' "$E2E_TMP/worker.log")" -gt 0 "lines saying 'will retry' or 'retrying' in the worker's log"
e2e_log "worker: $(cat "$E2E_TMP/worker.out")"

assert_eq "$(sql "SELECT count(*), count(DISTINCT order_key), sum(order_key::bigint) FROM orders")" \
  "$rows|$rows|$key_sum" "count(*), count(DISTINCT order_key), sum of keys in orders"
assert_eq "$(sql "SELECT count(*), count(DISTINCT stream_seq), sum(rows_committed), count(*) FILTER (WHERE dead) FROM nomnom_ledger")" \
  "$chunks|$chunks|$rows|0" "ledger: chunks, distinct stream sequences, rows, dead chunks"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "dead letters"
http GET /health
assert_status 200 "GET /health after the restart"
http GET /stats
assert_eq "$(json_get jetstream.consumer_lag)" 0 "consumer lag at the end"
