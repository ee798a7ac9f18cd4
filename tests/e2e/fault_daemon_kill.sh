#!/usr/bin/env bash
# e2e fault: nomnomd dies. An API-only nomnomd (--workers 0) under a steady
# HTTP load is killed with SIGKILL; a separate `nomnom worker` drains the
# stream. Every row answered 202 before the kill is in orders exactly once
# (a 202 means JetStream had stored it: nothing was still only in nomnomd's
# memory); rows of requests cut off by the kill may be there, at most once.
# A new nomnomd then serves more load on the same stream, stored once too.
# shellcheck source=faults_lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/faults_lib.sh"

consumer=(--ack-wait-ms 2000 "${FAULTS_WORKER_OPTS[@]}")
e2e_start_services
faults_create_orders
e2e_start_daemon --workers 0 --linger-ms 20 "${consumer[@]}"
e2e_start_worker worker "${consumer[@]}" --threads 2 --fetch-batch 10 --json
worker=$WORKER_PID

faults_start_load before --threads 6 --batch-rows 20 --pause-ms 5 --stop-when-refused
faults_wait_load before 150 30
wait_until "SELECT count(*) > 0 FROM nomnom_ledger" t 30 "the worker committing before the fault"
e2e_stop_daemon KILL
e2e_log "nomnomd killed with SIGKILL after $(faults_progress before) requests answered 202"
assert_eq "$DAEMON_RC" 137 "exit status of nomnomd (SIGKILL)"
faults_stop_load before
e2e_log "requests cut off by the kill: $(faults_progress before 3)"

e2e_start_daemon --workers 0 --linger-ms 20 "${consumer[@]}"
faults_start_load after --threads 2 --batch-rows 20 --pause-ms 20
faults_wait_load after 40 30
faults_stop_load after

faults_collect_keys
faults_wait_done 60
faults_alive "$worker" "nomnom worker"
faults_check_exactly_once not-stored
kill -TERM "$worker"
e2e_wait_pid "$worker" 30 "nomnom worker after SIGTERM"
assert_eq "$WAIT_RC" 0 "exit code of nomnom worker after SIGTERM"
e2e_log "nomnom worker: $(cat "$E2E_TMP/worker.out")"
