#!/usr/bin/env bash
# e2e fault: nats-server dies. Under a steady HTTP load (nomnomd with one
# embedded worker and a `nomnom worker` process), nats-server is killed with
# SIGKILL and started again 2 s later on the same port and JetStream store.
# Every row answered 202 is in orders exactly once; rows of requests answered
# 503 (or not answered) meanwhile may or may not be there (a chunk can be
# stored without its acknowledgement arriving), but at most once; nothing is
# dead-lettered, and ingestion resumes once nats-server is back.
# shellcheck source=faults_lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/faults_lib.sh"

consumer=(--ack-wait-ms 2000 "${FAULTS_WORKER_OPTS[@]}")
e2e_start_services
faults_create_orders
e2e_start_daemon --workers 1 --fetch-batch 10 --linger-ms 5 "${consumer[@]}"
e2e_start_worker worker "${consumer[@]}" --threads 1 --fetch-batch 10 --json
worker=$WORKER_PID

faults_start_load load --threads 4 --batch-rows 20 --pause-ms 20 --timeout 60
faults_wait_load load 60 30
wait_until "SELECT count(*) > 0 FROM nomnom_ledger" t 30 "workers committing before the fault"
kill -KILL "$NN_NATS_PID"
wait "$NN_NATS_PID" 2>/dev/null || true
at_kill=$(faults_progress load)
e2e_log "nats-server killed with SIGKILL after $at_kill requests answered 202"
sleep 2
e2e_start_nats_again
e2e_log "nats-server started again on port $NN_NATS_PORT (same JetStream store)"
faults_wait_load load $((at_kill + 40)) 45
e2e_pass "requests answered 202 again after the restart"
sleep 2
faults_stop_load load
faults_alive "$DAEMON_PID" "nomnomd"
faults_alive "$worker" "nomnom worker"
e2e_log "answers other than 202: $(faults_progress load 2), unanswered requests: $(faults_progress load 3)"
assert_eq "$(python3 -c 'import json, sys; print(sorted(set(json.load(open(sys.argv[1]))["statuses"]) - {"202", "503", "none"}))' "$E2E_TMP/load-load/summary.json")" \
  "[]" "answers other than 202 and 503"

faults_collect_keys
faults_wait_done 60
faults_check_exactly_once may-be-stored
kill -TERM "$worker"
e2e_wait_pid "$worker" 30 "nomnom worker after SIGTERM"
assert_eq "$WAIT_RC" 0 "exit code of nomnom worker after SIGTERM"
e2e_log "nomnom worker: $(cat "$E2E_TMP/worker.out")"
