#!/usr/bin/env bash
# e2e: nomnomd's HTTP error paths: 400 (invalid JSON, missing field, no valid
# line), 401 (bearer token on /ingest/* only), 404 (unknown entity, route),
# 405, 413 (--max-body-mb), 415 (content type), 503 while nats-server is down
# (and recovery once it is back on the same port), and 503 from /ready and
# /ingest during the SIGTERM drain, then exit 0.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
token=s3cret-token
e2e_start_daemon --workers 1 --token "$token" --max-body-mb 1
auth=(-H "Authorization: Bearer $token")
STATUS_CURL_ARGS=("${auth[@]}")

# --- 401 --------------------------------------------------------------------------
post_json /ingest/message "$(order_json a-1)"
assert_status 401 "POST /ingest/message without a token"
assert_contains "$(curl -sS -D - -o /dev/null -H 'Content-Type: application/json' --data-binary '{}' \
  "$DAEMON_URL/ingest/message")" "WWW-Authenticate: Bearer" "401 headers"
post_json /ingest/message "$(order_json a-1)" -H 'Authorization: Bearer wrong'
assert_status 401 "POST /ingest/message with a wrong token"
post_json /ingest/message "$(order_json a-1)" -H "Authorization: Basic $token"
assert_status 401 "POST /ingest/message with the token as Basic"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "$(order_json a-1)"
assert_status 401 "POST /ingest/batch without a token"
http GET /ingest/status/6f1c2a9e-1b7d-4c1e-9b8e-2f0d3c4b5a69
assert_status 401 "GET /ingest/status without a token"
for path in /health /ready /metrics /stats /api-docs/openapi.json; do
  http GET "$path"
  assert_status 200 "GET $path without a token"
done
post_json /ingest/message "$(order_json a-1)" "${auth[@]}"
assert_status 202 "POST /ingest/message with the token"
wait_status "$(json_get message_id)" processed 20

# --- 400 --------------------------------------------------------------------------
post_json /ingest/message '{"order_key": "x", ' "${auth[@]}"
assert_status 400 "invalid JSON"
assert_contains "$(json_get error)" "JSON" "error for invalid JSON"
post_json /ingest/message '{"order_key":"x","order_status":"O","total_price":1,"order_date":"2024-01-01"}' "${auth[@]}"
assert_status 400 "missing required field"
assert_contains "$(json_get error)" customer_key "error for a missing field"
post_json /ingest/message '[1,2]' "${auth[@]}"
assert_status 400 "not an object"
printf '{bad\n\n{"order_key":"y"}\n' >"$E2E_TMP/bad.ndjson"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/bad.ndjson" "${auth[@]}"
assert_status 400 "batch with no valid line"
assert_eq "$(json_get accepted),$(json_get rejected)" 0,2 "accepted,rejected of the invalid batch"
assert_eq "$(json_get errors.0.line),$(json_get errors.1.line)" 1,3 "errors[].line of the invalid batch"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary $'\n\n' "${auth[@]}"
assert_status 400 "empty batch"

# --- 404, 405 ----------------------------------------------------------------------
post_json '/ingest/message?entity=NoSuchThing' "$(order_json a-2)" "${auth[@]}"
assert_status 404 "unknown ?entity="
assert_contains "$(json_get error)" NoSuchThing "error for an unknown entity"
http POST '/ingest/batch?entity=NoSuchThing' -H 'Content-Type: application/x-ndjson' --data-binary "$(order_json a-2)" "${auth[@]}"
assert_status 404 "unknown ?entity= on a batch"
http GET /no/such/route
assert_status 404 "unknown route"
http GET /ingest/message "${auth[@]}"
assert_status 405 "GET /ingest/message"

# --- 413 ---------------------------------------------------------------------------
python3 -c 'import sys; sys.stdout.write("{\"comment\":\"" + "x" * (1100 * 1024) + "\"}\n")' >"$E2E_TMP/big.json"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/big.json" "${auth[@]}"
assert_status 413 "batch body of 1.1 MB with --max-body-mb 1"
assert_eq "$(json_get limit)" 1048576 "limit in the 413 body"
http POST /ingest/message -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/big.json" "${auth[@]}"
assert_status 413 "message body of 1.1 MB"

# --- 415 ---------------------------------------------------------------------------
http POST /ingest/message -H 'Content-Type: text/html' --data-binary "$(order_json a-3)" "${auth[@]}"
assert_status 415 "message as text/html"
http POST /ingest/batch -H 'Content-Type: text/html' --data-binary "$(order_json a-3)" "${auth[@]}"
assert_status 415 "batch as text/html"
http POST /ingest/message -H 'Content-Type: application/x-ndjson' --data-binary "$(order_json a-3)" "${auth[@]}"
assert_status 415 "message as application/x-ndjson"
http POST /ingest/batch -H 'Content-Type: application/json; charset=utf-8' --data-binary "$(order_json a-3)" "${auth[@]}"
assert_status 202 "batch as application/json; charset=utf-8"
wait_status "$(json_get batch_id)" processed 20
assert_eq "$(sql "SELECT string_agg(order_key, ',' ORDER BY order_key) FROM orders")" "a-1,a-3" \
  "rows in orders (only the accepted ones)"

# --- 503 while nats-server is down, and back ---------------------------------------
e2e_stop_nats
e2e_wait_http "$DAEMON_URL/ready" 503 10 || e2e_fail "/ready did not turn 503 with nats-server stopped"
http GET /ready
assert_status 503 "GET /ready with nats-server stopped"
assert_contains "$(json_get reason)" NATS "reason of /ready"
http GET /health
assert_status 503 "GET /health with nats-server stopped"
assert_eq "$(json_get nats),$(json_get database)" unreachable,connected "/health nats,database"
post_json /ingest/message "$(order_json n-1)" "${auth[@]}"
assert_status 503 "POST /ingest/message with nats-server stopped"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "$(order_json n-2)" "${auth[@]}"
assert_status 503 "POST /ingest/batch with nats-server stopped"
e2e_start_nats_again
e2e_wait_http "$DAEMON_URL/ready" 200 20 || e2e_fail "/ready did not turn 200 after nats-server came back"
e2e_pass "/ready is 200 again after nats-server came back"
http GET /health
assert_status 200 "GET /health after nats-server came back"
post_json /ingest/message "$(order_json n-3)" "${auth[@]}"
assert_status 202 "POST /ingest/message after nats-server came back"
wait_status "$(json_get message_id)" processed 30
assert_eq "$(sql "SELECT string_agg(order_key, ',' ORDER BY order_key) FROM orders")" "a-1,a-3,n-3" \
  "rows in orders after the outage"

# --- SIGTERM drain -------------------------------------------------------------------
# Connections stay open while the daemon drains (it stops accepting new ones),
# so two requests whose headers are completed only after SIGTERM observe it.
python3 - "$DAEMON_PORT" "$DAEMON_PID" "$token" >"$E2E_TMP/drain.json" <<'EOF'
import json, os, signal, socket, sys, time
port, pid, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def start(head):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(head.encode())
    return s
def finish(s, rest):
    s.sendall(rest.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return {"status": int(head.split()[1]), "body": json.loads(body)}
body = '{"order_key":"d-1","customer_key":"c","order_status":"O","total_price":1,"order_date":"2024-01-01"}'
ready = start("GET /ready HTTP/1.1\r\nHost: t\r\n")
ingest = start("POST /ingest/message HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n" % (token, len(body)))
time.sleep(0.5)
os.kill(pid, signal.SIGTERM)
time.sleep(0.5)
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    refused = False
except OSError:
    refused = True
out = {"ready": finish(ready, "\r\n"), "ingest": finish(ingest, "\r\n" + body), "new_connection_refused": refused}
print(json.dumps(out))
EOF
drain=$(cat "$E2E_TMP/drain.json")
assert_eq "$(json_get ready.status "$drain")" 503 "GET /ready during the drain"
assert_eq "$(json_get ready.body.reason "$drain")" draining "reason of /ready during the drain"
assert_eq "$(json_get ingest.status "$drain")" 503 "POST /ingest/message during the drain"
assert_eq "$(json_get new_connection_refused "$drain")" true "new connection refused during the drain"
e2e_wait_pid "$DAEMON_PID" 30 "nomnomd after SIGTERM"
assert_eq "$WAIT_RC" 0 "exit code of nomnomd after SIGTERM"
assert_contains "$(cat "$DAEMON_LOG")" "stopped" "nomnomd log"
assert_eq "$(sql "SELECT count(*) FROM orders WHERE order_key = 'd-1'")" 0 "row posted during the drain"
