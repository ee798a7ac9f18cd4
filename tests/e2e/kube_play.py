"""Rewrites the rendered dev overlay (kubectl kustomize deploy/k8s/overlays/dev)
for `podman kube play` against this test's PostgreSQL and nats-server.

What changes, and why (everything else, the securityContext, read-only root
filesystem, resources, probes, ConfigMap and args, is played as rendered):
- NATS_URL and the Secret's DATABASE_URL point at the test's servers, and the
  listen ports are free ports (host networking: the dev overlay's 8080/9090
  may be taken on this machine).
- containerPort entries are dropped and probe ports made numeric: podman
  refuses port mappings with host networking (Kubernetes does not).
- Services, the PodDisruptionBudget and the ScaledObject are dropped: podman
  plays Pods, Deployments, ConfigMaps and volumes only.
- The Secret becomes two podman secrets (podman 4.3.1, Debian bookworm, reads
  a secretKeyRef from a flat JSON map of base64 values but a secret volume from
  a Secret object with plain values, and its own `kind: Secret` handling is
  broken: containers/podman#17071). The volume refers to the second one, with
  `optional: false` spelled out (podman 4.3.1 panics when it is absent).

Usage: kube_play.py RENDERED OUT_DIR API_PORT METRICS_PORT
Environment: DATABASE_URL, NATS_URL. Writes OUT_DIR/play.yaml,
OUT_DIR/secret-env.json, OUT_DIR/secret-files.json and prints the secret name.
"""
import base64
import json
import os
import sys

import yaml

rendered, out, api_port, metrics_port = sys.argv[1:5]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
secret = next(d for d in docs if d["kind"] == "Secret")
name = secret["metadata"]["name"]
values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
values["DATABASE_URL"] = os.environ["DATABASE_URL"]
b64 = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
json.dump(b64, open(os.path.join(out, "secret-env.json"), "w"))
json.dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name + "-files"}, "data": values},
          open(os.path.join(out, "secret-files.json"), "w"))

listen = {"0.0.0.0:8080": "127.0.0.1:" + api_port, "0.0.0.0:9090": "127.0.0.1:" + metrics_port}
port_of = {"http": int(api_port), "metrics": int(metrics_port)}
played = []
for d in docs:
    if d["kind"] in ("ConfigMap",):
        played.append(d)
    if d["kind"] != "Deployment":
        continue
    spec = d["spec"]["template"]["spec"]
    assert spec.get("hostNetwork") is True, "the dev overlay uses host networking"
    for c in spec["containers"]:
        for e in c.get("env", []):
            if e["name"] == "NATS_URL":
                e["value"] = os.environ["NATS_URL"]
        c["args"] = [listen.get(a, a) for a in c.get("args", [])]
        c.pop("ports", None)
        for probe in ("livenessProbe", "readinessProbe"):
            if probe in c:
                c[probe]["httpGet"]["port"] = port_of[c[probe]["httpGet"]["port"]]
    for v in spec.get("volumes", []):
        if "secret" in v:
            v["secret"]["secretName"] = name + "-files"
            v["secret"].setdefault("optional", False)  # podman 4.3.1 dereferences it unchecked
    played.append(d)
yaml.safe_dump_all(played, open(os.path.join(out, "play.yaml"), "w"))
print(name)
