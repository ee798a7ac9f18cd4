#!/usr/bin/env bash
# e2e: `nomnom load --fresh` SIGKILLed halfway leaves its table without the
# primary key and with part of the rows (and a marker row); the next load into
# that table (a --fresh one, or any other) empties it, restores the key, says
# so, and then loads everything. While a --fresh load runs, other loads into
# its table are refused.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$NOMNOM_BIN" ] || e2e_fail "nomnom not built: $NOMNOM_BIN"
# shellcheck disable=SC2119  # no extra postgres settings
nn_start_postgres || e2e_fail "PostgreSQL did not start"

data="$E2E_TMP/orders.ndjson"
"$NOMNOM_BIN" gen tpch orders --sf 0.5 --seed 3 -o "$data"
rows=$(wc -l <"$data")
# Small batches on one connection: slow enough to be killed halfway.
slow=(--jobs 1 --batch-rows 5000 --quiet)

key_count() { sql "SELECT count(*) FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'p'"; }
# A table that does not exist yet counts 0 rows (a CASE on to_regclass() does
# not help: the subquery's table is looked up when the query is parsed).
count_rows() { sql "SELECT count(*) FROM $1" 2>/dev/null || echo 0; }
marker_rows() { count_rows nomnom_fresh_loads; }

# start_fresh NAME: a --fresh load in the background (FRESH_PID), waited for
# until its marker is recorded and it has committed rows.
start_fresh() {
  "$NOMNOM_BIN" load "$data" --table orders --fresh "${slow[@]}" >"$E2E_TMP/$1.log" 2>&1 &
  FRESH_PID=$!
  E2E_PIDS+=("$FRESH_PID")
  local deadline=$((SECONDS + 60)) got
  while :; do
    got=$(count_rows orders)
    [ "$got" -gt 0 ] && [ "$(marker_rows)" = 1 ] && break
    kill -0 "$FRESH_PID" 2>/dev/null || e2e_fail "$1: the --fresh load ended before it could be interrupted: $(cat "$E2E_TMP/$1.log")"
    [ "$SECONDS" -lt "$deadline" ] || e2e_fail "$1: no rows committed within 60 s"
    sleep 0.05
  done
}

# crash NAME: a --fresh load SIGKILLed halfway.
crash() {
  start_fresh "$1"
  kill -KILL "$FRESH_PID"
  wait "$FRESH_PID" 2>/dev/null || true
  e2e_forget_pid "$FRESH_PID"
  local left
  left=$(sql "SELECT count(*) FROM orders")
  assert_cmp "$left" -gt 0 "$1: rows the killed load committed"
  assert_cmp "$left" -lt "$rows" "$1: rows the killed load committed (fewer than all)"
  assert_eq "$(key_count)" 0 "$1: primary keys of orders while the killed load's marker is there"
  assert_eq "$(marker_rows)" 1 "$1: marker rows left by the killed load"
  CRASH_LEFT=$left
}

check_loaded() {
  assert_eq "$(sql "SELECT count(*), count(DISTINCT order_key) FROM orders")" "$rows|$rows" "$1: rows in orders"
  assert_eq "$(key_count)" 1 "$1: primary keys of orders"
  assert_eq "$(sql "SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'p'")" \
    orders_pkey "$1: the key's name"
  assert_eq "$(marker_rows)" 0 "$1: marker rows"
}

# 1. Killed, then a --fresh load cleans up and loads.
crash crash1
out=$("$NOMNOM_BIN" load "$data" --table orders --fresh --quiet 2>&1) || e2e_fail "--fresh after the crash failed: $out"
assert_contains "$out" "found an interrupted fresh load (--fresh) of \"orders\"" "--fresh after the crash"
assert_contains "$out" "removed its $CRASH_LEFT rows and restored the primary key \"orders_pkey\"" "--fresh after the crash"
check_loaded "after crash 1 and a --fresh load"

# 2. Killed, then a plain load (--on-conflict nothing, which needs the key) cleans up and loads.
sql "TRUNCATE orders"
crash crash2
out=$("$NOMNOM_BIN" load "$data" --table orders --on-conflict nothing --quiet 2>&1) \
  || e2e_fail "a plain load after the crash failed: $out"
assert_contains "$out" "removed its $CRASH_LEFT rows and restored the primary key" "plain load after the crash"
check_loaded "after crash 2 and a plain load"

# 3. While a --fresh load runs, other loads into its table are refused; it finishes.
sql "TRUNCATE orders"
start_fresh running
set +e
out=$("$NOMNOM_BIN" load "$data" --table orders --on-conflict error --quiet 2>&1)
rc=$?
set -e
assert_eq "$rc" 1 "exit code of a load while a --fresh load runs"
assert_contains "$out" "is running" "a load while a --fresh load runs"
e2e_wait_pid "$FRESH_PID" 120 "the running --fresh load"
assert_eq "$WAIT_RC" 0 "exit code of the --fresh load others were refused during"
check_loaded "after the undisturbed --fresh load"
