#!/usr/bin/env python3
# Helper of tests/e2e/fault_stream_boundary.sh: fills nomnomd's stream (no
# worker running) with /ingest/message requests of a chosen size, sent one
# at a time (one row per chunk), until the free space is less than two of
# them, then sends one message sized so that its stored record (payload,
# headers, subject and nats-server's per-record overhead) is 25 bytes larger
# than the free space while its payload and headers alone fit. A stream that
# discards new messages must refuse it (503) or store it without dropping
# anything; nats-server 2.9 checks the payload against the limit but counts
# the record, and drops the OLDEST message to make room.
# Writes the keys by outcome to OUTDIR/{accepted,rejected,unanswered}.keys and
# OUTDIR/accepted.ids (as fault_load.py does), prints a JSON summary.
# Usage: stream_boundary.py DAEMON_PORT MONITOR_PORT STREAM OUTDIR
import http.client
import json
import os
import sys

port, mport, stream, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
keys = {"accepted": [], "rejected": [], "unanswered": []}
ids = []
statuses = {}


def state():
    c = http.client.HTTPConnection("127.0.0.1", mport, timeout=10)
    c.request("GET", "/jsz?streams=1&config=1")
    j = json.loads(c.getresponse().read())
    for acc in j.get("account_details", []):
        for s in acc.get("stream_detail", []):
            if s["name"] == stream:
                return s["state"], s["config"]["max_bytes"]
    sys.exit("no stream %s" % stream)


conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def post(key, comment_len):
    body = json.dumps({"order_key": key, "customer_key": "C" + key, "order_status": "O", "total_price": 1.5,
                       "order_date": "2024-01-01", "comment": "x" * comment_len}, separators=(",", ":"))
    conn.request("POST", "/ingest/message", body=body.encode(), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read()
    statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
    if resp.status == 202:
        keys["accepted"].append(key)
        ids.append((key, json.loads(text)["message_id"]))
    else:
        keys["rejected"].append(key)
    return resp.status, text.decode(errors="replace")


big = 8000
st, max_bytes = state()
status, text = post("sb-0", big)
if status != 202:
    sys.exit("the first message was answered %d: %s" % (status, text))
st1, _ = state()
record = st1["bytes"] - st["bytes"]  # what one message of comment length `big` takes in the store
i = 1
while max_bytes - state()[0]["bytes"] >= 2 * record:
    status, text = post("sb-%d" % i, big)
    if status != 202:
        sys.exit("filler message %d was answered %d: %s" % (i, status, text))
    i += 1
before, _ = state()
free = max_bytes - before["bytes"]
# A record 25 bytes larger than the free space: its payload and headers
# (the record less subject and per-record overhead, ~50 bytes) fit.
boundary_len = big + (free + 25 - record)
status, text = post("sb-boundary", boundary_len)
after, _ = state()
for outcome, ks in keys.items():
    with open(os.path.join(outdir, outcome + ".keys"), "w") as f:
        f.writelines(k + "\n" for k in ks)
with open(os.path.join(outdir, "accepted.ids"), "w") as f:
    f.writelines("%s\t%s\n" % kv for kv in ids)
print(json.dumps({
    "max_bytes": max_bytes, "record_bytes": record, "fillers": i, "free_before": free,
    "boundary_record_bytes": record + boundary_len - big, "boundary_status": status, "boundary_answer": text[:300],
    "before": {k: before[k] for k in ("messages", "bytes", "first_seq", "last_seq")},
    "after": {k: after[k] for k in ("messages", "bytes", "first_seq", "last_seq")},
    "rows_accepted": len(keys["accepted"]), "rows_rejected": len(keys["rejected"]), "statuses": statuses,
}))
