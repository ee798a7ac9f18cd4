#!/usr/bin/env bash
# e2e: `nomnom load` of CSV and dbgen .tbl input.
#  1. Every TPC-H table generated (`nomnom gen tpch TABLE --sf 0.01`) as
#     NDJSON, CSV and .tbl (the .tbl files gzipped), each format loaded into a
#     database of its own with data/tpch/entities-full (format by extension,
#     different conflict modes, jobs and parser threads): identical contents
#     (count + sum(hashtextextended(t::text, 0))) in the three databases.
#  2. CSV headers: in another column order (--header and auto-detected),
#     --no-header, an unknown header column (exit 1, nothing loaded); --into
#     a hand-made table with a CSV header.
#  3. A 6 MB CSV whose quoted fields hold commas, quotes, CR, LF and CRLF, so
#     records with line breaks straddle the reader's 2 MB chunk boundaries
#     (one 3 MB field of short lines surely does): the same table contents as
#     PostgreSQL's own COPY (FORMAT csv) of it; the same through stdin with
#     --format csv and gzipped; a bad record appended is rejected at its
#     physical line.
#  4. CSV and .tbl with bad records (wrong field count, bad date, bad number,
#     bad quoting, NULL in NOT NULL) after multi-line records: exit 3, the
#     rejects file names each at its real physical line with the raw record,
#     every good row loaded exactly.
#  5. Conflict modes on CSV: error, nothing (the default), update (the last
#     occurrence wins, 2 connections), --fresh (later duplicates rejected).
#  6. Refused (exit 2): a nested entity, --via-nats, mixed formats, --header
#     on NDJSON.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nn_start_postgres
BASE_URL=$DATABASE_URL
ENTITIES="$E2E_ROOT/data/tpch/entities-full"
SF=0.01
T=$E2E_TMP

db_url() { echo "${BASE_URL%/*}/$1"; }
fingerprint() {  # fingerprint URL TABLE
  psql -X -q -At -v ON_ERROR_STOP=1 "$1" \
    -c "SELECT count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM $2 t"
}
# load LOG ARGS...: nomnom load, its exit code in RC, its output in LOG.
load() {
  local log=$1
  shift
  set +e
  "$NOMNOM_BIN" load "$@" >"$log" 2>&1
  RC=$?
  set -e
}

# The line numbers in a rejects file; one reject's file, error and raw record.
rej_lines() { python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["line"]) for l in open(sys.argv[1])))' "$1"; }
rej() {  # rej FILE LINE: "error | raw" of the reject at LINE
  python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["line"] == int(sys.argv[2]):
        print(r["file"].rsplit("/", 1)[-1], "|", r["error"], "|", r["raw"])' "$1" "$2"
}

# --- 1. Eight TPC-H tables, three formats, three databases ------------------
for f in ndjson csv tbl; do sql "CREATE DATABASE load_$f"; done
declare -A fmt_args=(
  [ndjson]="--on-conflict nothing"
  [csv]="--on-conflict error --jobs 2 --parsers 2"
  [tbl]="--on-conflict update --jobs 2 --parsers 2"
)
for t in region nation supplier customer part partsupp orders lineitem; do
  spec=()
  [ "$t" = orders ] && spec=(--spec)
  "$NOMNOM_BIN" gen tpch "$t" --sf $SF "${spec[@]}" --format ndjson -o "$T/$t.ndjson"
  "$NOMNOM_BIN" gen tpch "$t" --sf $SF "${spec[@]}" --format csv -o "$T/$t.csv"
  "$NOMNOM_BIN" gen tpch "$t" --sf $SF --format tbl -o "$T/$t.tbl"
  gzip -f "$T/$t.tbl"
  for f in ndjson csv tbl; do
    input="$T/$t.$f"
    [ "$f" = tbl ] && input="$T/$t.tbl.gz"
    # shellcheck disable=SC2086  # fmt_args are several words
    load "$T/load-$t-$f.log" --db "$(db_url "load_$f")" --entities "$ENTITIES" --entity "$t" ${fmt_args[$f]} "$input"
    [ "$RC" = 0 ] || e2e_fail "nomnom load $input: exit $RC: $(cat "$T/load-$t-$f.log")"
  done
  fp=$(fingerprint "$(db_url load_ndjson)" "$t")
  rows=${fp%%:*}
  assert_cmp "$rows" -gt 0 "$t: rows loaded from NDJSON"
  assert_eq "$(fingerprint "$(db_url load_csv)" "$t")" "$fp" "$t: CSV load = NDJSON load"
  assert_eq "$(fingerprint "$(db_url load_tbl)" "$t")" "$fp" "$t: .tbl.gz load = NDJSON load"
done

# --- 2. Headers ---------------------------------------------------------------
DB=$(db_url nomnom)
export DATABASE_URL=$DB
want=$(fingerprint "$(db_url load_ndjson)" region)
# The columns reversed, under a header naming them.
{
  echo "r_comment,r_name,r_regionkey"
  python3 -c '
import csv, sys
w = csv.writer(sys.stdout, lineterminator="\n")
for row in csv.reader(open(sys.argv[1])):
    w.writerow(list(reversed(row)))' "$T/region.csv"
} >"$T/region-reordered.csv"
load "$T/h1.log" --entities "$ENTITIES" --entity region --table region_h1 --header "$T/region-reordered.csv"
assert_eq "$RC" 0 "--header with the columns in another order: exit"
assert_eq "$(fingerprint "$DB" region_h1)" "$want" "--header, reordered columns: contents"
load "$T/h2.log" --entities "$ENTITIES" --entity region --table region_h2 "$T/region-reordered.csv"
assert_eq "$RC" 0 "a reordered header, auto-detected: exit"
assert_eq "$(fingerprint "$DB" region_h2)" "$want" "auto-detected reordered header: contents"
{ echo "r_regionkey,r_name,r_comment"; cat "$T/region.csv"; } >"$T/region-header.csv"
load "$T/h3.log" --entities "$ENTITIES" --entity region --table region_h3 "$T/region-header.csv"
assert_eq "$RC" 0 "a header in entity order, auto-detected: exit"
assert_eq "$(fingerprint "$DB" region_h3)" "$want" "auto-detected header: contents"
{ printf '\xEF\xBB\xBF'; sed 's/$/\r/' "$T/region-header.csv"; } >"$T/region-bom-crlf.csv"
load "$T/h3b.log" --entities "$ENTITIES" --entity region --table region_h3b "$T/region-bom-crlf.csv"
assert_eq "$RC" 0 "a header after a BOM, CRLF line ends, auto-detected: exit"
assert_eq "$(fingerprint "$DB" region_h3b)" "$want" "BOM + CRLF + header: contents"
load "$T/h4.log" --entities "$ENTITIES" --entity region --table region_h4 --no-header --rejects "$T/h4.rej" \
  "$T/region-header.csv"
assert_eq "$RC" 3 "--no-header on a file with a header: the header is a rejected row"
assert_eq "$(wc -l <"$T/h4.rej")" 1 "--no-header: one reject"
assert_eq "$(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); print(r["line"], r["raw"])' "$T/h4.rej")" \
  "1 r_regionkey,r_name,r_comment" "--no-header: the header line rejected"
assert_contains "$(cat "$T/h4.rej")" "expected an integer" "--no-header: why"
# A column the entity does not have: ignored (as NDJSON ignores unknown keys),
# an error with --strict.
python3 -c '
import csv, sys
w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(["r_colour", "r_regionkey", "r_name", "r_comment"])
for row in csv.reader(open(sys.argv[1])):
    w.writerow(["blue, " + row[0]] + row)
print("9,too,few")' "$T/region.csv" >"$T/region-extra.csv"
load "$T/h5.log" --entities "$ENTITIES" --entity region --table region_h5 --header --rejects "$T/h5.rej" \
  "$T/region-extra.csv"
assert_eq "$RC" 3 "an extra header column: exit (the short record rejected)"
assert_eq "$(fingerprint "$DB" region_h5)" "$want" "an extra header column: ignored, the rest loaded"
assert_eq "$(rej "$T/h5.rej" 7)" "region-extra.csv | expected 4 columns, found 3 | 9,too,few" \
  "an extra header column: a record not as wide as the header"
load "$T/h6.log" --entities "$ENTITIES" --entity region --table region_h6 --header --strict "$T/region-extra.csv"
assert_eq "$RC" 1 "--strict, a header naming an unknown column: exit"
assert_contains "$(cat "$T/h6.log")" "region-extra.csv:1: header column 1 'r_colour' is not a field of entity Region" \
  "--strict, an unknown header column: message"
assert_eq "$(sql "SELECT count(*) FROM region_h6")" 0 "--strict, an unknown header column: nothing loaded"

# --into an existing table without YAML: a CSV with a header, columns by name.
sql "CREATE TABLE hand (id int PRIMARY KEY, label text, amount numeric(10,2), at timestamptz)"
printf 'amount,id,label\n1.50,1,"a, b"\n,2,\n' >"$T/hand.csv"
load "$T/into.log" --into hand "$T/hand.csv"
assert_eq "$RC" 0 "--into with a CSV header: exit"
assert_eq "$(sql "SELECT string_agg(id || '|' || coalesce(label, 'NULL') || '|' || coalesce(amount::text, 'NULL'), ';' ORDER BY id) FROM hand")" \
  '1|a, b|1.50;2|NULL|NULL' "--into with a CSV header: rows"

# --- 3. Quoted fields with commas, quotes and line breaks across chunks ------
mkdir -p "$T/entities"
cat >"$T/entities/note.yaml" <<'EOF'
entity:
  name: Note
  fields:
    - { name: id, type: BigInt, nullable: false }
    - { name: title, type: String, nullable: false }
    - { name: body, type: String, nullable: true }
    - { name: amount, type: Decimal, args: [12, 2], nullable: true }
    - { name: day, type: Date, nullable: true }
  persistence:
    database: { conformant_table: notes, unicity_fields: [id] }
EOF
python3 - "$T/notes.csv" <<'EOF'
import csv, random, sys
random.seed(7)
pieces = ["plain", "comma, here", 'a "quoted" word', "line\nbreak", "crlf\r\nbreak", "", "trailing\n", ",", '"', "x" * 200]
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "title", "body", "amount", "day"])
    for i in range(1, 60001):
        body = "".join(random.choice(pieces) for _ in range(random.randint(0, 4)))
        if i == 500:  # 3 MB of short lines in one field: the first 2 MB chunk surely ends inside it
            body = ("y" * 98 + "\r\n") * 30000
        w.writerow([i, random.choice(pieces) or "t", body if i % 7 else None, f"{i * 1.25:.2f}" if i % 5 else "", "2024-02-%02d" % (i % 28 + 1)])
EOF
assert_cmp "$(stat -c %s "$T/notes.csv")" -gt $((4 << 20)) "notes.csv is larger than two 2 MB chunks"
sql "CREATE TABLE notes_pg (id bigint PRIMARY KEY, title text NOT NULL, body text, amount numeric(12,2), day date)"
psql -X -q -v ON_ERROR_STOP=1 "$DB" -c "\\copy notes_pg FROM '$T/notes.csv' (FORMAT csv, HEADER true)"
want=$(fingerprint "$DB" notes_pg)
load "$T/n1.log" --entities "$T/entities" --entity Note --table notes1 --jobs 2 --parsers 2 "$T/notes.csv"
assert_eq "$RC" 0 "notes.csv: exit"
assert_eq "$(fingerprint "$DB" notes1)" "$want" "notes.csv (quoted line breaks across chunks) = PostgreSQL's COPY csv"
gzip -c "$T/notes.csv" >"$T/notes-copy.csv.gz"
load "$T/n2.log" --entities "$T/entities" --entity Note --table notes2 "$T/notes-copy.csv.gz"
assert_eq "$(fingerprint "$DB" notes2)" "$want" "notes.csv.gz = PostgreSQL's COPY csv"
set +e
"$NOMNOM_BIN" load --entities "$T/entities" --entity Note --table notes3 --format csv - <"$T/notes.csv" >"$T/n3.log" 2>&1
RC=$?
set -e
assert_eq "$RC" 0 "notes.csv on stdin with --format csv: exit"
assert_eq "$(fingerprint "$DB" notes3)" "$want" "stdin --format csv = PostgreSQL's COPY csv"
{ cat "$T/notes.csv"; echo '60001,t,"b'; echo 'ody",12x,2024-01-01'; } >"$T/notes-bad.csv"
load "$T/n4.log" --entities "$T/entities" --entity Note --table notes4 --rejects "$T/n4.rej" "$T/notes-bad.csv"
assert_eq "$RC" 3 "notes.csv + a bad record: exit"
assert_eq "$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["line"])' "$T/n4.rej")" \
  "$(($(wc -l <"$T/notes.csv") + 1))" "the bad record after 60,000 multi-line records: its physical line"
assert_eq "$(fingerprint "$DB" notes4)" "$want" "notes.csv + a bad record: all good rows"

# --- 4. Bad records: rejected at their physical lines, good rows loaded -------
printf '%s\n' \
  'id,title,body,amount,day' \
  '1,one,"two' \
  'lines",1.50,2024-01-01' \
  '2,two,"wrong count",1.00' \
  '3,three,"multi' \
  'line, with ""quotes""",2.00,2024-01-03' \
  '4,four,x,2.00,2024-02-30' \
  '5,five,x,12x,2024-01-05' \
  '6,,x,1.00,2024-01-06' \
  '7,seven,bad"quote,1.00,2024-01-07' \
  '8,eight,"after' \
  'quote"z,1.00,2024-01-08' \
  '9,nine,,,' >"$T/bad.csv"
load "$T/b1.log" --entities "$T/entities" --entity Note --table notes_bad --rejects "$T/bad.rej" "$T/bad.csv"
assert_eq "$RC" 3 "bad.csv: exit 3 (rows rejected)"
assert_eq "$(rej_lines "$T/bad.rej" | tr ' ' '\n' | sort -n | tr '\n' ' ')" "4 7 8 9 10 11 " "bad.csv: rejected physical lines"
assert_contains "$(rej "$T/bad.rej" 4)" "bad.csv | expected 5 columns, found 4 | 2,two,\"wrong count\",1.00" "line 4: field count"
assert_contains "$(rej "$T/bad.rej" 7)" "column 5 (field 'day')" "line 7: bad date, column"
assert_contains "$(rej "$T/bad.rej" 7)" "2024-02-30" "line 7: bad date, value"
assert_contains "$(rej "$T/bad.rej" 8)" "column 4 (field 'amount')" "line 8: bad number"
assert_contains "$(rej "$T/bad.rej" 9)" "NOT NULL" "line 9: empty NOT NULL title"
assert_contains "$(rej "$T/bad.rej" 10)" "quote inside an unquoted field" "line 10: bad quoting"
assert_contains "$(rej "$T/bad.rej" 11)" "line 12, column 3: text after the closing quote" "line 11: names the line of the error"
assert_eq "$(sql "SELECT string_agg(id || '=' || coalesce(body, 'NULL'), ';' ORDER BY id) FROM notes_bad")" \
  $'1=two\nlines;3=multi\nline, with "quotes";9=NULL' "bad.csv: exactly the good rows"

printf '%s\n' \
  '1|one|a|1.50|2024-01-01|' \
  '2|two|b|1.00|' \
  '3|three|c|2.00|2024-13-01|' \
  '4|four|d|abc|2024-01-04|' \
  '5|five|e|1.00|2024-01-05' \
  '6||x|1.00|2024-01-06|' \
  '7|seven|"q"|3.25||' >"$T/bad.tbl"
load "$T/b2.log" --entities "$T/entities" --entity Note --table notes_badtbl --rejects "$T/badtbl.rej" "$T/bad.tbl"
assert_eq "$RC" 3 "bad.tbl: exit 3"
assert_eq "$(rej_lines "$T/badtbl.rej" | tr ' ' '\n' | sort -n | tr '\n' ' ')" "2 3 4 5 6 " "bad.tbl: rejected lines"
assert_contains "$(rej "$T/badtbl.rej" 2)" "expected 5 columns, found 4" "bad.tbl line 2: field count"
assert_contains "$(rej "$T/badtbl.rej" 3)" "field 'day'" "bad.tbl line 3: bad date"
assert_contains "$(rej "$T/badtbl.rej" 4)" "field 'amount'" "bad.tbl line 4: bad number"
assert_contains "$(rej "$T/badtbl.rej" 5)" "must end in '|'" "bad.tbl line 5: no trailing |"
assert_eq "$(sql "SELECT string_agg(id || '=' || body || '=' || coalesce(day::text, 'NULL'), ';' ORDER BY id) FROM notes_badtbl")" \
  '1=a=2024-01-01;7="q"=NULL' "bad.tbl: exactly the good rows (quotes are data in .tbl)"

# --- 5. Conflict modes on CSV (and the same rows as NDJSON: the same result) ---
printf 'id,title\n1,a1\n2,a2\n3,a3\n' >"$T/m1.csv"
printf 'id,title\n2,b2\n4,b4\n4,c4\n' >"$T/m2.csv"
for m in m1 m2; do
  python3 -c '
import csv, json, sys
for r in csv.DictReader(open(sys.argv[1])):
    print(json.dumps({"id": int(r["id"]), "title": r["title"]}))' "$T/$m.csv" >"$T/$m.ndjson"
done
rows() { sql "SELECT string_agg(id || '=' || title, ',' ORDER BY id) FROM $1"; }
for mode in error nothing update; do
  for f in csv ndjson; do
    load "$T/m.log" --entities "$T/entities" --entity Note --table "mj_${mode}_$f" --on-conflict $mode "$T/m1.$f"
    load "$T/m.log" --entities "$T/entities" --entity Note --table "mj_${mode}_$f" --on-conflict $mode --jobs 2 "$T/m2.$f"
    eval "rc_$f=$RC"
  done
  # shellcheck disable=SC2154  # rc_csv and rc_ndjson are set by eval
  assert_eq "$rc_csv" "$rc_ndjson" "mode $mode: CSV exit = NDJSON exit"
  assert_eq "$(rows "mj_${mode}_csv")" "$(rows "mj_${mode}_ndjson")" "mode $mode: CSV rows = NDJSON rows"
done
load "$T/m.log" --entities "$T/entities" --entity Note --table m_error --on-conflict error "$T/m1.csv"
load "$T/m.log" --entities "$T/entities" --entity Note --table m_error --on-conflict error --rejects "$T/m_error.rej" "$T/m2.csv"
assert_eq "$RC" 3 "mode error: duplicate keys are rejected rows"
assert_eq "$(rej_lines "$T/m_error.rej" | tr ' ' '\n' | sort -n | tr '\n' ' ')" "2 4 " "mode error: the duplicates' lines"
assert_eq "$(rows m_error)" "1=a1,2=a2,3=a3,4=b4" "mode error: rows"
load "$T/m.log" --entities "$T/entities" --entity Note --table m_nothing "$T/m1.csv"
load "$T/m.log" --entities "$T/entities" --entity Note --table m_nothing "$T/m2.csv"
assert_eq "$RC" 0 "mode nothing (the default): exit"
assert_eq "$(rows m_nothing)" "1=a1,2=a2,3=a3,4=b4" "mode nothing: existing keys kept, the first new one wins"
load "$T/m.log" --entities "$T/entities" --entity Note --table m_update --on-conflict update "$T/m1.csv"
load "$T/m.log" --entities "$T/entities" --entity Note --table m_update --on-conflict update --jobs 2 "$T/m2.csv"
assert_eq "$RC" 0 "mode update: exit"
assert_eq "$(rows m_update)" "1=a1,2=b2,3=a3,4=c4" "mode update: the last occurrence wins"
cat "$T/m1.csv" "$T/m2.csv" >"$T/m12.csv"  # the second header is a data row now: rejected
load "$T/m.log" --entities "$T/entities" --entity Note --table m_fresh --fresh --rejects "$T/m_fresh.rej" "$T/m12.csv"
assert_eq "$RC" 3 "--fresh with duplicate keys: exit 3"
assert_eq "$(rej_lines "$T/m_fresh.rej" | tr ' ' '\n' | sort -n | tr '\n' ' ')" "5 6 8 " "--fresh: the later duplicates' and the header's lines"
assert_contains "$(rej "$T/m_fresh.rej" 8)" "m12.csv:7, which was kept" "--fresh: names the kept row"
assert_contains "$(rej "$T/m_fresh.rej" 8)" "| 4,c4" "--fresh: raw record"
assert_eq "$(rows m_fresh)" "1=a1,2=a2,3=a3,4=b4" "--fresh: the first occurrences"
assert_eq "$(sql "SELECT count(*) FROM pg_constraint WHERE conrelid = 'm_fresh'::regclass AND contype = 'p'")" 1 \
  "--fresh: the key rebuilt"

# --- 6. Refused -------------------------------------------------------------------
load "$T/r1.log" --entities "$E2E_ROOT/data/tpch/entities-nested" --entity Order "$T/m1.csv"
assert_eq "$RC" 2 "a nested entity with CSV: exit"
assert_contains "$(cat "$T/r1.log")" "only NDJSON input can carry" "a nested entity with CSV: why"
load "$T/r2.log" --entities "$T/entities" --entity Note --via-nats --nats nats://127.0.0.1:1 "$T/m1.csv"
assert_eq "$RC" 2 "--via-nats with CSV: exit"
assert_contains "$(cat "$T/r2.log")" "--via-nats publishes JSON rows" "--via-nats with CSV: why"
load "$T/r3.log" --entities "$T/entities" --entity Note "$T/m1.csv" "$T/region.ndjson"
assert_eq "$RC" 2 "mixed formats: exit"
assert_contains "$(cat "$T/r3.log")" "region.ndjson is ndjson" "mixed formats: why"
load "$T/r4.log" --entities "$ENTITIES" --entity region --header "$T/region.ndjson"
assert_eq "$RC" 2 "--header with NDJSON: exit"
