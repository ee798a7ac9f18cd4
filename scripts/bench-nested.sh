#!/usr/bin/env bash
# Benchmarks nested loads: TPC-H orders with their line items as `line_items`
# arrays (nomnom gen tpch orders --nested, entities data/tpch/entities-nested)
# against loading the same rows as two flat files, orders then line items
# (--entity OrderLineItem), with nomnom load; prints a markdown table.
#
# Usage: scripts/bench-nested.sh [--sf X] [--rounds N] [--on-conflict MODE] [--jobs N]
#   --sf X             scale factor (default 0.1: 150,000 orders, ~600,000 line items)
#   --rounds N         rounds, nested and flat alternating (default 3)
#   --on-conflict M    error (default), nothing or update
#   --jobs N           nomnom load --jobs (default: nomnom's own)
# Each run starts from empty tables (DROP, CHECKPOINT, outside the timed part)
# and must end with every order and line item loaded (counted), or the script
# fails. The flat line-items file is derived from the nested one with python3
# (each element plus its order_key), outside the timed part. Wall time: date
# +%s.%N around the clients. Uses build/cli/nomnom (scripts/build.sh) and a
# throwaway PostgreSQL of its own.
set -euo pipefail
NN_SCRIPT=$0
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

sf=0.1 rounds=3 mode=error jobs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sf) sf=${2:?--sf needs a value}; shift ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift ;;
    --on-conflict) mode=${2:?--on-conflict needs a value}; shift ;;
    --jobs) jobs=(--jobs "${2:?--jobs needs a value}"); shift ;;
    -h|--help) nn_usage ;;
    *) nn_die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
nn_need_number --sf "$sf"
nn_need_int --rounds 1 "$rounds"
nomnom=$NN_ROOT/build/cli/nomnom
[ -x "$nomnom" ] || nn_die "build first: scripts/build.sh"
entities=$NN_ROOT/data/tpch/entities-nested

tmp=$(mktemp -d /tmp/nomnom-bench-nested.XXXXXX)
chmod 755 "$tmp"
nn_on_exit "nn_stop_services; rm -rf '$tmp'"
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
now() { date +%s.%N; }
load() { "$nomnom" load "$@" --on-conflict "$mode" "${jobs[@]}" -q --db "$DATABASE_URL"; }

nested_times=() flat_times=()
for ((r = 1; r <= rounds; r++)); do
  reset
  t0=$(now)
  load "$tmp/nested.ndjson" --entities "$entities" --entity Order
  t1=$(now)
  check "nested round $r"
  nested_times+=("$(echo "$t1 - $t0" | bc)")
  reset
  t0=$(now)
  load "$tmp/orders.ndjson"
  load "$tmp/items.ndjson" --entities "$entities" --entity OrderLineItem
  t1=$(now)
  check "flat round $r"
  flat_times+=("$(echo "$t1 - $t0" | bc)")
  nn_log "round $r: nested ${nested_times[-1]} s, flat ${flat_times[-1]} s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mn=$(median "${nested_times[@]}")
mf=$(median "${flat_times[@]}")
echo "| SF $sf, --on-conflict $mode, $rounds rounds | median s | all rounds (s) |"
echo "|---|---|---|"
echo "| nested (orders with line_items) | $mn | ${nested_times[*]} |"
echo "| flat: orders, then line items | $mf | ${flat_times[*]} |"
echo "| nested / flat | $(echo "scale=3; $mn / $mf" | bc) | |"
