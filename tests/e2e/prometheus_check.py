#!/usr/bin/env python3
# Usage: prometheus_check.py FILE
# Checks Prometheus text exposition format 0.0.4 and prints a JSON report:
# {"errors": [...], "types": {family: type}, "counts": {histogram: _count of all series}}
import json, math, re, sys

errors, types, helps, seen_series = [], {}, set(), set()
samples = {}  # family -> list of (name, labels dict, value)
family_order = []  # families in order of first appearance, to check grouping
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
sample_re = re.compile(r"^(" + name_re + r")(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$")
label_re = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')

def family_of(name):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return name

def parse_labels(text, lineno):
    labels, pos = {}, 0
    while pos < len(text):
        m = label_re.match(text, pos)
        if not m:
            errors.append("line %d: bad labels {%s}" % (lineno, text))
            return None
        if m.group(1) in labels:
            errors.append("line %d: label %s twice" % (lineno, m.group(1)))
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels

text = open(sys.argv[1], encoding="utf-8").read()
if not text.endswith("\n"):
    errors.append("does not end with a newline")
for lineno, line in enumerate(text.splitlines(), 1):
    if not line.strip():
        continue
    if line.startswith("#"):
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[1] == "TYPE":
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                errors.append("line %d: bad TYPE line: %s" % (lineno, line))
            elif parts[2] in types:
                errors.append("line %d: second TYPE for %s" % (lineno, parts[2]))
            elif parts[2] in samples:
                errors.append("line %d: TYPE for %s after its samples" % (lineno, parts[2]))
            else:
                types[parts[2]] = parts[3]
        elif len(parts) >= 3 and parts[1] == "HELP":
            if parts[2] in helps:
                errors.append("line %d: second HELP for %s" % (lineno, parts[2]))
            helps.add(parts[2])
        continue
    m = sample_re.match(line)
    if not m:
        errors.append("line %d: not 'name{labels} value': %s" % (lineno, line))
        continue
    name, labels_text, value_text = m.group(1), m.group(3) or "", m.group(4)
    try:
        value = float(value_text)  # also +Inf, -Inf, NaN
    except ValueError:
        errors.append("line %d: value %r is not a float" % (lineno, value_text))
        continue
    labels = parse_labels(labels_text, lineno)
    if labels is None:
        continue
    family = family_of(name)
    if family not in types:
        errors.append("line %d: %s has no # TYPE" % (lineno, family))
    if family_order and family_order[-1] != family and family in samples:
        errors.append("line %d: samples of %s are not grouped together" % (lineno, family))
    if not family_order or family_order[-1] != family:
        family_order.append(family)
    key = (name, tuple(sorted(labels.items())))
    if key in seen_series:
        errors.append("line %d: series %s%s twice" % (lineno, name, labels))
    seen_series.add(key)
    samples.setdefault(family, []).append((name, labels, value))

counts = {}
for family, kind in types.items():
    if kind != "histogram":
        continue
    series = {}
    for name, labels, value in samples.get(family, []):
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == family + "_bucket":
            if "le" not in labels:
                errors.append("%s bucket without le" % family)
                continue
            s["buckets"].append((float(labels["le"]), labels["le"], value))
        elif name == family + "_sum":
            s["sum"] = value
        elif name == family + "_count":
            s["count"] = value
        else:
            errors.append("%s: unexpected sample %s in a histogram" % (family, name))
    total = 0
    for rest, s in series.items():
        where = "%s%s" % (family, dict(rest))
        b = s["buckets"]
        if not b:
            errors.append("%s: no buckets" % where)
            continue
        if [x[0] for x in b] != sorted(x[0] for x in b):
            errors.append("%s: buckets not in increasing le order" % where)
        if b[-1][1] != "+Inf":
            errors.append("%s: last bucket is le=%s, not +Inf" % (where, b[-1][1]))
        for (_, le1, v1), (_, le2, v2) in zip(b, b[1:]):
            if v2 < v1:
                errors.append("%s: bucket le=%s (%g) < le=%s (%g): not cumulative" % (where, le2, v2, le1, v1))
        if s["count"] is None or s["sum"] is None:
            errors.append("%s: _count or _sum missing" % where)
        elif b[-1][2] != s["count"]:
            errors.append("%s: +Inf bucket %g != _count %g" % (where, b[-1][2], s["count"]))
        elif math.isnan(s["sum"]) or s["sum"] < 0:
            errors.append("%s: _sum %g" % (where, s["sum"]))
        total += s["count"] or 0
    counts[family] = int(total)
print(json.dumps({"errors": errors, "types": types, "counts": counts, "lines": len(text.splitlines())}))
