#!/usr/bin/env bash
# Runs the main job on a fresh machine: installs what building and running
# needs (scripts/deps.sh --demo), builds nomnom and nomnomd (scripts/build.sh
# --app), starts a throwaway PostgreSQL and nats-server, generates TPC-H
# orders at scale factor $SF (default 0.1) and loads them with `nomnom load`,
# shows the row count and three rows; then starts nomnomd with an embedded
# worker, posts 1,000 new orders to /ingest/batch with curl, waits until the
# worker has committed them, and prints the counts and the dashboard's URL.
# Everything it started is stopped at the end (--serve keeps nomnomd and the
# servers running until Ctrl-C, to look at the dashboard).
# Usage: [SF=1] scripts/demo.sh [--serve] [nomnom load options, e.g. --on-conflict update]
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

serve=0 load_opts=()
for arg in "$@"; do
  case "$arg" in
    -h|--help) nn_usage ;;
    --serve) serve=1 ;;
    *) load_opts+=("$arg") ;;
  esac
done
sf=${SF:-0.1}
nomnom="$NN_ROOT/build/cli/nomnom"
nomnomd="$NN_ROOT/build/daemon/nomnomd"

"$NN_ROOT/scripts/deps.sh" --demo
"$NN_ROOT/scripts/build.sh" --app

tmp=$(mktemp -d /tmp/nomnom-demo.XXXXXX)
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null && { wait "$daemon_pid" 2>/dev/null || true; }
  fi
  nn_stop_services
  rm -rf "$tmp"
}
nn_on_exit cleanup
nn_start_postgres
nn_start_nats

# --- nomnom load -------------------------------------------------------------
nn_log "demo: nomnom gen tpch orders --sf $sf"
"$nomnom" gen tpch orders --sf "$sf" -o "$tmp/orders.ndjson"
[ -s "$tmp/orders.ndjson" ] || nn_die "nomnom gen wrote no orders"
nn_log "demo: $(wc -l <"$tmp/orders.ndjson") orders, $(du -h "$tmp/orders.ndjson" | cut -f1)"

nn_log "demo: nomnom load orders.ndjson ${load_opts[*]}"
"$nomnom" load "$tmp/orders.ndjson" "${load_opts[@]}"

psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
  -c 'SELECT count(*) AS orders FROM orders' \
  -c 'SELECT * FROM orders ORDER BY 1 LIMIT 3'

# --- nomnomd: HTTP -> JetStream -> worker -> PostgreSQL ---------------------
port=$(nn_free_port)
url="http://127.0.0.1:$port"
nn_log "demo: nomnomd --listen 127.0.0.1:$port --workers 1"
"$nomnomd" --listen "127.0.0.1:$port" --workers 1 >"$tmp/nomnomd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/ready")" = 200 ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/nomnomd.log" >&2; nn_die "nomnomd exited"; }
  sleep 0.1
done
# 1,000 orders with keys the load above did not use.
head -n 1000 "$tmp/orders.ndjson" | sed 's/^{"order_key":"/{"order_key":"web-/' >"$tmp/batch.ndjson"
nn_log "demo: curl -X POST $url/ingest/batch --data-binary @batch.ndjson (1,000 orders)"
answer=$(curl -sS -X POST "$url/ingest/batch" -H 'Content-Type: application/x-ndjson' --data-binary "@$tmp/batch.ndjson")
echo "$answer"
batch_id=$(sed -n 's/.*"batch_id":"\([^"]*\)".*/\1/p' <<<"$answer")
[ -n "$batch_id" ] || nn_die "nomnomd did not accept the batch: $answer"
status=""
for _ in $(seq 1 300); do
  status=$(curl -sS "$url/ingest/status/$batch_id")
  case "$status" in *'"status":"processed"'* | *'"status":"dead"'*) break ;; esac
  sleep 0.1
done
echo "$status"
web=$(psql -X -qAt -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT count(*) FROM orders WHERE order_key LIKE 'web-%'")
nn_log "demo: the worker committed $web of the 1,000 posted orders ($(psql -X -qAt "$DATABASE_URL" -c 'SELECT count(*) FROM orders') rows in orders)"
[ "$web" = 1000 ] || nn_die "expected 1000 posted orders in the table, found $web"
nn_log "demo: dashboard at $url/dashboard, API docs at $url/swagger-ui/"
if [ "$serve" = 1 ]; then
  nn_log "demo: serving until Ctrl-C (DATABASE_URL=$DATABASE_URL NATS_URL=$NATS_URL)"
  wait "$daemon_pid"
fi
