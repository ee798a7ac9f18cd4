#!/usr/bin/env bash
# Benchmarks nested loads: TPC-H orders with their line items as `line_items`
# arrays (nomnom gen tpch orders --nested, entities data/tpch/entities-nested)
# against loading the same rows as two flat files, orders then line items
# (--entity OrderLineItem), with nomnom load; prints a markdown table.
#
# Usage: scripts/bench-nested.sh [options]
#   --sf X             scale factor (default 0.1: 150,000 orders, ~600,000 line items)
#   --rounds N         rounds, nested and flat alternating (default 3)
#   --on-conflict M    error (default), nothing or update
#   --jobs N           nomnom load --jobs (default: nomnom's own)
#   --no-build         skip scripts/deps.sh --bench and scripts/build.sh
#   --keep             keep the temp dir (data) at exit
#   -h, --help         this text
# Each run starts from empty tables (DROP, CHECKPOINT, outside the timed part)
# and must end with every order and line item loaded (counted), or the script
# fails. The flat line-items file is derived from the nested one with python3
# (each element plus its order_key), outside the timed part. Wall time: date
# +%s.%N around the clients. Uses a throwaway PostgreSQL of its own.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/bench.sh source-path=SCRIPTDIR
source "$NN_ROOT/scripts/lib/bench.sh"

sf=0.1 rounds=3 mode=error jobs="" build=1
bench_options "--rounds --sf --jobs --no-build --keep" "--on-conflict" "$@"
set -- "${BENCH_ARGS[@]}"
while [ $# -gt 0 ]; do
  case "$1" in
    --on-conflict) mode=$2; shift ;;
    *) bench_unknown_option "$1" ;;
  esac
  shift
done
case "$mode" in error|nothing|update) ;; *) nn_die "--on-conflict must be error, nothing or update, not '$mode'" ;; esac
jobs_opt=()
[ -z "$jobs" ] || jobs_opt=(--jobs "$jobs")

bench_prepare "$build" psql python3
trap bench_cleanup EXIT
nomnom=$NOMNOM
entities=$NN_ROOT/data/tpch/entities-nested
tmp=$BENCH_TMP
chmod 755 "$tmp"
nn_start_postgres

nn_log "generating SF $sf nested orders and the two flat files"
"$nomnom" gen tpch orders --sf "$sf" --nested -o "$tmp/nested.ndjson"
"$nomnom" gen tpch orders --sf "$sf" -o "$tmp/orders.ndjson"
python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
with open(d + "/nested.ndjson") as f, open(d + "/items.ndjson", "w") as out:
    for line in f:
        o = json.loads(line)
        for item in o["line_items"]:
            out.write(json.dumps({"order_key": o["order_key"], **item}, separators=(",", ":")) + "\n")
PY
orders=$(wc -l <"$tmp/orders.ndjson")
items=$(wc -l <"$tmp/items.ndjson")
nn_log "$orders orders, $items line items"

reset() {
  psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
    -c "SET client_min_messages = warning" \
    -c "DROP TABLE IF EXISTS orders, order_line_items, nomnom_versions_orders, nomnom_versions_order_line_items" \
    -c "CHECKPOINT"
}
check() {
  local got
  got=$(psql -X -At "$DATABASE_URL" -c "SELECT (SELECT count(*) FROM orders) || ' ' || (SELECT count(*) FROM order_line_items)")
  [ "$got" == "$orders $items" ] || nn_die "$1: expected $orders orders and $items line items, found $got"
}
load() { "$nomnom" load "$@" --on-conflict "$mode" "${jobs_opt[@]}" -q --db "$DATABASE_URL"; }

nested_times=() flat_times=()
for ((r = 1; r <= rounds; r++)); do
  reset
  t0=$(bench_now)
  load "$tmp/nested.ndjson" --entities "$entities" --entity Order
  t1=$(bench_now)
  check "nested round $r"
  nested_times+=("$(bench_fsub "$t1" "$t0")")
  reset
  t0=$(bench_now)
  load "$tmp/orders.ndjson"
  load "$tmp/items.ndjson" --entities "$entities" --entity OrderLineItem
  t1=$(bench_now)
  check "flat round $r"
  flat_times+=("$(bench_fsub "$t1" "$t0")")
  nn_log "round $r: nested ${nested_times[-1]} s, flat ${flat_times[-1]} s"
done
mn=$(printf '%s\n' "${nested_times[@]}" | bench_median)
mf=$(printf '%s\n' "${flat_times[@]}" | bench_median)
echo "| SF $sf, --on-conflict $mode, $rounds rounds | median s | all rounds (s) |"
echo "|---|---|---|"
echo "| nested (orders with line_items) | $mn | ${nested_times[*]} |"
echo "| flat: orders, then line items | $mf | ${flat_times[*]} |"
echo "| nested / flat | $(awk -v a="$mn" -v b="$mf" 'BEGIN { printf "%.3f", a / b }') | |"
