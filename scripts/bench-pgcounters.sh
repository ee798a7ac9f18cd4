#!/usr/bin/env bash
# What PostgreSQL does for each loader of the same rows: transactions, XIDs
# assigned (subtransactions included), statements by kind (pg_stat_statements),
# WAL records, full-page images and bytes, buffers written by backends and by
# checkpoints, relation extensions, and the table's and index's final sizes.
# These are counts, not timings: a busy machine does not change them, so this
# runs beside other work (issue 25: why the server works harder for nomnom's
# COPY than for the limit's).
#
# Usage: scripts/bench-pgcounters.sh [--sf X] [--loaders "A B ..."] [--nomnom BIN] [--no-build]
#   --sf X          scale factor of the TPC-H orders (default 1)
#   --loaders       which loaders, in order (default: psql-limit nomnom-error
#                   nomnom-nothing nomnom-fresh); the names of scripts/bench-load.sh
#   --nomnom BIN    the nomnom binary (default build/cli/nomnom)
#   --no-build      skip scripts/deps.sh and scripts/build.sh
# Prints a markdown table (one column per loader) on stdout; logs on stderr.
# PostgreSQL: a throwaway server with default durability (fsync on) and
# pg_stat_statements preloaded; each loader runs into a new empty table after
# a CHECKPOINT, with every counter read just before and just after it.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

sf=1 loaders="psql-limit nomnom-error nomnom-nothing nomnom-fresh" nomnom="$NN_ROOT/build/cli/nomnom" build=1
bench_options "--sf --no-build" "--loaders --nomnom" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --loaders) loaders=$2; shift ;;
    --nomnom) nomnom=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
[ -n "$loaders" ] || nn_die "--loaders needs at least one loader"
if [ "$build" = 1 ]; then
  "$NN_ROOT/scripts/deps.sh"
  "$NN_ROOT/scripts/build.sh"
fi
[ -x "$nomnom" ] || nn_die "no nomnom binary at $nomnom (build it, or --nomnom BIN)"
nomnom=$(realpath "$nomnom")

tmp=$(mktemp -d /tmp/nomnom-pgcounters.XXXXXX)
chmod 755 "$tmp"
cleanup() { nn_stop_services; rm -rf "$tmp"; }
nn_on_exit cleanup
NN_PG_DURABLE=1 nn_start_postgres shared_preload_libraries=pg_stat_statements pg_stat_statements.track=all
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }
psql_ -c 'CREATE EXTENSION pg_stat_statements'

readonly TABLE=orders_x
nn_log "pgcounters: generating SF $sf orders"
"$nomnom" gen tpch orders --sf "$sf" --seed 1 -o "$tmp/orders.ndjson"
"$nomnom" gen tpch orders --sf "$sf" --seed 1 --format csv -o "$tmp/orders.csv"
rows=$(wc -l <"$tmp/orders.ndjson")
new_table() {
  psql_ -c "SET client_min_messages = warning; DROP TABLE IF EXISTS $TABLE" >/dev/null
  "$nomnom" schema --table "$TABLE" | psql_ >/dev/null
  psql_ -c 'CHECKPOINT' >/dev/null
}
# The limit's inputs: the rows as two binary COPY halves split by a hash of the key.
new_table
psql_ -c "\\copy $TABLE FROM '$tmp/orders.csv' CSV"
psql_ -c "\\copy (SELECT * FROM $TABLE WHERE hashtext(order_key) % 2 = 0) TO '$tmp/half0.bin' (FORMAT binary)" \
  -c "\\copy (SELECT * FROM $TABLE WHERE hashtext(order_key) % 2 <> 0) TO '$tmp/half1.bin' (FORMAT binary)"

run_loader() {
  case "$1" in
    psql-limit)
      psql_ -c "\\copy $TABLE FROM '$tmp/half0.bin' (FORMAT binary)" &
      local p0=$!
      psql_ -c "\\copy $TABLE FROM '$tmp/half1.bin' (FORMAT binary)"
      wait "$p0" ;;
    psql-copy) psql_ -c "\\copy $TABLE FROM '$tmp/orders.csv' CSV" ;;
    nomnom-error) "$nomnom" load "$tmp/orders.ndjson" --on-conflict error --quiet --table "$TABLE" ;;
    nomnom-nothing) "$nomnom" load "$tmp/orders.ndjson" --on-conflict nothing --quiet --table "$TABLE" ;;
    nomnom-update) "$nomnom" load "$tmp/orders.ndjson" --on-conflict update --quiet --table "$TABLE" ;;
    nomnom-fresh) "$nomnom" load "$tmp/orders.ndjson" --fresh --quiet --table "$TABLE" ;;
    nomnom-jobs1) "$nomnom" load "$tmp/orders.ndjson" --on-conflict error --quiet --table "$TABLE" --jobs 1 ;;
    *) nn_die "unknown loader $1" ;;
  esac
}

# One line of name=value pairs: every counter, read now.
snapshot() {
  psql_ -At -F= <<'SQL'
SELECT 'xid_next', txid_snapshot_xmax(txid_current_snapshot())
UNION ALL SELECT 'xact_commit', xact_commit FROM pg_stat_database WHERE datname = current_database()
UNION ALL SELECT 'xact_rollback', xact_rollback FROM pg_stat_database WHERE datname = current_database()
UNION ALL SELECT 'wal_records', wal_records FROM pg_stat_wal
UNION ALL SELECT 'wal_fpi', wal_fpi FROM pg_stat_wal
UNION ALL SELECT 'wal_bytes', wal_bytes FROM pg_stat_wal
UNION ALL SELECT 'wal_buffers_full', wal_buffers_full FROM pg_stat_wal
UNION ALL SELECT 'wal_write', wal_write FROM pg_stat_wal
UNION ALL SELECT 'wal_sync', wal_sync FROM pg_stat_wal
UNION ALL SELECT 'buffers_backend', buffers_backend FROM pg_stat_bgwriter
UNION ALL SELECT 'buffers_checkpoint', buffers_checkpoint FROM pg_stat_bgwriter
UNION ALL SELECT 'buffers_clean', buffers_clean FROM pg_stat_bgwriter
UNION ALL SELECT 'checkpoints', checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter
UNION ALL SELECT 'subtrans_blks_zeroed', blks_zeroed FROM pg_stat_slru WHERE name = 'Subtrans'
UNION ALL SELECT 'subtrans_blks_written', blks_written FROM pg_stat_slru WHERE name = 'Subtrans'
UNION ALL SELECT 'temp_bytes', temp_bytes FROM pg_stat_database WHERE datname = current_database()
SQL
}

declare -A result
names=(xid_next xact_commit xact_rollback wal_records wal_fpi wal_bytes wal_buffers_full wal_write wal_sync
  buffers_backend buffers_checkpoint buffers_clean checkpoints subtrans_blks_zeroed subtrans_blks_written temp_bytes)
for loader in $loaders; do
  new_table
  psql_ -c 'SELECT pg_stat_statements_reset()' >/dev/null
  declare -A before=()
  while IFS='=' read -r k v; do before[$k]=$v; done < <(snapshot)
  start=$(date +%s.%N)
  run_loader "$loader" >"$tmp/$loader.log" 2>&1 || { cat "$tmp/$loader.log" >&2; nn_die "$loader failed"; }
  wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  # Counters settle: the stats of the loader's backends are flushed at their exit.
  sleep 1
  while IFS='=' read -r k v; do result[$loader,$k]=$((v - ${before[$k]})); done < <(snapshot)
  got=$(psql_ -At -c "SELECT count(*) FROM $TABLE")
  [ "$got" = "$rows" ] || nn_die "$loader: $got rows in $TABLE, expected $rows"
  # Statements by kind, from pg_stat_statements (utility statements included).
  while IFS='|' read -r kind calls; do result[$loader,stmt_$kind]=$calls; done < <(psql_ -At -F'|' -c "
    SELECT CASE WHEN query ILIKE 'copy%' THEN 'copy' WHEN query ILIKE 'savepoint%' THEN 'savepoint'
                WHEN query ILIKE 'release%' THEN 'release' WHEN query ILIKE 'rollback to%' THEN 'rollback_to'
                WHEN query ILIKE 'begin%' OR query ILIKE 'start transaction%' THEN 'begin'
                WHEN query ILIKE 'commit%' THEN 'commit' WHEN query ILIKE 'insert%' THEN 'insert'
                WHEN query ILIKE 'create%' OR query ILIKE 'alter%' OR query ILIKE 'drop%' THEN 'ddl'
                ELSE 'other' END, sum(calls)
    FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%' GROUP BY 1")
  result[$loader,table_mb]=$(psql_ -At -c "SELECT round(pg_relation_size('$TABLE') / 1048576.0, 1)")
  result[$loader,index_mb]=$(psql_ -At -c "SELECT round(pg_indexes_size('$TABLE') / 1048576.0, 1)")
  result[$loader,wall_s]=$wall
  nn_log "pgcounters: $loader done in ${wall} s"
done

stmts=(stmt_begin stmt_copy stmt_savepoint stmt_release stmt_rollback_to stmt_insert stmt_commit stmt_ddl stmt_other)
echo "### PostgreSQL's work per loader, SF $sf ($rows rows), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$NN_ROOT" rev-parse --short HEAD)"
echo
printf '| counter |'; for l in $loaders; do printf ' %s |' "$l"; done; echo
printf '|---|'; for _ in $loaders; do printf -- '---:|'; done; echo
for k in wall_s xid_next "${names[@]:1}" "${stmts[@]}" table_mb index_mb; do
  label=$k
  [ "$k" = xid_next ] && label="XIDs assigned"
  printf '| %s |' "$label"
  for l in $loaders; do printf ' %s |' "${result[$l,$k]:-0}"; done
  echo
done
echo
echo "wall_s is not a benchmark (one run, machine not quiet); every other row is a count."
