#!/usr/bin/env bash
# Runs the main job on a fresh machine: installs packages, builds Release,
# starts a throwaway PostgreSQL, generates TPC-H orders at scale factor $SF
# (default 0.1), loads them with `nomnom load`, shows the row count and three
# rows of the orders table, and stops PostgreSQL.
# Usage: [SF=1] scripts/demo.sh [nomnom load options, e.g. --on-conflict update]
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "${1:-}" in -h|--help) nn_usage ;; esac
sf=${SF:-0.1}
nomnom="$NN_ROOT/build/cli/nomnom"

"$NN_ROOT/scripts/deps.sh"
"$NN_ROOT/scripts/build.sh"

tmp=$(mktemp -d /tmp/nomnom-demo.XXXXXX)
cleanup() { nn_stop_services; rm -rf "$tmp"; }
nn_on_exit cleanup
nn_start_postgres

nn_log "demo: nomnom gen tpch orders --sf $sf"
"$nomnom" gen tpch orders --sf "$sf" -o "$tmp/orders.ndjson"
[ -s "$tmp/orders.ndjson" ] || nn_die "nomnom gen wrote no orders"
nn_log "demo: $(wc -l <"$tmp/orders.ndjson") orders, $(du -h "$tmp/orders.ndjson" | cut -f1)"

nn_log "demo: nomnom load orders.ndjson $*"
"$nomnom" load "$tmp/orders.ndjson" "$@"

psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
  -c 'SELECT count(*) AS orders FROM orders' \
  -c 'SELECT * FROM orders ORDER BY 1 LIMIT 3'
