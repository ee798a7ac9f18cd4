#!/usr/bin/env bash
# e2e: the live dashboard. Headless Chromium (Debian's chromium, driven over
# the DevTools protocol by dashboard_browser.py) watches /dashboard while rows
# of three entities (one nested) are posted, some rejected by the API and some dead-lettered
# by a CHECK on orders: once ingest stopped, the page's numbers equal /stats
# and the tables' row counts (per table for the nested one) within two refreshes, a dead letter shows with its
# id, the entity filter works, the page fits 390 px, has a dark mode and its
# script logs no console errors; screenshots are taken (DASHBOARD_SCREENSHOTS=
# DIR copies them there, e.g. docs/). Then, with curl: the event stream's
# viewer limit (503 beyond), the token rules (401, cookie, no token in URLs),
# and with a token the page asks for it and runs on the session cookie.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v chromium >/dev/null || e2e_fail "chromium is not installed (scripts/deps.sh installs it)"
PY=""
for p in /usr/bin/python3 python3; do
  if "$p" -c 'import websocket' 2>/dev/null; then PY=$p && break; fi
done
[ -n "$PY" ] || e2e_fail "no python3 with the websocket module (scripts/deps.sh installs python3-websocket)"

e2e_start_services
# Two entities: Order, and a small Note.
mkdir -p "$E2E_TMP/entities"
cp "$E2E_ROOT/data/tpch/entities/order.yaml" "$E2E_TMP/entities/"
cat >"$E2E_TMP/entities/note.yaml" <<'YAML'
entity:
  name: Note
  source_type: root
  fields:
    - {name: note_id, type: String, args: [255], nullable: false}
    - {name: body, type: String, nullable: true}
  persistence:
    database:
      conformant_table: notes
      conformant_id_column: note_id
      unicity_fields: [note_id]
YAML
# A nested entity: each Invoice's `lines` become InvoiceLine rows (the page
# shows committed rows per table).
cat >"$E2E_TMP/entities/invoice.yaml" <<'YAML'
entity:
  name: Invoice
  source_type: root
  fields:
    - {name: invoice_id, type: String, args: [64], nullable: false}
    - {name: lines, type: "List[Object]", nullable: false}
  persistence:
    database: {conformant_table: invoices, unicity_fields: [invoice_id]}
YAML
cat >"$E2E_TMP/entities/invoice_line.yaml" <<'YAML'
entity:
  name: InvoiceLine
  source_type: derived
  repeated_for: {entity: Invoice, field: lines, each_known_as: line}
  fields:
    - name: invoice_id
      type: String
      nullable: false
      computed_from: {transform: copy_field, sources: [{source: Invoice, field: invoice_id}]}
    - name: n
      type: Integer
      nullable: false
      computed_from: {transform: json_get_int, sources: [line], args: {field: n}}
    - name: amount
      type: Float
      nullable: false
      computed_from: {transform: json_get_float, sources: [line], args: {field: amount}}
  persistence:
    database: {conformant_table: invoice_lines, unicity_fields: [invoice_id, n]}
YAML
sql "CREATE TABLE orders (
    order_key VARCHAR(255) NOT NULL PRIMARY KEY, customer_key VARCHAR(255) NOT NULL,
    order_status VARCHAR(1) NOT NULL, total_price DOUBLE PRECISION NOT NULL, order_date VARCHAR(255) NOT NULL,
    order_priority VARCHAR(255), clerk VARCHAR(255), ship_priority INTEGER, comment TEXT,
    CONSTRAINT orders_price_check CHECK (total_price >= 0))"
e2e_start_daemon --workers 1 --entities "$E2E_TMP/entities" --entity Order --dashboard-viewers 3

start_chromium() {
  CDP_PORT=$(nn_free_port)
  chromium --headless=new --no-sandbox --disable-gpu --no-first-run --no-default-browser-check \
    --disable-extensions --disable-background-networking --disable-sync --mute-audio \
    --user-data-dir="$E2E_TMP/chrome-$CDP_PORT" --remote-debugging-address=127.0.0.1 \
    --remote-debugging-port="$CDP_PORT" --remote-allow-origins="*" about:blank \
    >"$E2E_TMP/chromium-$CDP_PORT.log" 2>&1 &
  CHROME_PID=$!
  E2E_PIDS+=("$CHROME_PID")
}

# browser MODE: runs the browser checks; each "PASS/FAIL what" line counts.
browser() {
  local out="$E2E_TMP/browser-$1.out" rc=0 line
  DATABASE_URL=$DATABASE_URL "$PY" "$E2E_DIR/dashboard_browser.py" "$CDP_PORT" "$DAEMON_URL" "$E2E_TMP" "$1" >"$out" 2>&1 || rc=$?
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) e2e_pass "browser: ${line#PASS }" ;;
      "FAIL "*) e2e_fail "browser: ${line#FAIL } (chromium log: $(tail -n 3 "$E2E_TMP/chromium-$CDP_PORT.log"))" ;;
      *) e2e_log "browser: $line" ;;
    esac
  done <"$out"
  [ "$rc" = 0 ] || e2e_fail "dashboard_browser.py $1 exited $rc"
}

start_chromium
browser data
for f in dashboard.png dashboard-phone.png dashboard-dark.png; do
  assert_cmp "$(stat -c %s "$E2E_TMP/$f")" -gt 10000 "size of the screenshot $f"
done
# A plain headless screenshot (no script driving the browser, taken at the
# load event): the page nomnomd serves already holds the numbers, so it is
# not an empty page waiting for its first event.
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking --disable-sync \
  --disable-extensions --user-data-dir="$E2E_TMP/chrome-plain" --window-size=1280,900 \
  --screenshot="$E2E_TMP/plain.png" "$DAEMON_URL/dashboard" >"$E2E_TMP/chromium-plain.log" 2>&1 ||
  e2e_fail "chromium --screenshot failed: $(tail -n 3 "$E2E_TMP/chromium-plain.log")"
shot=$(python3 "$E2E_DIR/png_colors.py" "$E2E_TMP/plain.png")
assert_cmp "$(json_get colours "$shot")" -gt 50 "colours in a plain chromium --screenshot of /dashboard"
assert_eq "$(python3 -c 'import sys; print(float(sys.argv[1]) > 0.03)' "$(json_get not_background "$shot")")" True \
  "share of that screenshot that is not background (> 3 %): $(json_get not_background "$shot")"
page=$(curl -sS "$DAEMON_URL/dashboard")
committed=$(json_get database.rows_committed "$(curl -sS "$DAEMON_URL/stats")")
assert_contains "$page" "id=\"total-committed\">$(python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$committed")<" \
  "GET /dashboard: the committed card holds the number"
assert_contains "$page" '<script type="application/json" id="snapshot">' "GET /dashboard: the snapshot data block"
# The same screenshot of a blank page has one colour (the check above can fail).
printf '<html><body style="background:#f7f7f8"></body></html>' >"$E2E_TMP/blank.html"
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking --disable-sync \
  --user-data-dir="$E2E_TMP/chrome-blank" --window-size=1280,900 --screenshot="$E2E_TMP/blank.png" \
  "file://$E2E_TMP/blank.html" >/dev/null 2>&1 || e2e_fail "chromium --screenshot of a blank page failed"
assert_cmp "$(json_get colours "$(python3 "$E2E_DIR/png_colors.py" "$E2E_TMP/blank.png")")" -le 2 \
  "colours in a screenshot of a blank page (png_colors.py self-check)"
if [ -n "${DASHBOARD_SCREENSHOTS:-}" ]; then
  cp "$E2E_TMP"/dashboard*.png "$DASHBOARD_SCREENSHOTS/"
  e2e_log "screenshots copied to $DASHBOARD_SCREENSHOTS"
fi

# --- the event stream: one snapshot a second, at most --dashboard-viewers ----------------
curl -sS -N -m 3 "$DAEMON_URL/dashboard/events" >"$E2E_TMP/sse.txt" 2>/dev/null || true
events=$(grep -c '^data: {' "$E2E_TMP/sse.txt" || true)
assert_cmp "$events" -ge 3 "events in 3 s (the current snapshot, then one a second)"
assert_cmp "$events" -le 5 "events in 3 s"
first=$(grep -m1 '^data: {' "$E2E_TMP/sse.txt")
assert_eq "$(json_get totals.committed "${first#data: }")" "$(json_get database.rows_committed "$(curl -sS "$DAEMON_URL/stats")")" \
  "committed rows in the event = /stats"
viewers=()
for i in 1 2 3; do
  curl -sS -N -m 20 "$DAEMON_URL/dashboard/events" >"$E2E_TMP/viewer-$i.txt" 2>/dev/null &
  viewers+=($!)
done
sleep 1.5
http GET /dashboard/events -m 3
assert_status 503 "a fourth viewer (--dashboard-viewers 3)"
assert_contains "$HTTP_BODY" "too many dashboard viewers" "its answer"
kill "${viewers[@]}" 2>/dev/null || true
wait "${viewers[@]}" 2>/dev/null || true
sleep 1.5  # the next snapshot notices the closed streams
curl -sS -N -m 2 -o "$E2E_TMP/again.txt" -w '%{http_code}' "$DAEMON_URL/dashboard/events" >"$E2E_TMP/again.code" 2>/dev/null || true
assert_eq "$(cat "$E2E_TMP/again.code")" 200 "a viewer once the others left"
http GET /dashboard/snapshot
assert_status 200 "GET /dashboard/snapshot"
assert_eq "$(json_get entities.0.name),$(json_get entities.1.name),$(json_get entities.2.name),$(json_get entities.3.name)" \
  Invoice,InvoiceLine,Note,Order "entities in the snapshot"
assert_eq "$(json_get entities.0.tables.0.table),$(json_get entities.0.tables.1.table)" invoices,invoice_lines \
  "a nested entity's tables in the snapshot"
assert_eq "$(json_get entities.0.tables.1.committed)" \
  "$(sql "SELECT count(*) FROM invoice_lines")" "the snapshot's invoice_lines rows = count(*)"
# --- worker heartbeats: the embedded workers and a separate `nomnom worker` ---------------
e2e_start_worker worker --threads 2 --entities "$E2E_TMP/entities"
worker=$WORKER_PID
host=$(hostname)
deadline=$((SECONDS + 10))
procs=""
while [ "$SECONDS" -lt "$deadline" ]; do
  http GET /dashboard/snapshot
  procs=$(json_get pipeline.processes)
  [[ "$procs" == *"@$host:$worker\""* ]] && break
  sleep 0.5
done
assert_contains "$procs" "\"process\": \"worker@$host:$worker\", \"workers\": 2" "heartbeat of the separate nomnom worker in the snapshot (role@host:pid)"
assert_contains "$procs" "\"process\": \"nomnomd@$host:$DAEMON_PID\", \"workers\": 1" "heartbeat of nomnomd's embedded worker (role@host:pid)"
kill -TERM "$worker"
e2e_wait_pid "$worker" 30 "nomnom worker after SIGTERM"
assert_eq "$WAIT_RC" 0 "exit code of nomnom worker"

# --- nomnom top ------------------------------------------------------------------------------
top_out=$("$NOMNOM_BIN" top --once "$DAEMON_URL") || e2e_fail "nomnom top --once failed"
printf '%s\n' "$top_out" >"$E2E_TMP/top-once.txt"
committed=$(json_get database.rows_committed "$(curl -sS "$DAEMON_URL/stats")")
total_line=$(grep '^TOTAL' <<<"$top_out")
assert_contains "$total_line" "$(python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$committed")" "nomnom top's TOTAL line ($total_line) has the committed rows"
assert_contains "$top_out" "LAST DEAD LETTERS" "nomnom top"
assert_contains "$(grep -A1 'LAST DEAD LETTERS' <<<"$top_out")" "line 151  rejected by PostgreSQL" "nomnom top's last dead letter"
timeout 2.5 "$NOMNOM_BIN" top --interval 1 "$DAEMON_URL" >"$E2E_TMP/top.txt" || true
assert_cmp "$(grep -c '^nomnom top' "$E2E_TMP/top.txt")" -ge 2 "nomnom top refreshes (snapshots in 2.5 s)"
e2e_stop_daemon
assert_eq "$DAEMON_RC" 0 "nomnomd exit code with the dashboard running"

# --- with a token ---------------------------------------------------------------------------
export NOMNOM_TOKEN="dash-$RANDOM-token"
printf '%s\n' "$NOMNOM_TOKEN" >"$E2E_TMP/token"
e2e_start_daemon --workers 1 --token-file "$E2E_TMP/token"
for path in /dashboard/snapshot /dashboard/events; do
  http GET "$path" -m 3
  assert_status 401 "GET $path without a token"
done
http GET /dashboard
assert_status 200 "GET /dashboard (the page holds no data)"
http GET /dashboard/snapshot -H "Authorization: Bearer $NOMNOM_TOKEN"
assert_status 200 "GET /dashboard/snapshot with the bearer token"
post_json /dashboard/session '{"token":"nope"}'
assert_status 401 "POST /dashboard/session with a wrong token"
curl -sS -D "$E2E_TMP/session.head" -o /dev/null -H 'Content-Type: application/json' \
  --data-binary "{\"token\":\"$NOMNOM_TOKEN\"}" "$DAEMON_URL/dashboard/session"
cookie=$(sed -n 's/^Set-Cookie: nomnom_dashboard=\([0-9a-f]*\);.*/\1/p' "$E2E_TMP/session.head" | tr -d '\r')
assert_match "$cookie" '^[0-9a-f]{64}$' "session cookie"
assert_contains "$(grep -i '^Set-Cookie' "$E2E_TMP/session.head")" "HttpOnly; SameSite=Strict" "cookie attributes"
http GET /dashboard/snapshot -H "Cookie: nomnom_dashboard=$cookie"
assert_status 200 "GET /dashboard/snapshot with the session cookie"
if [ "${cookie: -1}" = 0 ]; then made_up=${cookie%?}1; else made_up=${cookie%?}0; fi
http GET /dashboard/snapshot -H "Cookie: nomnom_dashboard=$made_up"
assert_status 401 "GET /dashboard/snapshot with a made-up session"
# The page's status links: /dashboard/status/{id} takes the session cookie
# (scoped to /dashboard), /ingest/status/{id} does not.
post_json /ingest/message "$(order_json st-1)" -H "Authorization: Bearer $NOMNOM_TOKEN"
assert_status 202 "POST /ingest/message with the token"
status_id=$(json_get message_id)
http GET "/dashboard/status/$status_id" -H "Cookie: nomnom_dashboard=$cookie"
assert_status 200 "GET /dashboard/status/{id} with the session cookie"
assert_eq "$(json_get id)" "$status_id" "the id /dashboard/status answers for"
http GET "/dashboard/status/$status_id" -H "Cookie: nomnom_dashboard=$made_up"
assert_status 401 "GET /dashboard/status/{id} with a made-up session"
http GET "/ingest/status/$status_id" -H "Cookie: nomnom_dashboard=$cookie"
assert_status 401 "GET /ingest/status/{id} with only the session cookie"
curl -sS -N -m 2 -H "Cookie: nomnom_dashboard=$cookie" "$DAEMON_URL/dashboard/events" >"$E2E_TMP/sse-cookie.txt" 2>/dev/null || true
assert_cmp "$(grep -c '^data: {' "$E2E_TMP/sse-cookie.txt" || true)" -ge 1 "events on the session cookie"
if "$NOMNOM_BIN" top --once "$DAEMON_URL" >/dev/null 2>"$E2E_TMP/top.err"; then e2e_fail "nomnom top without the token succeeded"; fi
assert_contains "$(cat "$E2E_TMP/top.err")" "HTTP 401" "nomnom top without the token"
assert_contains "$(NOMNOM_API_TOKEN=$NOMNOM_TOKEN "$NOMNOM_BIN" top --once "$DAEMON_URL")" "TOTAL" "nomnom top with NOMNOM_API_TOKEN"
browser token
# Guessing the token is bounded: after 5 wrong tokens in a minute from one
# address, 429 with Retry-After, even for the right token, until it passes.
for i in 1 2 3 4 5; do
  post_json /dashboard/session "{\"token\":\"guess-$i\"}"
  assert_status 401 "wrong token $i of 5"
done
post_json /dashboard/session '{"token":"guess-6"}'
assert_status 429 "a sixth wrong token within the minute"
curl -sS -D "$E2E_TMP/limited.head" -o /dev/null -H 'Content-Type: application/json' \
  --data-binary "{\"token\":\"$NOMNOM_TOKEN\"}" "$DAEMON_URL/dashboard/session"
assert_contains "$(head -n 1 "$E2E_TMP/limited.head")" " 429" "the right token while limited"
retry=$(sed -n 's/^Retry-After: \([0-9]*\).*/\1/Ip' "$E2E_TMP/limited.head" | tr -d '\r')
assert_cmp "${retry:-0}" -ge 1 "Retry-After while limited"
assert_cmp "${retry:-99}" -le 60 "Retry-After within the minute"
e2e_stop_daemon
assert_eq "$DAEMON_RC" 0 "nomnomd exit code"
if grep -q "$NOMNOM_TOKEN" "$DAEMON_LOG"; then e2e_fail "the token is in nomnomd's log"; fi
e2e_pass "the token is not in nomnomd's log"
