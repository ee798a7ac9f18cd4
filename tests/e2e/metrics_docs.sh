#!/usr/bin/env bash
# e2e: GET /metrics is valid Prometheus text (checked by a small parser) with
# the request, publish-ack and worker-commit histograms filled in; GET
# /api-docs/openapi.json lists the API; /swagger-ui/ serves the UI; every metric
# the shipped Grafana dashboard and alert rules name exists, and the rules pass
# promtool's checks and unit tests.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
e2e_start_daemon --workers 1

# Some traffic, so every histogram has observations.
post_json /ingest/message "$(order_json p-1)"
assert_status 202 "POST /ingest/message"
mid=$(json_get message_id)
for i in 1 2 3; do order_json "p-b$i"; echo; done >"$E2E_TMP/batch.ndjson"
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "@$E2E_TMP/batch.ndjson"
assert_status 202 "POST /ingest/batch"
bid=$(json_get batch_id)
wait_status "$mid" processed 20
wait_status "$bid" processed 20
http GET /no/such/route
assert_status 404 "an unmatched route (counted too)"

# --- /metrics ------------------------------------------------------------------------
curl -sS -D "$E2E_TMP/metrics.head" -o "$E2E_TMP/metrics.txt" "$DAEMON_URL/metrics" || e2e_fail "GET /metrics failed"
assert_contains "$(cat "$E2E_TMP/metrics.head")" "Content-Type: text/plain; version=0.0.4" "/metrics content type"
report=$(python3 "$E2E_DIR/prometheus_check.py" "$E2E_TMP/metrics.txt")
assert_eq "$(json_get errors "$report")" "[]" "Prometheus format errors in /metrics"
for h in nomnom_http_request_duration_seconds nomnom_jetstream_publish_ack_seconds nomnom_worker_commit_seconds; do
  assert_eq "$(json_get "types.$h" "$report")" histogram "# TYPE of $h"
  assert_cmp "$(json_get "counts.$h" "$report")" -gt 0 "observations in $h"
done
assert_cmp "$(json_get counts.nomnom_jetstream_publish_ack_seconds "$report")" -eq 2 \
  "publish acks observed (one message chunk, one batch chunk)"
for c in nomnom_http_requests_total nomnom_api_rows_accepted_total nomnom_worker_rows_committed_total; do
  assert_eq "$(json_get "types.$c" "$report")" counter "# TYPE of $c"
done
metric() { awk -v n="$1" '$1 == n { print $2 }' "$E2E_TMP/metrics.txt"; }
assert_eq "$(metric nomnom_api_rows_accepted_total)" 4 "nomnom_api_rows_accepted_total"
assert_eq "$(metric nomnom_worker_rows_committed_total)" 4 "nomnom_worker_rows_committed_total"
assert_eq "$(metric nomnom_ready)" 1 "nomnom_ready"
metrics=$(cat "$E2E_TMP/metrics.txt")
assert_contains "$metrics" 'nomnom_http_requests_total{method="POST",route="/ingest/batch",status="202"} 1' "/metrics batch requests"
assert_contains "$metrics" 'route="unmatched"' "/metrics unmatched route label"

# --- the monitoring users import (deploy/grafana, deploy/prometheus) ------------------------
# Every metric the Grafana dashboard and the alert rules name is in /metrics.
names=$(python3 "$E2E_DIR/monitoring_names.py" "$E2E_TMP/metrics.txt" "$E2E_ROOT/deploy/grafana/nomnom.json" \
  "$E2E_ROOT/deploy/prometheus/nomnom-rules.yaml")
assert_cmp "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["named"]))' "$names")" -ge 15 \
  "metrics named by the dashboard and the rules"
assert_eq "$(json_get missing "$names")" "[]" "metrics the dashboard or the rules name but /metrics lacks"
# The checker itself finds a name /metrics lacks.
printf '{"panels":[{"targets":[{"expr":"rate(nomnom_no_such_total[1m])"}]}]}' >"$E2E_TMP/fake.json"
assert_eq "$(json_get missing "$(python3 "$E2E_DIR/monitoring_names.py" "$E2E_TMP/metrics.txt" "$E2E_TMP/fake.json")")" \
  '["nomnom_no_such_total"]' "monitoring_names.py self-check"
# The rules load, and their unit tests (series that fire and do not fire each alert) pass.
if command -v promtool >/dev/null; then
  out=$(promtool check rules "$E2E_ROOT/deploy/prometheus/nomnom-rules.yaml" 2>&1) || e2e_fail "promtool check rules: $out"
  e2e_pass "promtool check rules"
  out=$(cd "$E2E_ROOT/deploy/prometheus" && promtool test rules nomnom-rules.test.yaml 2>&1) ||
    e2e_fail "promtool test rules: $out"
  e2e_pass "promtool test rules"
else
  e2e_fail "promtool missing (scripts/deps.sh installs Debian's prometheus package)"
fi

# --- every API path the docs name is answered (not 404) ----------------------------------
doc_paths=$(cat "$E2E_ROOT/README.md" "$E2E_ROOT"/docs/*.md "$E2E_ROOT/deploy/README.md" 2>/dev/null |
  grep -oE '`(GET |POST )?/(ingest|health|live|ready|stats|metrics|dashboard|swagger-ui|api-docs)[^` ]*' |
  sed -E 's/^`(GET |POST )?//; s/\?.*//; s/[.,:;)]+$//' | grep -v '\*' | sort -u)
assert_cmp "$(wc -w <<<"$doc_paths")" -ge 8 "API paths named in README.md and docs/"
for p in $doc_paths; do
  p=${p//\{id\}/$mid}
  p=${p//<id>/$mid}
  case "$p" in
    /ingest/message | /ingest/batch) code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{}' "$DAEMON_URL$p") ;;
    /dashboard/events) code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$DAEMON_URL$p" || true) ;;
    *) code=$(curl -sS -o /dev/null -w '%{http_code}' "$DAEMON_URL$p") ;;
  esac
  assert_ne "$code" 404 "status of $p, named in the docs"
done

# The parser itself must catch broken input (else the checks above prove nothing).
printf '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="2"} 3\nh_sum 1\nh_count 3\nx 1\n' >"$E2E_TMP/bad.txt"
bad=$(python3 "$E2E_DIR/prometheus_check.py" "$E2E_TMP/bad.txt")
assert_contains "$(json_get errors "$bad")" "not cumulative" "parser self-check (non-cumulative buckets)"
assert_contains "$(json_get errors "$bad")" "not +Inf" "parser self-check (no +Inf bucket)"
assert_contains "$(json_get errors "$bad")" "x has no # TYPE" "parser self-check (missing TYPE)"

# --- /api-docs/openapi.json ------------------------------------------------------------
http GET /api-docs/openapi.json
assert_status 200 "GET /api-docs/openapi.json"
paths=$(python3 -c '
import json, sys
doc = json.loads(sys.argv[1])
assert str(doc.get("openapi", "")).startswith("3"), "no openapi 3.x version field"
assert doc["paths"], "no paths"
for p, ops in doc["paths"].items():
    assert any(m in ops for m in ("get", "post", "put", "delete")), p + " has no operation"
print(" ".join(sorted(doc["paths"])))
' "$HTTP_BODY" 2>&1) || e2e_fail "openapi.json: $paths"
for p in /ingest/message /ingest/batch '/ingest/status/{id}' /health /ready /stats /metrics; do
  assert_contains " $paths " " $p " "openapi.json paths"
done

# --- Swagger UI ----------------------------------------------------------------------------
http GET /swagger-ui/
assert_status 200 "GET /swagger-ui/"
assert_contains "$HTTP_BODY" "<html" "/swagger-ui/ body"
assert_contains "$HTTP_BODY" "swagger-ui" "/swagger-ui/ body"
assert_eq "$(curl -sS -o /dev/null -w '%{content_type}' "$DAEMON_URL/swagger-ui/")" "text/html; charset=utf-8" \
  "/swagger-ui/ content type"
assert_eq "$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$DAEMON_URL/swagger-ui")" \
  "303 $DAEMON_URL/swagger-ui/" "GET /swagger-ui redirects"
http GET /swagger-ui/swagger-ui-bundle.js
assert_status 200 "GET /swagger-ui/swagger-ui-bundle.js"
