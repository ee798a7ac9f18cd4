#!/usr/bin/env bash
# e2e: a 3-node nats-server cluster (R3 MESSAGES and dead-letter streams), two
# API-only nomnomd and two `nomnom worker` processes, every binary given all
# three URLs. Mid-load the node that leads the MESSAGES stream is SIGKILLed
# together with one worker; both come back later. At the end every 202'd row
# is in PostgreSQL exactly once, rows that got another answer at most once,
# and nothing is dead-lettered.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck disable=SC2119  # no extra postgres settings
nn_start_postgres || e2e_fail "PostgreSQL did not start"

# --- the cluster ---------------------------------------------------------------------
CL_DIR="$E2E_TMP/cluster"
mkdir -p "$CL_DIR"
declare -a CL_PORT CL_MPORT CL_RPORT CL_PID
for i in 1 2 3; do
  CL_PORT[i]=$(nn_free_port); CL_MPORT[i]=$(nn_free_port); CL_RPORT[i]=$(nn_free_port)
done
routes="nats://127.0.0.1:${CL_RPORT[1]},nats://127.0.0.1:${CL_RPORT[2]},nats://127.0.0.1:${CL_RPORT[3]}"
cl_start() {
  local i=$1
  nats-server -a 127.0.0.1 -p "${CL_PORT[$i]}" -m "${CL_MPORT[$i]}" -js -sd "$CL_DIR/n$i" \
    --server_name "n$i" --cluster_name nomnom-e2e --cluster "nats://127.0.0.1:${CL_RPORT[$i]}" \
    --routes "$routes" >>"$E2E_TMP/nats-n$i.log" 2>&1 &
  CL_PID[i]=$!
  E2E_PIDS+=("${CL_PID[$i]}")
}
for i in 1 2 3; do cl_start "$i"; done
NATS_URLS="nats://127.0.0.1:${CL_PORT[1]},nats://127.0.0.1:${CL_PORT[2]},nats://127.0.0.1:${CL_PORT[3]}"
# JetStream is usable once the cluster elected a meta leader.
deadline=$((SECONDS + 60))
# Formed once the meta leader lists both other peers as current (only the
# leader's /jsz lists them).
cluster_formed() {
  local i
  for i in 1 2 3; do
    curl -sf -m 2 "http://127.0.0.1:${CL_MPORT[$i]}/jsz" 2>/dev/null | python3 -c '
import json, sys
m = json.load(sys.stdin).get("meta_cluster", {})
sys.exit(0 if len([r for r in m.get("replicas", []) if r.get("current")]) == 2 else 1)' && return 0
  done
  return 1
}
until cluster_formed; do
  [ "$SECONDS" -lt "$deadline" ] || e2e_fail "the JetStream cluster did not form (a meta leader and both other peers) within 60 s"
  sleep 0.5
done
e2e_pass "3-node JetStream cluster up"

# stream_leader STREAM: the server name leading it, from any live node's /jsz.
stream_leader() {
  local i
  for i in 1 2 3; do
    curl -sS -m 3 "http://127.0.0.1:${CL_MPORT[$i]}/jsz?streams=1" 2>/dev/null | python3 -c '
import json, sys
j = json.load(sys.stdin)
for acc in j.get("account_details", []):
    for s in acc.get("stream_detail", []):
        if s["name"] == sys.argv[1] and s.get("cluster", {}).get("leader"):
            print(s["cluster"]["leader"]); sys.exit(0)
sys.exit(1)' "$1" && return 0
  done
  return 1
}

# --- two API daemons, two workers --------------------------------------------------------
common=(--stream-replicas 3 --ack-wait-ms 5000 --max-deliver 3)
NATS_URL="$NATS_URLS"
e2e_start_daemon --workers 0 "${common[@]}"
port_a=$DAEMON_PORT
e2e_start_daemon --workers 0 "${common[@]}"
port_b=$DAEMON_PORT
wk=()
for w in 1 2; do
  e2e_start_worker "worker-$w" --threads 1 "${common[@]}"
  wk[w]=$WORKER_PID
done
leader=$(stream_leader MESSAGES) || e2e_fail "no leader for the MESSAGES stream"
replicas=$(curl -sS -m 3 "http://127.0.0.1:${CL_MPORT[1]}/jsz?streams=1&config=1" | python3 -c '
import json, sys
j = json.load(sys.stdin)
for acc in j.get("account_details", []):
    for s in acc.get("stream_detail", []):
        if s["name"] == "MESSAGES": print(s["config"]["num_replicas"])')
assert_eq "$replicas" 3 "replicas of the MESSAGES stream"

# --- load, and lose the stream leader and a worker mid-way ----------------------------------
stop="$E2E_TMP/stop"
python3 "$E2E_DIR/cluster_load.py" "$port_a,$port_b" "$E2E_TMP" "$stop" 4 30000 >"$E2E_TMP/load.json" \
  2>"$E2E_TMP/load.log" &
load_pid=$!
E2E_PIDS+=("$load_pid")
sleep 3
victim=${leader#n}
e2e_log "SIGKILL nats-server n$victim (leader of MESSAGES) and worker 1"
kill -KILL "${CL_PID[$victim]}" "${wk[1]}"
wait "${CL_PID[$victim]}" 2>/dev/null || true
wait "${wk[1]}" 2>/dev/null || true
e2e_forget_pid "${CL_PID[$victim]}"
e2e_forget_pid "${wk[1]}"
# A new leader is elected among the two live nodes (the dead one's /jsz is
# gone; a live node may still name the old leader for a while).
deadline=$((SECONDS + 60))
new_leader=$(stream_leader MESSAGES || true)
while [ -z "$new_leader" ] || [ "$new_leader" = "$leader" ]; do
  [ "$SECONDS" -lt "$deadline" ] || e2e_fail "no new leader for MESSAGES within 60 s after n$victim died (last: '$new_leader')"
  sleep 0.5
  new_leader=$(stream_leader MESSAGES || true)
done
e2e_pass "MESSAGES re-elected a leader: $new_leader (was $leader)"
sleep 2
cl_start "$victim"
e2e_start_worker "worker-1b" --threads 1 "${common[@]}"
sleep 4
touch "$stop"
e2e_wait_pid "$load_pid" 120 "the load"
e2e_log "load: $(cat "$E2E_TMP/load.json")"
accepted=$(wc -l <"$E2E_TMP/accepted.keys")
assert_cmp "$accepted" -gt 100 "rows answered 202"

# --- every 202'd row once, nothing dead ----------------------------------------------------
sql "CREATE TABLE IF NOT EXISTS accepted_keys (k text PRIMARY KEY)"
sql "CREATE TABLE IF NOT EXISTS failed_keys (k text PRIMARY KEY)"
psql -X -q "$DATABASE_URL" -c "\\copy accepted_keys FROM '$E2E_TMP/accepted.keys'"
psql -X -q "$DATABASE_URL" -c "\\copy failed_keys FROM '$E2E_TMP/failed.keys'"
wait_until "SELECT count(*) FROM accepted_keys a WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_key = a.k)" \
  0 120 "202'd rows missing from orders"
assert_eq "$(sql "SELECT count(*) FROM (SELECT order_key FROM orders GROUP BY order_key HAVING count(*) > 1) d")" 0 \
  "order keys stored more than once"
assert_eq "$(sql "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM accepted_keys a WHERE a.k = o.order_key)
  AND NOT EXISTS (SELECT 1 FROM failed_keys f WHERE f.k = o.order_key)")" 0 "rows nobody sent"
assert_eq "$(sql "SELECT count(*) FROM nomnom_dead_letters")" 0 "dead letters"
e2e_log "$accepted rows 202'd, $(wc -l <"$E2E_TMP/failed.keys") answered otherwise, \
$(sql "SELECT count(*) FROM orders o JOIN failed_keys f ON f.k = o.order_key") of those stored"
