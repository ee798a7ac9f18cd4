# shellcheck shell=bash
# shellcheck disable=SC2034  # ACCEPTED, REJECTED_ROWS, ... are read by the test scripts
# Helpers for the fault-injection e2e tests (tests/e2e/fault_*.sh), on top of
# lib.sh: a background HTTP load (fault_load.py) whose keys are recorded by
# outcome, SIGSTOP/SIGCONT of the test's own PostgreSQL, and the final check
# of nomnomd's promise: every row answered 202 is in PostgreSQL exactly once,
# no row is there twice, nothing valid is dead-lettered.
#
# The tests create `orders` themselves WITHOUT a primary key (the entity's
# columns, a plain index on order_key) and run the workers with
# --on-conflict error (plain COPY into the table, which needs no unique
# index; FAULTS_WORKER_OPTS), so a chunk committed twice shows up as
# duplicate rows instead of being hidden by a key conflict.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOAD_PID=""     # the last fault_load.py started
ACCEPTED=""     # rows answered 202 (all loads), after faults_collect_keys
PG_STOPPED=()   # PIDs stopped by faults_pg_sigstop (resumed at exit too)
FAULTS_WORKER_OPTS=(--on-conflict error)  # for nomnomd's embedded workers and `nomnom worker`
# How long the faults of fault_pg_sigstop and fault_table_lock last, and the
# ack wait they outlast (with --max-deliver 2): seconds in the test suite;
# the full mode (tests/README.md) runs them for minutes with the default
# ack wait, e.g. E2E_FAULT_SECONDS=150 E2E_FAULT_ACK_MS=30000.
FAULT_SECONDS=${E2E_FAULT_SECONDS:-6}
FAULT_ACK_MS=${E2E_FAULT_ACK_MS:-1000}

# The EXIT trap resumes a stopped PostgreSQL first (pg_ctl stop would wait
# for it forever), then runs lib.sh's cleanup with the script's exit status.
faults_exit() {
  local rc=$?
  set +e
  trap - ERR  # keeps lib.sh's note of the failed command
  faults_pg_sigcont
  (exit "$rc")
  e2e_cleanup
}
trap faults_exit EXIT

# orders as the entity defines it, but without the primary key.
faults_create_orders() {
  sql "CREATE TABLE orders (
      order_key      VARCHAR(255) NOT NULL,
      customer_key   VARCHAR(255) NOT NULL,
      order_status   VARCHAR(1)   NOT NULL,
      total_price    DOUBLE PRECISION NOT NULL,
      order_date     VARCHAR(255) NOT NULL,
      order_priority VARCHAR(255),
      clerk          VARCHAR(255),
      ship_priority  INTEGER,
      comment        TEXT);
    CREATE INDEX orders_key_idx ON orders (order_key)"
}

# faults_start_load NAME [fault_load.py flags...]: a load against
# $DAEMON_PORT in the background (keys prefixed NAME-, files in
# $E2E_TMP/load-NAME/), until faults_stop_load NAME (at most 150 s). Several
# loads may run one after another (or at once).
LOAD_NAMES=()
faults_start_load() {
  local name=$1
  shift
  mkdir -p "$E2E_TMP/load-$name"
  python3 "$E2E_DIR/fault_load.py" --port "$DAEMON_PORT" --outdir "$E2E_TMP/load-$name" --key-prefix "$name-" \
    --stop-file "$E2E_TMP/load-$name/stop" --max-seconds 150 "$@" \
    >"$E2E_TMP/load-$name/summary.json" 2>"$E2E_TMP/load-$name.log" &
  LOAD_PID=$!
  E2E_PIDS+=("$LOAD_PID")
  LOAD_NAMES+=("$name")
  printf '%s' "$LOAD_PID" >"$E2E_TMP/load-$name/pid"
}

# faults_progress NAME [FIELD]: requests of load NAME answered 202 so far
# (FIELD 1), answered otherwise (2), unanswered (3).
faults_progress() {
  local p
  p=$(cat "$E2E_TMP/load-$1/progress" 2>/dev/null || echo "0 0 0")
  echo "$p" | awk -v f="${2:-1}" '{ print $f }'
}

# faults_wait_load NAME N TIMEOUT: until N requests of load NAME were answered 202.
faults_wait_load() {
  local deadline=$((SECONDS + $3)) pid
  pid=$(cat "$E2E_TMP/load-$1/pid")
  while [ "$(faults_progress "$1")" -lt "$2" ]; do
    kill -0 "$pid" 2>/dev/null || e2e_fail "load $1 stopped early: $(cat "$E2E_TMP/load-$1.log")"
    [ "$SECONDS" -lt "$deadline" ] || e2e_fail "load $1: only $(faults_progress "$1") requests answered 202 in $3 s (wanted $2)"
    sleep 0.1
  done
}

# faults_stop_load NAME: stops load NAME (or waits for it to end by itself);
# its summary is logged.
faults_stop_load() {
  local pid
  pid=$(cat "$E2E_TMP/load-$1/pid")
  touch "$E2E_TMP/load-$1/stop"
  e2e_wait_pid "$pid" 60 "load $1"
  [ "$WAIT_RC" = 0 ] || e2e_fail "load $1 failed: $(cat "$E2E_TMP/load-$1.log")"
  e2e_log "load $1: $(cat "$E2E_TMP/load-$1/summary.json")"
}

# faults_collect_keys: the keys of every load (all stopped) into e2e_keys
# (k, outcome); sets ACCEPTED (rows answered 202), REJECTED_ROWS and
# UNANSWERED_ROWS.
faults_collect_keys() {
  local name outcome
  sql "CREATE TABLE e2e_keys (k text, outcome text)"
  for name in "${LOAD_NAMES[@]}"; do
    for outcome in accepted rejected unanswered; do
      sql "\\copy e2e_keys (k) FROM '$E2E_TMP/load-$name/$outcome.keys'"
      sql "UPDATE e2e_keys SET outcome = '$outcome' WHERE outcome IS NULL"
    done
  done
  sql "CREATE INDEX ON e2e_keys (k)"
  sql "CREATE TABLE e2e_ids (k text, id text)"
  for name in "${LOAD_NAMES[@]}"; do
    sql "\\copy e2e_ids FROM '$E2E_TMP/load-$name/accepted.ids'"
  done
  ACCEPTED=$(sql "SELECT count(*) FROM e2e_keys WHERE outcome = 'accepted'")
  REJECTED_ROWS=$(sql "SELECT count(*) FROM e2e_keys WHERE outcome = 'rejected'")
  UNANSWERED_ROWS=$(sql "SELECT count(*) FROM e2e_keys WHERE outcome = 'unanswered'")
  assert_cmp "$ACCEPTED" -gt 0 "rows answered 202"
  assert_eq "$(sql "SELECT count(DISTINCT k) FROM e2e_keys")" "$(sql "SELECT count(*) FROM e2e_keys")" \
    "distinct keys sent = rows sent"
}

# What the final state looks like, for the log (also when waiting failed).
faults_report() {
  e2e_log "accepted rows stored (distinct): $(sql "SELECT count(DISTINCT o.order_key) FROM orders o JOIN e2e_keys k ON k.k = o.order_key AND k.outcome = 'accepted'" 2>&1) of $ACCEPTED"
  e2e_log "rows in orders: $(sql "SELECT count(*) || ' (' || count(DISTINCT order_key) || ' distinct keys)' FROM orders" 2>&1)"
  e2e_log "keys stored more than once: $(sql "SELECT count(*) FROM (SELECT order_key FROM orders GROUP BY 1 HAVING count(*) > 1) d" 2>&1)"
  e2e_log "ledger (chunks, committed rows, dead rows, dead chunks): $(sql "SELECT count(*), coalesce(sum(rows_committed), 0), coalesce(sum(rows_dead), 0), count(*) FILTER (WHERE dead) FROM nomnom_ledger" 2>&1)"
  e2e_log "dead letters by error: $(sql "SELECT coalesce(string_agg(n || ' x ' || left(error, 200), ' | '), 'none') FROM (SELECT error, count(*) AS n FROM nomnom_dead_letters GROUP BY 1) d" 2>&1)"
  e2e_log "rows answered 202 and missing (first 10, with the id in their answer): $(sql "SELECT coalesce(string_agg(k.k || ' ' || coalesce(i.id, '?'), ', '), 'none') FROM (SELECT k FROM e2e_keys k WHERE outcome = 'accepted' AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_key = k.k) ORDER BY k LIMIT 10) k LEFT JOIN e2e_ids i USING (k)" 2>&1)"
  e2e_log "ledger entries of those rows' chunks: $(sql "SELECT coalesce(string_agg(DISTINCT coalesce(l.msg_id || ' rows ' || l.rows_committed || ' seq ' || l.stream_seq || CASE WHEN l.dead THEN ' dead' ELSE '' END, 'none for ' || split_part(i.id, '.', 1)), ', '), 'none') FROM (SELECT k FROM e2e_keys k WHERE outcome = 'accepted' AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_key = k.k) ORDER BY k LIMIT 10) k JOIN e2e_ids i USING (k) LEFT JOIN nomnom_ledger l ON l.batch_id = split_part(i.id, '.', 1)" 2>&1)"
  e2e_log "consumer: $(nats_consumer num_pending 2>&1) pending, $(nats_consumer num_ack_pending 2>&1) ack-pending, $(nats_consumer num_redelivered 2>&1) redelivered; stream: $(nats_stream_messages MESSAGES 2>&1) messages of $(nats_stream_stored MESSAGES 2>&1) stored"
}

# faults_wait_done TIMEOUT: until every row answered 202 is stored and the
# consumer has nothing pending or unacknowledged (so a late second commit of
# a redelivered chunk would have happened by then). Gives up early when the
# consumer has been empty for 10 s with rows still missing (nothing left
# that could bring them).
faults_wait_done() {
  local deadline=$((SECONDS + $1)) stored="" pending="" ack_pending="" empty_since=""
  while :; do
    stored=$(sql "SELECT count(DISTINCT o.order_key) FROM orders o JOIN e2e_keys k ON k.k = o.order_key AND k.outcome = 'accepted'" 2>/dev/null || echo "?")
    pending=$(nats_consumer num_pending 2>/dev/null || echo "?")
    ack_pending=$(nats_consumer num_ack_pending 2>/dev/null || echo "?")
    if [ "$pending" = 0 ] && [ "$ack_pending" = 0 ]; then
      if [ "$stored" = "$ACCEPTED" ]; then
        e2e_pass "every row answered 202 stored ($ACCEPTED), nothing pending in JetStream"
        return 0
      fi
      empty_since=${empty_since:-$SECONDS}
    else
      empty_since=""
    fi
    if [ "$SECONDS" -ge "$deadline" ] || { [ -n "$empty_since" ] && [ $((SECONDS - empty_since)) -ge 10 ]; }; then
      faults_report
      e2e_fail "$stored of $ACCEPTED rows answered 202 stored, consumer has $pending pending and $ack_pending unacknowledged (waited $((SECONDS - deadline + $1)) s)"
    fi
    sleep 0.5
  done
}

# faults_check_exactly_once REJECTED: the promise. REJECTED says what may
# become of rows of requests answered other than 202: "not-stored", or
# "may-be-stored" (nats-server killed after storing a chunk but before
# acknowledging it: at most once). Rows of unanswered requests may be
# stored; nothing at all may be stored twice.
faults_check_exactly_once() {
  local rejected_may=0
  case "$1" in
    not-stored) ;;
    may-be-stored) rejected_may=1 ;;
    *) e2e_fail "faults_check_exactly_once: unknown argument '$1'" ;;
  esac
  faults_report
  assert_eq "$(sql "SELECT count(*), count(DISTINCT o.order_key) FROM orders o JOIN e2e_keys k ON k.k = o.order_key WHERE k.outcome = 'accepted'")" \
    "$ACCEPTED|$ACCEPTED" "rows answered 202 in orders (count, distinct keys): each exactly once"
  assert_eq "$(sql "SELECT count(*) FROM (SELECT order_key FROM orders GROUP BY 1 HAVING count(*) > 1) d")" 0 \
    "keys stored more than once (any outcome)"
  assert_eq "$(sql "SELECT count(*) FROM orders o LEFT JOIN e2e_keys k ON k.k = o.order_key WHERE k.k IS NULL")" 0 \
    "rows in orders that nobody sent"
  local rejected_stored
  rejected_stored=$(sql "SELECT count(*) FROM orders o JOIN e2e_keys k ON k.k = o.order_key WHERE k.outcome = 'rejected'")
  if [ "$rejected_may" = 1 ]; then
    e2e_log "rows of requests answered other than 202 that are stored (allowed, at most once): $rejected_stored of $REJECTED_ROWS"
  else
    assert_eq "$rejected_stored" 0 "rows of requests answered other than 202 that are stored"
  fi
  e2e_log "rows of unanswered requests that are stored (allowed, at most once): $(sql "SELECT count(*) FROM orders o JOIN e2e_keys k ON k.k = o.order_key WHERE k.outcome = 'unanswered'") of $UNANSWERED_ROWS"
  assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "dead letters (every row sent was valid)"
  assert_eq "$(sql "SELECT count(*) FILTER (WHERE dead), coalesce(sum(rows_dead), 0) FROM nomnom_ledger")" "0|0" \
    "ledger: dead chunks, dead rows"
  assert_eq "$(sql "SELECT coalesce(sum(rows_committed), 0) FROM nomnom_ledger")" "$(sql "SELECT count(*) FROM orders")" \
    "ledger rows committed = rows in orders (no chunk counted twice)"
  assert_eq "$(sql "SELECT count(*) - count(DISTINCT stream_seq) FROM nomnom_ledger")" 0 \
    "ledger entries sharing a stream sequence"
}

# The test's PostgreSQL: the postmaster (first line of postmaster.pid) and
# all its children (backends, checkpointer, ...).
faults_pg_pids() {
  local pm
  pm=$(head -n 1 "$NN_PG_DIR/data/postmaster.pid")
  echo "$pm"
  pgrep -P "$pm" || true
}

# SIGSTOP to the postmaster first (no new backends after that), then to its
# children: connections stay open, and nothing answers (a hung server).
faults_pg_sigstop() {
  local pids
  pids=$(faults_pg_pids)
  # shellcheck disable=SC2206  # word splitting wanted
  PG_STOPPED=($pids)
  kill -STOP "${PG_STOPPED[@]}"
  e2e_log "PostgreSQL stopped with SIGSTOP (${#PG_STOPPED[@]} processes)"
}

faults_pg_sigcont() {
  [ "${#PG_STOPPED[@]}" -gt 0 ] || return 0
  kill -CONT "${PG_STOPPED[@]}" 2>/dev/null || true
  e2e_log "PostgreSQL resumed with SIGCONT"
  PG_STOPPED=()
}

# faults_alive PID WHAT: the process still runs.
faults_alive() {
  kill -0 "$1" 2>/dev/null || e2e_fail "$2 exited"
  e2e_pass "$2 still runs"
}

# faults_wait_drained TIMEOUT: until the consumer has nothing pending or
# unacknowledged (the workers are idle, fetching).
faults_wait_drained() {
  local deadline=$((SECONDS + $1))
  until [ "$(nats_consumer num_pending 2>/dev/null)" = 0 ] && [ "$(nats_consumer num_ack_pending 2>/dev/null)" = 0 ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      faults_report
      e2e_fail "the workers did not drain the stream within $1 s"
    fi
    sleep 0.2
  done
  e2e_pass "the workers drained the stream (idle)"
}

# faults_before_fault: load "before" at a steady rate until the workers
# commit, then stopped and drained, so every fetcher is idle when the fault
# comes (a chunk held by a blocked commit is then redelivered to the next
# idle fetcher after each ack wait, instead of every fetcher being busy with
# new chunks).
faults_before_fault() {
  faults_start_load before --threads 4 --batch-rows 20 --pause-ms 20
  faults_wait_load before 40 30
  wait_until "SELECT count(*) > 0 FROM nomnom_ledger" t 30 "workers committing before the fault"
  faults_stop_load before
  faults_wait_drained 60
}

# faults_trickle_load: load "during", one request (a chunk) every two ack
# waits while the fault lasts: each is fetched by an idle fetcher and held,
# and redelivered to the next idle one after each ack wait.
faults_trickle_load() {
  faults_start_load during --threads 1 --batch-rows 20 --pause-ms $((2 * FAULT_ACK_MS))
}

# faults_after_fault SECONDS: load "after" for SECONDS once the fault is over.
faults_after_fault() {
  faults_start_load after --threads 2 --batch-rows 20 --pause-ms 20
  sleep "$1"
  faults_stop_load after
}

# faults_start_daemon_answering [nomnomd flags...]: like e2e_start_daemon, but
# waits only until nomnomd answers HTTP at all (/health, any status), not for
# /ready 200: for starts while PostgreSQL is away, whatever /ready then says.
faults_start_daemon_answering() {
  local attempt deadline got
  E2E_DAEMONS=$((E2E_DAEMONS + 1))
  DAEMON_LOG="$E2E_TMP/daemon-$E2E_DAEMONS.log"
  for attempt in 1 2 3 4 5; do
    DAEMON_PORT=$(nn_free_port)
    DAEMON_URL="http://127.0.0.1:$DAEMON_PORT"
    "$NOMNOMD_BIN" --listen "127.0.0.1:$DAEMON_PORT" --db "$DATABASE_URL" --nats "$NATS_URL" "$@" \
      >>"$DAEMON_LOG" 2>&1 &
    DAEMON_PID=$!
    E2E_PIDS+=("$DAEMON_PID")
    deadline=$((SECONDS + 30))
    while kill -0 "$DAEMON_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      got=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$DAEMON_URL/health" || true)
      if [ -n "$got" ] && [ "$got" != 000 ]; then
        e2e_log "nomnomd $* on $DAEMON_URL (pid $DAEMON_PID), /health $got, /ready $(curl -s -o /dev/null -m 5 -w '%{http_code}' "$DAEMON_URL/ready" || true)"
        return 0
      fi
      sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    e2e_forget_pid "$DAEMON_PID"
    grep -qi 'address already in use' "$DAEMON_LOG" || break
    e2e_log "port $DAEMON_PORT taken (attempt $attempt), trying another"
  done
  e2e_fail "nomnomd did not answer HTTP (log: $(tail -n 5 "$DAEMON_LOG"))"
}
