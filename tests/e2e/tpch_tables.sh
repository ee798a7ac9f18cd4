#!/usr/bin/env bash
# e2e: `nomnom gen tpch TABLE` for all eight TPC-H tables at SF 0.01, in the
# three formats. NDJSON goes through `nomnom load --entities
# data/tpch/entities-full` (which creates the spec's tables); CSV and .tbl go
# through PostgreSQL's own COPY into copies of those tables (a .tbl line minus
# its trailing '|' is COPY text with DELIMITER '|'). All three give identical
# contents (count + sum(hashtextextended(t::text, 0))); cardinalities are the
# spec's; keys tie up (orders' customers, lineitems' orders and part/supplier
# pairs in partsupp); output is deterministic per --seed and changes with it.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nn_start_postgres
ENTITIES="$E2E_ROOT/data/tpch/entities-full"
SF=0.01

fingerprint() {  # fingerprint TABLE
  sql "SELECT count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM $1 t"
}

declare -A want_rows=([region]=5 [nation]=25 [supplier]=100 [customer]=1500 [part]=2000 [partsupp]=8000 [orders]=15000)
for t in region nation supplier customer part partsupp orders lineitem; do
  spec=()
  [ "$t" = orders ] && spec=(--spec)
  "$NOMNOM_BIN" gen tpch "$t" --sf $SF "${spec[@]}" --format ndjson -o "$E2E_TMP/$t.ndjson"
  "$NOMNOM_BIN" gen tpch "$t" --sf $SF "${spec[@]}" --format csv -o "$E2E_TMP/$t.csv"
  "$NOMNOM_BIN" gen tpch "$t" --sf $SF --format tbl -o "$E2E_TMP/$t.tbl"
  "$NOMNOM_BIN" load -q --entities "$ENTITIES" --entity "$t" --on-conflict error "$E2E_TMP/$t.ndjson" \
    >"$E2E_TMP/load-$t.log" 2>&1 || e2e_fail "nomnom load $t.ndjson: $(cat "$E2E_TMP/load-$t.log")"
  sql "CREATE TABLE ${t}_csv (LIKE $t INCLUDING ALL); CREATE TABLE ${t}_tbl (LIKE $t INCLUDING ALL)"
  psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "\\copy ${t}_csv FROM '$E2E_TMP/$t.csv' (FORMAT csv)"
  sed 's/|$//' "$E2E_TMP/$t.tbl" >"$E2E_TMP/$t.txt"
  psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "\\copy ${t}_tbl FROM '$E2E_TMP/$t.txt' (FORMAT text, DELIMITER '|')"
  assert_eq "$(grep -c '|$' "$E2E_TMP/$t.tbl")" "$(wc -l <"$E2E_TMP/$t.tbl")" "$t.tbl: every line ends in '|'"
  fp=$(fingerprint "$t")
  assert_eq "$(fingerprint "${t}_csv")" "$fp" "$t: CSV contents = NDJSON contents"
  assert_eq "$(fingerprint "${t}_tbl")" "$fp" "$t: .tbl contents = NDJSON contents"
  if [ -n "${want_rows[$t]:-}" ]; then
    assert_eq "$(sql "SELECT count(*) FROM $t")" "${want_rows[$t]}" "$t: TPC-H cardinality at SF $SF"
  fi
done

n_li=$(sql "SELECT count(*) FROM lineitem")
assert_cmp "$n_li" -ge 15000 "lineitem: at least one per order"
assert_cmp "$n_li" -le 105000 "lineitem: at most seven per order"
assert_eq "$(sql "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey)")" 0 \
  "every order has lineitems"
assert_eq "$(sql "SELECT count(*) FROM lineitem l WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.o_orderkey = l.l_orderkey)")" 0 \
  "every lineitem has its order"
assert_eq "$(sql "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM customer c WHERE c.c_custkey = o.o_custkey)")" 0 \
  "every order's customer exists"
assert_eq "$(sql "SELECT count(*) FROM lineitem l WHERE NOT EXISTS (SELECT 1 FROM partsupp ps WHERE ps.ps_partkey = l.l_partkey AND ps.ps_suppkey = l.l_suppkey)")" 0 \
  "every lineitem's (part, supplier) is in partsupp"
assert_eq "$(sql "SELECT count(*) FROM partsupp ps WHERE NOT EXISTS (SELECT 1 FROM supplier s WHERE s.s_suppkey = ps.ps_suppkey)")" 0 \
  "every partsupp supplier exists"
assert_eq "$(sql "SELECT count(*) FROM nation n WHERE NOT EXISTS (SELECT 1 FROM region r WHERE r.r_regionkey = n.n_regionkey)")" 0 \
  "every nation's region exists"
assert_eq "$(sql "SELECT count(*) FROM orders o WHERE o.o_totalprice <> (SELECT round(sum(l_extendedprice * (1 + l_tax) * (1 - l_discount)), 2) FROM lineitem l WHERE l.l_orderkey = o.o_orderkey)")" 0 \
  "o_totalprice is the sum of its lineitems' charges"

# Deterministic per --seed, different with another seed.
for t in supplier lineitem; do
  a=$("$NOMNOM_BIN" gen tpch "$t" --sf $SF --format tbl | md5sum)
  b=$("$NOMNOM_BIN" gen tpch "$t" --sf $SF --format tbl | md5sum)
  c=$("$NOMNOM_BIN" gen tpch "$t" --sf $SF --format tbl --seed 7 | md5sum)
  assert_eq "$a" "$b" "$t: same output for the same seed"
  assert_ne "$a" "$c" "$t: another seed, other output"
done
