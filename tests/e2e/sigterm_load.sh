#!/usr/bin/env bash
# e2e: SIGTERM under load. Threads fire /ingest/message and /ingest/batch
# requests at nomnomd (one embedded worker); it gets SIGTERM mid-stream and
# drains. A `nomnom worker` then drains JetStream (waiting longer than the ack
# wait, so messages the embedded worker fetched but left unacknowledged come
# back). Every row whose request was answered 202 is in PostgreSQL exactly
# once, rows of requests answered otherwise are not, and nomnomd exited 0.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
ack=(--ack-wait-ms 2000)
e2e_start_daemon --workers 1 --linger-ms 5 --http-threads 2 "${ack[@]}"

python3 "$E2E_DIR/ingest_load.py" "$DAEMON_PORT" "$DAEMON_PID" "$E2E_TMP" 8 1500 20 >"$E2E_TMP/load.json" \
  2>"$E2E_TMP/load.log" || e2e_fail "ingest_load.py failed: $(cat "$E2E_TMP/load.log")"
load=$(cat "$E2E_TMP/load.json")
e2e_log "load: $load"
assert_eq "$(json_get sigterm_sent "$load")" true "SIGTERM sent mid-load"
e2e_wait_pid "$DAEMON_PID" 40 "nomnomd after SIGTERM"
assert_eq "$WAIT_RC" 0 "exit code of nomnomd after SIGTERM under load"
assert_contains "$(cat "$DAEMON_LOG")" "received SIGTERM, draining" "nomnomd log"
accepted=$(json_get rows_accepted "$load")
assert_cmp "$accepted" -gt 0 "rows accepted before the drain"
assert_eq "$(python3 -c 'import json, sys; print(sorted(set(json.loads(sys.argv[1])["statuses"]) - {"202", "503", "none"}))' "$load")" \
  "[]" "answers other than 202 and 503"

# What JetStream holds that the embedded worker did not commit before exiting.
# Messages it fetched and neither acked nor nak'ed show as ack-pending.
e2e_log "at nomnomd's exit: $(nats_consumer num_pending) message(s) not delivered, $(nats_consumer num_ack_pending) delivered and not acknowledged"
# The embedded worker commits and acks what it fetched before it stops.
assert_eq "$(nats_consumer num_ack_pending)" 0 "messages the embedded worker left unacknowledged at exit"
e2e_start_worker drain "${ack[@]}" --idle-exit-ms 5000 --json
e2e_wait_pid "$WORKER_PID" 60 "nomnom worker draining the rest"
assert_eq "$WAIT_RC" 0 "exit code of the draining worker"
e2e_log "draining worker: $(cat "$E2E_TMP/drain.out")"

sql "CREATE TABLE e2e_keys (k text, outcome text)"
for outcome in accepted rejected unanswered; do
  sql "\\copy e2e_keys (k) FROM '$E2E_TMP/$outcome.keys'"
  sql "UPDATE e2e_keys SET outcome = '$outcome' WHERE outcome IS NULL"
done
assert_eq "$(sql "SELECT count(*), count(DISTINCT k) FROM e2e_keys WHERE outcome = 'accepted'")" "$accepted|$accepted" \
  "keys of rows answered 202 (all distinct)"
assert_eq "$(sql "SELECT count(*) FROM orders o JOIN e2e_keys k ON k.k = o.order_key WHERE k.outcome = 'accepted'")" \
  "$accepted" "rows answered 202 that are in orders"
assert_eq "$(sql "SELECT count(*) FROM orders o JOIN e2e_keys k ON k.k = o.order_key WHERE k.outcome = 'rejected'")" \
  0 "rows answered 503 that are in orders"
assert_eq "$(sql "SELECT count(*) FROM orders o LEFT JOIN e2e_keys k ON k.k = o.order_key WHERE k.k IS NULL")" \
  0 "rows in orders that nobody sent"
unanswered_stored=$(sql "SELECT count(*) FROM orders o JOIN e2e_keys k ON k.k = o.order_key WHERE k.outcome = 'unanswered'")
e2e_log "rows of unanswered requests that are stored: $unanswered_stored of $(json_get rows_unanswered "$load")"
assert_eq "$(sql "SELECT count(*) FROM orders")" $((accepted + unanswered_stored)) "rows in orders"
assert_eq "$(sql "SELECT sum(rows_committed), count(*), count(DISTINCT stream_seq) FROM nomnom_ledger")" \
  "$((accepted + unanswered_stored))|$(nats_stream_stored MESSAGES)|$(nats_stream_stored MESSAGES)" \
  "ledger: rows committed (none twice), chunks = stream messages"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "dead letters"
