#!/usr/bin/env python3
"""Checks rendered kustomize overlays (argv: dev.yaml prod.yaml helm-values.yaml rules.yaml)."""
import sys
import yaml


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(path, overlay):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for kind in ("Deployment", "Service", "ConfigMap", "ScaledObject", "PodDisruptionBudget"):
        if not any(k == kind for k, _ in by):
            fail(f"{overlay}: no {kind}")
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if overlay == "prod":
        # prod must carry no secret values: the operator creates nomnom-secrets.
        for s in secrets:
            if s.get("data") or s.get("stringData"):
                fail(f"prod: renders Secret {s['metadata']['name']} with values")
    elif not secrets:
        fail(f"{overlay}: no Secret (dev generates test values)")
    deps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for name, port in (("nomnomd", "http"), ("nomnom-worker", "metrics")):
        if name not in deps:
            fail(f"{overlay}: no Deployment {name}")
        spec = deps[name]["spec"]["template"]["spec"]
        c = spec["containers"][0]
        if c["livenessProbe"]["httpGet"]["path"] != "/live":
            fail(f"{overlay}/{name}: liveness not /live")
        if c["readinessProbe"]["httpGet"]["path"] != "/ready":
            fail(f"{overlay}/{name}: readiness not /ready")
        if not spec["securityContext"].get("runAsNonRoot"):
            fail(f"{overlay}/{name}: not runAsNonRoot")
        if not c["securityContext"].get("readOnlyRootFilesystem"):
            fail(f"{overlay}/{name}: root filesystem writable")
        if "resources" not in c or "requests" not in c["resources"]:
            fail(f"{overlay}/{name}: no resource requests")
        if spec["terminationGracePeriodSeconds"] <= 30:
            fail(f"{overlay}/{name}: grace period not above the 30 s drain")
        env = {e["name"]: e for e in c["env"]}
        ref = env["DATABASE_URL"].get("valueFrom", {}).get("secretKeyRef")
        if not ref:
            fail(f"{overlay}/{name}: DATABASE_URL not from a Secret")
        if overlay == "prod" and ref["name"] != "nomnom-secrets":
            fail(f"{overlay}/{name}: DATABASE_URL from {ref['name']}, not the operator's nomnom-secrets")
        want = "1" if overlay == "dev" else "3"
        if env["NOMNOM_STREAM_REPLICAS"]["value"] != want:
            fail(f"{overlay}/{name}: stream replicas != {want}")
        if overlay == "prod" and len(env["NATS_URL"]["value"].split(",")) != 3:
            fail(f"{overlay}/{name}: NATS_URL is not 3 servers")
        if overlay == "dev" and not spec.get("hostNetwork"):
            fail(f"{overlay}/{name}: dev without hostNetwork")
    w = deps["nomnom-worker"]["spec"]["template"]
    args = w["spec"]["containers"][0]["args"]
    if args[0] != "worker" or "0.0.0.0:9090" not in args:
        fail(f"{overlay}: worker args {args}")
    if w["metadata"]["annotations"].get("prometheus.io/port") != "9090":
        fail(f"{overlay}: worker scrape annotation")
    d = deps["nomnomd"]["spec"]["template"]["spec"]
    if "--token-file" not in d["containers"][0]["args"] or "--workers" not in d["containers"][0]["args"]:
        fail(f"{overlay}: nomnomd without --token-file or --workers 0 (API only)")
    so = next(x for x in docs if x["kind"] == "ScaledObject")
    t = so["spec"]["triggers"][0]
    if t["type"] != "nats-jetstream":
        fail(f"{overlay}: trigger type {t['type']}")
    md = t["metadata"]
    for k, v in (("stream", "MESSAGES"), ("consumer", "workers")):
        if md.get(k) != v:
            fail(f"{overlay}: ScaledObject {k}={md.get(k)}")
    for k in ("natsServerMonitoringEndpoint", "account", "lagThreshold"):
        if not md.get(k):
            fail(f"{overlay}: ScaledObject without {k}")
    if so["spec"]["scaleTargetRef"]["name"] != "nomnom-worker":
        fail(f"{overlay}: ScaledObject targets {so['spec']['scaleTargetRef']}")
    if not 1 <= so["spec"]["minReplicaCount"] < so["spec"]["maxReplicaCount"]:
        fail(f"{overlay}: min/max replicas")
    cm = next(x for x in docs if x["kind"] == "ConfigMap")
    if not any(k.endswith(".yaml") for k in cm["data"]):
        fail(f"{overlay}: entities ConfigMap empty")
    return deps


dev = check(sys.argv[1], "dev")
prod = check(sys.argv[2], "prod")
# prod ships the alerting rules as a PrometheusRule, equal to the promtool-tested file.
rules = yaml.safe_load(open(sys.argv[4]))
pr = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d and d["kind"] == "PrometheusRule"]
if len(pr) != 1:
    fail(f"prod: {len(pr)} PrometheusRule objects, expected 1")
if pr[0]["spec"]["groups"] != rules["groups"]:
    fail("prod: the PrometheusRule's groups differ from deploy/prometheus/nomnom-rules.yaml")
if prod["nomnomd"]["spec"]["replicas"] != 3:
    fail("prod: nomnomd replicas != 3")
h = yaml.safe_load(open(sys.argv[3]))
if h["config"]["cluster"]["replicas"] != 3 or not h["config"]["jetstream"]["fileStore"]["enabled"]:
    fail("helm values: not 3 servers with JetStream file storage")
print("ok: dev and prod overlays and NATS Helm values checked")
