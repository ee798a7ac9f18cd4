#!/usr/bin/env bash
# e2e (container): deploy/compose.yaml with podman-compose: PostgreSQL and
# nats-server images built from Debian packages, nomnomd (API only) and one
# worker from the image scripts/image.sh builds. The README's curl examples
# (message, batch, status) against it, with the compose file's token; the rows
# in the stack's own PostgreSQL; `down -v` removes it all.
# Usage: compose_up.sh [IMAGE]   (default localhost/nomnom:latest)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../../scripts/lib/podman.sh
source "$E2E_ROOT/scripts/lib/podman.sh"

image=${1:-${NOMNOM_IMAGE:-localhost/nomnom:latest}}
nn_podman_setup
podman image exists "$image" || e2e_fail "image $image does not exist (build it with scripts/image.sh)"
NOMNOM_BASE=$(nn_podman_base) || e2e_fail "no base image"
export NOMNOM_BASE
export NOMNOM_HTTP_PORT NOMNOM_METRICS_PORT
NOMNOM_HTTP_PORT=$(nn_free_port)
NOMNOM_METRICS_PORT=$(nn_free_port)
DAEMON_URL="http://127.0.0.1:$NOMNOM_HTTP_PORT"
project=nne2e$$
compose=(podman-compose -p "$project" -f "$E2E_ROOT/deploy/compose.yaml")
if [ "$image" != localhost/nomnom:latest ]; then
  sed "s|image: localhost/nomnom:latest|image: $image|" "$E2E_ROOT/deploy/compose.yaml" >"$E2E_ROOT/deploy/.compose-e2e-$$.yaml"
  compose=(podman-compose -p "$project" -f "$E2E_ROOT/deploy/.compose-e2e-$$.yaml")
  E2E_CLEANUP+=("rm -f '$E2E_ROOT/deploy/.compose-e2e-$$.yaml'")
fi
E2E_CLEANUP+=("${compose[*]} down -v >/dev/null 2>&1")

"${compose[@]}" build >"$E2E_TMP/compose-build.log" 2>&1 || e2e_fail "podman-compose build: $(tail -n 5 "$E2E_TMP/compose-build.log")"
e2e_pass "podman-compose build (postgres and nats from Debian packages)"
"${compose[@]}" up -d >"$E2E_TMP/compose-up.log" 2>&1 || e2e_fail "podman-compose up: $(grep -v systemd "$E2E_TMP/compose-up.log" | tail -n 5)"
e2e_pass "podman-compose up -d"

# nomnomd and the worker start with PostgreSQL and NATS: they retry (the
# worker) or are restarted (restart: on-failure) until both answer.
e2e_wait_http "$DAEMON_URL/ready" 200 120 || e2e_fail "nomnomd did not become ready: $(podman logs "${project}_nomnomd_1" 2>&1 | tail -n 5)"
e2e_pass "nomnomd /ready"
e2e_wait_http "http://127.0.0.1:$NOMNOM_METRICS_PORT/ready" 200 120 ||
  e2e_fail "the worker did not become ready: $(podman logs "${project}_worker_1" 2>&1 | tail -n 5)"
e2e_pass "worker /ready"

auth=(-H 'Authorization: Bearer dev-token')
post_json /ingest/message '{"order_key":"123","customer_key":"CUST-001","order_status":"O","total_price":99.99,"order_date":"2024-01-01"}'
assert_status 401 "the README's message example without the token"
post_json /ingest/message '{"order_key":"123","customer_key":"CUST-001","order_status":"O","total_price":99.99,"order_date":"2024-01-01"}' "${auth[@]}"
assert_status 202 "the README's message example"
message_id=$(json_get message_id)
for i in $(seq 1 20); do order_json "b-$i"; echo; done >"$E2E_TMP/orders.ndjson"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary @"$E2E_TMP/orders.ndjson" "${auth[@]}"
assert_status 202 "the README's batch example (20 lines)"
batch_id=$(json_get batch_id)

psql_in() { podman exec "${project}_postgres_1" psql -X -q -At -U nomnom -d nomnom -c "$1" 2>&1; }
deadline=$((SECONDS + 60))
until [ "$(psql_in 'SELECT count(*) FROM orders')" = 21 ]; do
  [ "$SECONDS" -lt "$deadline" ] || e2e_fail "rows in the stack's orders: expected 21, got '$(psql_in 'SELECT count(*) FROM orders')'"
  sleep 0.5
done
e2e_pass "21 rows in the stack's PostgreSQL"
assert_eq "$(psql_in "SELECT total_price FROM orders WHERE order_key = '123'")" 99.99 "the message's row"
for id in "$message_id" "$batch_id"; do
  deadline=$((SECONDS + 30))
  while :; do
    http GET "/ingest/status/$id" "${auth[@]}"
    [ "$(json_get status)" = processed ] && break
    [ "$SECONDS" -lt "$deadline" ] || e2e_fail "status of $id: $HTTP_BODY"
    sleep 0.5
  done
  e2e_pass "status of $id is processed"
done

"${compose[@]}" down -v >"$E2E_TMP/compose-down.log" 2>&1 || e2e_fail "podman-compose down -v"
left=$(podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}')
assert_eq "$left" "" "containers left after down -v"
