#!/usr/bin/env bash
# e2e fault: the target table is locked. A psql session holds orders IN
# ACCESS EXCLUSIVE MODE for 6 s (E2E_FAULT_SECONDS), longer than ack_wait x
# max_deliver (1 s x 2; E2E_FAULT_ACK_MS), while requests trickle in (one
# every two ack waits): every commit waits on the lock while JetStream's ack
# deadlines run out. nomnomd runs two embedded workers and a `nomnom worker`
# process two more threads: four fetchers, idle when the lock is taken, so a
# chunk held by a blocked commit is redelivered to the next idle fetcher after
# each ack wait and reaches a third delivery (past max_deliver) while the lock
# is still held. Before and after the fault the load is steady. Every row
# answered 202 must end in orders exactly once, and nothing may be
# dead-lettered: a lock is no fault of the message.
# shellcheck source=faults_lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/faults_lib.sh"

consumer=(--ack-wait-ms "$FAULT_ACK_MS" --max-deliver 2 "${FAULTS_WORKER_OPTS[@]}")
e2e_start_services
faults_create_orders
e2e_start_daemon --workers 2 --fetch-batch 10 "${consumer[@]}" --linger-ms 5
e2e_start_worker worker "${consumer[@]}" --threads 2 --fetch-batch 10 --json
worker=$WORKER_PID
faults_before_fault

psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "BEGIN" -c "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE" \
  -c "SELECT pg_sleep($FAULT_SECONDS) AS e2e_lock_holder" -c "COMMIT" >"$E2E_TMP/lock.out" 2>&1 &
lock_pid=$!
E2E_PIDS+=("$lock_pid")
wait_until "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS e2e_lock_holder%' AND state = 'active' AND pid <> pg_backend_pid()" \
  1 10 "sessions holding the lock"
before=$(sql "SELECT count(*) FROM nomnom_ledger")
faults_trickle_load
wait_until "SELECT count(*) > 0 FROM pg_locks WHERE relation = 'orders'::regclass AND NOT granted" t 15 \
  "commits waiting for the lock"
e2e_wait_pid "$lock_pid" $((FAULT_SECONDS + 30)) "the lock-holding psql"
assert_eq "$WAIT_RC" 0 "exit code of the lock-holding psql"
faults_stop_load during
assert_cmp "$(faults_progress during)" -gt 0 "requests answered 202 while the lock was held"
e2e_log "lock released; $before chunks were committed before it"
faults_alive "$DAEMON_PID" "nomnomd"
faults_alive "$worker" "nomnom worker"
faults_after_fault 2

faults_collect_keys
faults_wait_done 60
faults_check_exactly_once not-stored
kill -TERM "$worker"
e2e_wait_pid "$worker" 30 "nomnom worker after SIGTERM"
assert_eq "$WAIT_RC" 0 "exit code of nomnom worker after SIGTERM"
e2e_log "nomnom worker: $(cat "$E2E_TMP/worker.out")"
http GET /stats
e2e_log "/stats workers: $(json_get workers)"
