#!/usr/bin/env bash
# e2e (container): the dev overlay of deploy/k8s, rendered by kubectl
# kustomize, played by `podman kube play` with the image scripts/image.sh
# builds: the nomnomd (API only) and nomnom worker Deployments, their
# ConfigMap, Secret, probes and securityContext, against this test's own
# PostgreSQL and nats-server on loopback (the dev overlay's host networking).
# Data posted to the nomnomd pod is committed by the worker pod. What
# kube_play.py changes in the rendered YAML for podman, and why, is in its
# docstring.
# Usage: kube_play.sh [IMAGE]   (default localhost/nomnom:latest)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../../scripts/lib/podman.sh
source "$E2E_ROOT/scripts/lib/podman.sh"

image=${1:-${NOMNOM_IMAGE:-localhost/nomnom:latest}}
nn_podman_setup
podman image exists "$image" || e2e_fail "image $image does not exist (build it with scripts/image.sh)"
command -v kubectl >/dev/null || e2e_fail "kubectl missing (scripts/deps.sh installs it)"
py=python3
python3 -c 'import yaml' 2>/dev/null || py=/usr/bin/python3 # Debian's python3-yaml
nn_start_postgres || e2e_fail "PostgreSQL did not start"
nn_start_nats || e2e_fail "nats-server did not start"

kubectl kustomize "$E2E_ROOT/deploy/k8s/overlays/dev" >"$E2E_TMP/dev.yaml"
if [ "$image" != localhost/nomnom:latest ]; then sed -i "s|image: localhost/nomnom:latest|image: $image|" "$E2E_TMP/dev.yaml"; fi
token=$(sed -n 's/^ *api-token: *//p' "$E2E_TMP/dev.yaml" | head -n 1 | base64 -d)
assert_ne "$token" "" "API token in the dev overlay's Secret"

# play: rewrites the rendered overlay for two free ports, plays it and
# waits for both pods to be ready. Returns 2 when a port was taken before a pod
# bound it (then the caller tries other ports), fails the test otherwise.
play() {
  DAEMON_PORT=$(nn_free_port)
  DAEMON_URL="http://127.0.0.1:$DAEMON_PORT"
  mport=$(nn_free_port)
  [ "$mport" != "$DAEMON_PORT" ] || return 2
  secret=$("$py" "$E2E_DIR/kube_play.py" "$E2E_TMP/dev.yaml" "$E2E_TMP" "$DAEMON_PORT" "$mport")
  # A name clash with an earlier run that was killed: remove what it left.
  podman kube down "$E2E_TMP/play.yaml" >/dev/null 2>&1 || true
  podman secret rm "$secret" "$secret-files" >/dev/null 2>&1 || true
  podman secret create "$secret" "$E2E_TMP/secret-env.json" >/dev/null
  podman secret create "$secret-files" "$E2E_TMP/secret-files.json" >/dev/null
  podman kube play "$E2E_TMP/play.yaml" >"$E2E_TMP/kube-play.log" 2>&1 ||
    e2e_fail "podman kube play: $(grep -v systemd "$E2E_TMP/kube-play.log" | tail -n 5)"
  local c url
  for c in nomnomd-pod-0-nomnomd nomnom-worker-pod-0-worker; do
    url=$DAEMON_URL/ready
    [ "$c" = nomnomd-pod-0-nomnomd ] || url=http://127.0.0.1:$mport/ready
    e2e_wait_http "$url" 200 60 && continue
    podman logs "$c" >"$E2E_TMP/$c.log" 2>&1 || true
    grep -q 'Address already in use' "$E2E_TMP/$c.log" && return 2
    e2e_fail "$c did not become ready: $(tail -n 5 "$E2E_TMP/$c.log")"
  done
}
secret=""
kube_cleanup() {
  podman kube down "$E2E_TMP/play.yaml" >/dev/null 2>&1
  [ -z "$secret" ] || podman secret rm "$secret" "$secret-files" >/dev/null 2>&1
  podman volume rm -f tmp >/dev/null 2>&1
}
E2E_CLEANUP+=(kube_cleanup)
for attempt in 1 2 3; do
  rc=0; play || rc=$?
  [ "$rc" = 0 ] && break
  e2e_log "a port was taken before a pod bound it (attempt $attempt), trying others"
  podman kube down "$E2E_TMP/play.yaml" >/dev/null 2>&1 || true
  [ "$attempt" -lt 3 ] || e2e_fail "no free ports for the pods in 3 attempts"
done
e2e_pass "podman kube play of the dev overlay"
e2e_pass "nomnomd pod /ready is 200"
e2e_pass "worker pod /ready is 200"

for c in nomnomd-pod-0-nomnomd nomnom-worker-pod-0-worker; do
  assert_eq "$(podman exec "$c" id -u 2>/dev/null)" 10001 "uid in $c"
  rc=0; podman exec "$c" bash -c ': >/etc/nomnom/x' >/dev/null 2>&1 || rc=$?
  assert_ne "$rc" 0 "exit code of writing to the read-only root filesystem of $c"
done

post_json /ingest/message "$(order_json k-1)" -H "Authorization: Bearer wrong-$token"
assert_status 401 "POST with a wrong token (the token comes from the Secret)"
post_json /ingest/message "$(order_json k-1)" -H "Authorization: Bearer $token"
assert_status 202 "POST /ingest/message to the nomnomd pod"
batch=""
for i in $(seq 1 50); do batch+="$(order_json "kb-$i")"$'\n'; done
post_json /ingest/batch "$batch" -H "Authorization: Bearer $token" -H 'Content-Type: application/x-ndjson'
assert_status 202 "POST /ingest/batch (50 lines) to the nomnomd pod"
wait_until "SELECT count(*) FROM orders" 51 60 "rows committed by the worker pod"
assert_eq "$(sql "SELECT count(DISTINCT order_key) FROM orders WHERE order_key LIKE 'k%'")" 51 "distinct keys committed"

podman kube down "$E2E_TMP/play.yaml" >/dev/null 2>&1 || e2e_fail "podman kube down"
e2e_pass "podman kube down"
