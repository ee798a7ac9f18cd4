#!/usr/bin/env bash
# Renders deploy/k8s overlays dev and prod with `kubectl kustomize` and checks
# their structure (tests/e2e/k8s_render.py). Needs kubectl (Debian package
# kubernetes-client) and python3-yaml; no cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v kubectl >/dev/null || { echo "kubectl missing (apt-get install kubernetes-client)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
kubectl kustomize "$root/deploy/k8s/overlays/dev" >"$tmp/dev.yaml"
kubectl kustomize "$root/deploy/k8s/overlays/prod" >"$tmp/prod.yaml"
py=python3
python3 -c 'import yaml' 2>/dev/null || py=/usr/bin/python3  # Debian's python3-yaml
"$py" "$root/tests/e2e/k8s_render.py" "$tmp/dev.yaml" "$tmp/prod.yaml" "$root/deploy/helm/nats-values.yaml" \
  "$root/deploy/prometheus/nomnom-rules.yaml"
# kustomize cannot read files outside the base: the entities are copied there
# and must stay identical to data/tpch/entities.
for f in "$root"/data/tpch/entities/*.yaml; do
  cmp -s "$f" "$root/deploy/k8s/base/$(basename "$f")" || { echo "FAIL: deploy/k8s/base/$(basename "$f") differs from data/tpch/entities"; exit 1; }
done
