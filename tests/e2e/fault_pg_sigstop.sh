#!/usr/bin/env bash
# e2e fault: PostgreSQL hangs. Every process of the test's PostgreSQL gets
# SIGSTOP for 6 s (E2E_FAULT_SECONDS; connections stay open and nothing
# answers: a hung server, as a half-open connection looks to libpq), longer
# than ack_wait x max_deliver (1 s x 2; E2E_FAULT_ACK_MS), then SIGCONT,
# while requests trickle in (one every two ack waits). nomnomd is API-only;
# two `nomnom worker` processes (three threads each) share the consumer: six
# fetchers, idle when PostgreSQL stops, so a chunk held by a blocked thread is
# redelivered to the next idle one after each ack wait (two chunks reach a
# third delivery before SIGCONT). Before and after the fault the load is
# steady. Every row answered 202 must end in orders exactly once, and nothing
# may be dead-lettered: the database being away is no fault of the message.
# shellcheck source=faults_lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/faults_lib.sh"

consumer=(--ack-wait-ms "$FAULT_ACK_MS" --max-deliver 2 "${FAULTS_WORKER_OPTS[@]}")
e2e_start_services
faults_create_orders
e2e_start_daemon --workers 0 "${consumer[@]}" --linger-ms 5
e2e_start_worker worker-1 "${consumer[@]}" --threads 3 --fetch-batch 10 --json
w1=$WORKER_PID
e2e_start_worker worker-2 "${consumer[@]}" --threads 3 --fetch-batch 10 --json
w2=$WORKER_PID
faults_before_fault

faults_pg_sigstop
faults_trickle_load
sleep "$FAULT_SECONDS"
faults_alive "$w1" "worker-1 (PostgreSQL stopped)"
faults_alive "$w2" "worker-2 (PostgreSQL stopped)"
faults_pg_sigcont
faults_stop_load during
assert_cmp "$(faults_progress during)" -gt 0 "requests answered 202 while PostgreSQL was stopped (the API does not need it)"
faults_after_fault 2

faults_collect_keys
faults_wait_done 60
faults_alive "$w1" "worker-1"
faults_alive "$w2" "worker-2"
faults_check_exactly_once not-stored
for w in 1 2; do
  pid_var=w$w
  kill -TERM "${!pid_var}"
  e2e_wait_pid "${!pid_var}" 30 "worker-$w after SIGTERM"
  assert_eq "$WAIT_RC" 0 "exit code of worker-$w after SIGTERM"
  e2e_log "worker-$w: $(cat "$E2E_TMP/worker-$w.out"); $(wc -l <"$E2E_TMP/worker-$w.log") log lines"
done
