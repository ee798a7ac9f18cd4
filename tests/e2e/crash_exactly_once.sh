#!/usr/bin/env bash
# e2e: exactly-once under a worker crash. nomnomd runs API-only (--workers 0);
# `nomnom load --via-nats` publishes 300k TPC-H orders; a `nomnom worker`
# with small fetches is SIGKILLed after some chunks are committed, a second
# worker drains the rest (and the killed one's unacked messages, redelivered
# after --ack-wait-ms): every row arrives once, every chunk is in the ledger
# once.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sf=${E2E_SF:-0.2}  # 300,000 rows
ack=(--ack-wait-ms 2000)  # the same consumer definition everywhere
e2e_start_services
e2e_start_daemon --workers 0 "${ack[@]}"

"$NOMNOM_BIN" gen tpch orders --sf "$sf" -o "$E2E_TMP/orders.ndjson"
rows=$(wc -l <"$E2E_TMP/orders.ndjson")
key_sum=$(python3 -c 'import json, sys; print(sum(int(json.loads(l)["order_key"]) for l in open(sys.argv[1])))' \
  "$E2E_TMP/orders.ndjson")
load=$("$NOMNOM_BIN" load --via-nats --nats "$NATS_URL" "${ack[@]}" --json "$E2E_TMP/orders.ndjson" 2>"$E2E_TMP/load.log") \
  || e2e_fail "nomnom load --via-nats failed: $(cat "$E2E_TMP/load.log")"
assert_eq "$(json_get published_rows "$load")" "$rows" "rows published by nomnom load --via-nats"
chunks=$(json_get published_chunks "$load")
assert_eq "$(nats_stream_messages MESSAGES)" "$chunks" "messages in the stream"

# First worker: killed -9 once part of the chunks are committed.
e2e_worker_killed_at worker-1 $((chunks / 5)) "${ack[@]}" --fetch-batch 2
at_kill=$KILLED_AT
e2e_log "worker-1 killed with $at_kill of $chunks chunks committed"
assert_cmp "$at_kill" -lt "$chunks" "chunks committed when worker-1 was killed (the kill came mid-run)"
rows_at_kill=$(sql "SELECT count(*) FROM orders")
assert_cmp "$rows_at_kill" -lt "$rows" "rows committed when worker-1 was killed"

# Second worker: drains the rest, including the redelivered unacked messages.
e2e_start_worker worker-2 "${ack[@]}" --fetch-batch 2 --idle-exit-ms 5000 --json
e2e_wait_pid "$WORKER_PID" 90 "worker-2"
assert_eq "$WAIT_RC" 0 "exit code of worker-2"
w2=$(cat "$E2E_TMP/worker-2.out")
e2e_log "worker-2: $w2"

assert_eq "$(sql "SELECT count(*), count(DISTINCT order_key), sum(order_key::bigint) FROM orders")" \
  "$rows|$rows|$key_sum" "count(*), count(DISTINCT order_key), sum of keys in orders"
assert_eq "$(sql "SELECT count(*), count(DISTINCT msg_id), count(DISTINCT stream_seq), sum(rows_committed), sum(rows_dead), count(*) FILTER (WHERE dead) FROM nomnom_ledger")" \
  "$chunks|$chunks|$chunks|$rows|0|0" "ledger: chunks, distinct ids, distinct stream sequences, rows, dead rows, dead chunks"
assert_eq "$(sql "SELECT min(stream_seq), max(stream_seq) FROM nomnom_ledger")" "1|$chunks" "stream sequences in the ledger"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "dead letters"
assert_eq "$(json_get rows_committed "$w2")" $((rows - rows_at_kill)) "rows committed by worker-2 (the rest)"
e2e_log "worker-2 skipped $(json_get redeliveries_skipped "$w2") redelivered chunks already in the ledger"
http GET /stats
assert_eq "$(json_get jetstream.consumer_lag)" 0 "consumer lag at the end"
assert_eq "$(json_get database.rows_committed)" "$rows" "/stats database.rows_committed"
