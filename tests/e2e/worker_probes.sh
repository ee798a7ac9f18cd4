#!/usr/bin/env bash
# e2e: a standalone `nomnom worker --metrics-listen` serves /live, /ready and
# /metrics (its committed rows through the one registry); nomnomd takes its
# token from --token-file (the token is not in the process list); option
# values that would spin or publish empty chunks are refused with exit 2; an
# entity whose name is no NATS subject token ('x y', 'a..b', '.lead') stops
# both programs at startup naming it and its file.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services

# --- refused options (checked before anything connects) ------------------------
for bad in "--fetch-wait-ms 0" "--chunk-rows 0" "--ack-wait-ms 0" "--duplicate-window 0" "--fetch-batch 0" \
  "--statement-timeout-ms 0"; do
  read -r -a words <<<"$bad"
  rc=0; "$NOMNOMD_BIN" "${words[@]}" --db "$DATABASE_URL" --nats "$NATS_URL" >"$E2E_TMP/bad.log" 2>&1 || rc=$?
  assert_eq "$rc" 2 "nomnomd exit code for $bad"
done
for bad in "--fetch-wait-ms 0" "--threads 0" "--ack-wait-ms 5"; do
  read -r -a words <<<"$bad"
  rc=0; "$NOMNOM_BIN" worker "${words[@]}" --db "$DATABASE_URL" --nats "$NATS_URL" >"$E2E_TMP/bad.log" 2>&1 || rc=$?
  assert_eq "$rc" 2 "nomnom worker exit code for $bad"
done

# --- entity names that are no NATS subject token: a startup error naming the file --
for name in "x y" "a..b" ".lead"; do
  mkdir -p "$E2E_TMP/bad-entities"
  rm -f "$E2E_TMP/bad-entities"/*.yaml
  sed "s/^  name: Order$/  name: \"$name\"/" "$E2E_ROOT/data/tpch/entities/order.yaml" >"$E2E_TMP/bad-entities/bad.yaml"
  rc=0; "$NOMNOMD_BIN" --entities "$E2E_TMP/bad-entities" --db "$DATABASE_URL" --nats "$NATS_URL" \
    >"$E2E_TMP/bad.log" 2>&1 || rc=$?
  assert_eq "$rc" 1 "nomnomd exit code for an entity named '$name'"
  assert_contains "$(cat "$E2E_TMP/bad.log")" "entity '$name' ($E2E_TMP/bad-entities/bad.yaml)" "nomnomd's error names it"
  rc=0; "$NOMNOM_BIN" worker --entities "$E2E_TMP/bad-entities" --db "$DATABASE_URL" --nats "$NATS_URL" \
    >"$E2E_TMP/bad.log" 2>&1 || rc=$?
  assert_eq "$rc" 1 "nomnom worker exit code for an entity named '$name'"
  assert_contains "$(cat "$E2E_TMP/bad.log")" "subject token" "nomnom worker's error"
done

# --- token from a file -------------------------------------------------------------
rc=0; "$NOMNOMD_BIN" --token-file "$E2E_TMP/no-such-token" --db "$DATABASE_URL" --nats "$NATS_URL" >"$E2E_TMP/bad.log" 2>&1 || rc=$?
assert_eq "$rc" 2 "nomnomd exit code for a missing --token-file"
assert_contains "$(cat "$E2E_TMP/bad.log")" "no-such-token: No such file or directory" "nomnomd's error for a missing --token-file"
token="s3cret-$RANDOM$RANDOM"
printf '%s\n' "$token" >"$E2E_TMP/token"
e2e_start_daemon --workers 0 --token-file "$E2E_TMP/token"
if tr '\0' ' ' <"/proc/$DAEMON_PID/cmdline" | grep -q "$token"; then
  e2e_fail "the token is in nomnomd's command line"
fi
e2e_pass "the token is not in the process list"
post_json /ingest/message "$(order_json t-0)"
assert_status 401 "POST without the token"
post_json /ingest/message "$(order_json t-1)" -H "Authorization: Bearer $token"
assert_status 202 "POST with the token from the file"
http GET /live
assert_status 200 "nomnomd /live"

# --- a standalone worker's probes and metrics ---------------------------------------------
# A free port can be taken by another process before the worker binds it:
# then the worker exits, and another port is tried.
for attempt in 1 2 3; do
  mport=$(nn_free_port)
  e2e_start_worker worker --threads 2 --metrics-listen "127.0.0.1:$mport"
  e2e_wait_http "http://127.0.0.1:$mport/live" 200 30 "$WORKER_PID" && break
  kill -0 "$WORKER_PID" 2>/dev/null && e2e_fail "worker /live did not answer 200"
  e2e_forget_pid "$WORKER_PID"
  [ "$attempt" -lt 3 ] || e2e_fail "worker with --metrics-listen did not start: $(tail -n 3 "$E2E_TMP/worker.log")"
done
e2e_pass "worker /live is 200"
e2e_wait_http "http://127.0.0.1:$mport/ready" 200 30 "$WORKER_PID" || e2e_fail "worker /ready did not answer 200"
e2e_pass "worker /ready is 200"
wait_until "SELECT count(*) FROM orders WHERE order_key = 't-1'" 1 30 "row committed by the worker"
metrics=$(curl -sS -m 5 "http://127.0.0.1:$mport/metrics")
assert_eq "$(grep -c '^nomnom_worker_rows_committed_total 1$' <<<"$metrics")" 1 "worker /metrics rows committed line"
assert_contains "$metrics" "nomnom_worker_threads 2" "worker /metrics threads"
assert_eq "$(grep -c '^nomnom_worker_state{state="fetching"} 2$' <<<"$metrics")" 1 "worker /metrics: both workers fetching"

# --- a worker whose PostgreSQL is away: alive, not ready, says why -----------------------
dead_port=$(nn_free_port)
# As above: a port taken between nn_free_port and the bind is tried again.
for attempt in 1 2 3; do
  mport2=$(nn_free_port)
  "$NOMNOM_BIN" worker --db "postgresql://nomnom@127.0.0.1:$dead_port/nomnom" --nats "$NATS_URL" --threads 1 \
    --metrics-listen "127.0.0.1:$mport2" >"$E2E_TMP/worker-nodb.out" 2>"$E2E_TMP/worker-nodb.log" &
  nodb_pid=$!
  E2E_PIDS+=("$nodb_pid")
  e2e_wait_http "http://127.0.0.1:$mport2/live" 200 30 "$nodb_pid" && break
  kill -0 "$nodb_pid" 2>/dev/null && e2e_fail "the worker without a database does not answer /live"
  e2e_forget_pid "$nodb_pid"
  grep -q 'Address already in use' "$E2E_TMP/worker-nodb.log" || e2e_fail "the worker without a database died"
  [ "$attempt" -lt 3 ] || e2e_fail "the worker without a database found no free port: $(tail -n 3 "$E2E_TMP/worker-nodb.log")"
done
e2e_pass "a worker without its database is alive"
ready=$(curl -sS -m 5 -w ' %{http_code}' "http://127.0.0.1:$mport2/ready")
assert_match "$ready" ' 503$' "/ready of a worker without its database"
assert_contains "$ready" "no worker is fetching" "/ready reason"
# nomnomd's /ready shows its embedded workers' states (API-only here: none).
http GET /stats
assert_eq "$(json_get workers.states.fetching)" 0 "nomnomd /stats worker states"
kill -TERM "$WORKER_PID"
e2e_wait_pid "$WORKER_PID" 30 "nomnom worker after SIGTERM"
assert_eq "$WAIT_RC" 0 "worker exit code after SIGTERM"
