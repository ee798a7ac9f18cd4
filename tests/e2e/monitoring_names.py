#!/usr/bin/env python3
"""Lists the metrics that the shipped monitoring names but /metrics lacks.

argv: metrics.txt (a nomnomd /metrics scrape), then the files to check
(deploy/grafana/nomnom.json, deploy/prometheus/nomnom-rules.yaml). Prints one
JSON object: {"named": [...], "missing": [...]}; a histogram is named by its
_bucket/_sum/_count series.
"""
import json
import re
import sys

NAME = re.compile(r"\bnomnom_[a-z0-9_]+")
scrape = open(sys.argv[1]).read()
have = set()
for line in scrape.splitlines():
    if line.startswith("# TYPE "):
        have.add(line.split()[2])
    elif line and not line.startswith("#"):
        have.add(re.split(r"[{ ]", line, maxsplit=1)[0])

named = set()
for path in sys.argv[2:]:
    text = open(path).read()
    if path.endswith(".json"):
        exprs = []

        def walk(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k in ("expr", "query") and isinstance(v, str):
                        exprs.append(v)
                    else:
                        walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(json.loads(text))
        text = "\n".join(exprs)
    else:
        # a rules file: only its expressions (annotations name tables too)
        import yaml

        doc = yaml.safe_load(text)
        spec = doc.get("spec", doc)  # a PrometheusRule or a plain rules file
        text = "\n".join(r["expr"] for g in spec["groups"] for r in g["rules"])
    named.update(NAME.findall(text))


def base(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in have:
            return name[: -len(suffix)]
    return name


missing = sorted(n for n in named if n not in have and base(n) not in have)
print(json.dumps({"named": sorted(named), "missing": missing}))
