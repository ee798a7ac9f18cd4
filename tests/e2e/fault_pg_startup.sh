#!/usr/bin/env bash
# e2e fault: PostgreSQL away or restarting while the embedded worker starts.
#  A. nomnomd (one embedded worker) starts while PostgreSQL is stopped; it
#     answers 202 (JetStream only) and its worker keeps retrying (the log
#     says so; /ready is logged, whatever it says meanwhile); PostgreSQL
#     comes back 4 s later and everything accepted is committed.
#  B. PostgreSQL restarts while the worker creates its bookkeeping tables: a
#     psql session holds nomnom_ledger IN ACCESS EXCLUSIVE MODE, so a new
#     nomnomd's worker blocks in its start-up DDL; then PostgreSQL is
#     restarted (fast shutdown ends that session with an error) and comes
#     back 2 s later. The worker must retry, not give up, and commit
#     everything answered 202 meanwhile.
# Every row answered 202 is in orders exactly once, nothing dead-lettered,
# and /ready is 200 at the end.
# shellcheck source=faults_lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/faults_lib.sh"

daemon_opts=(--workers 1 --linger-ms 5 "${FAULTS_WORKER_OPTS[@]}")
e2e_start_services
faults_create_orders

# --- A: PostgreSQL stopped before nomnomd starts -------------------------------------------
nn_pg_stop
e2e_log "PostgreSQL stopped before nomnomd starts"
faults_start_daemon_answering "${daemon_opts[@]}"
faults_start_load a --threads 2 --batch-rows 20 --pause-ms 50
faults_wait_load a 20 30
sleep 3
faults_stop_load a
faults_alive "$DAEMON_PID" "nomnomd (PostgreSQL stopped)"
http GET /ready
e2e_log "GET /ready with PostgreSQL stopped: $HTTP_STATUS $HTTP_BODY"
nn_pg_start_again
e2e_log "PostgreSQL started again"
a_rows=$(json_get rows_accepted "$(cat "$E2E_TMP/load-a/summary.json")")
wait_until "SELECT count(*) FROM orders WHERE order_key LIKE 'a-%'" "$a_rows" 45 "rows of load a (answered 202 while PostgreSQL was stopped) in orders"
assert_cmp "$(grep -c -i -E 'retry|retrying' "$DAEMON_LOG")" -gt 0 "lines about retrying in nomnomd's log"

# --- B: PostgreSQL restarted while the worker creates its tables ----------------------------
e2e_stop_daemon TERM
assert_eq "$DAEMON_RC" 0 "exit code of the first nomnomd after SIGTERM"
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "BEGIN" -c "LOCK TABLE nomnom_ledger IN ACCESS EXCLUSIVE MODE" \
  -c "SELECT pg_sleep(120) AS e2e_lock_holder" -c "COMMIT" >"$E2E_TMP/lock.out" 2>&1 &
lock_pid=$!
E2E_PIDS+=("$lock_pid")
wait_until "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS e2e_lock_holder%' AND state = 'active' AND pid <> pg_backend_pid()" \
  1 10 "sessions holding the lock on nomnom_ledger"
faults_start_daemon_answering "${daemon_opts[@]}"
faults_start_load b --threads 2 --batch-rows 20 --pause-ms 50
faults_wait_load b 20 30
# The worker's start-up DDL waits for the lock (if this version of it takes
# one; if not, PostgreSQL is restarted anyway, in the worker's first seconds).
deadline=$((SECONDS + 15))
until [ "$(sql "SELECT count(*) FROM pg_locks WHERE relation = 'nomnom_ledger'::regclass AND NOT granted")" != 0 ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    e2e_log "no session waits for the lock on nomnom_ledger: restarting PostgreSQL anyway"
    break
  fi
  sleep 0.2
done
e2e_log "sessions waiting for nomnom_ledger: $(sql "SELECT string_agg(a.application_name || ': ' || left(a.query, 80), ' | ') FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.relation = 'nomnom_ledger'::regclass AND NOT l.granted")"
nn_pg_stop
e2e_wait_pid "$lock_pid" 30 "the lock-holding psql (ended by the shutdown)"
e2e_log "PostgreSQL stopped during the worker's start-up"
sleep 2
nn_pg_start_again
e2e_log "PostgreSQL started again"
sleep 2
faults_stop_load b
faults_alive "$DAEMON_PID" "nomnomd"

faults_collect_keys
faults_wait_done 45
faults_check_exactly_once not-stored
e2e_wait_http "$DAEMON_URL/ready" 200 10 "$DAEMON_PID" || e2e_fail "/ready is not 200 at the end"
e2e_pass "/ready is 200 at the end"
e2e_log "worker lines of /metrics: $(curl -sS -m 5 "$DAEMON_URL/metrics" | grep -i '^nomnom_worker' | grep -v -E '_bucket|_sum|_count' | tr '\n' ' ')"
