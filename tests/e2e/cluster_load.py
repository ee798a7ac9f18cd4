#!/usr/bin/env python3
# Load for tests/e2e/cluster_failover.sh: THREADS threads post /ingest/message
# rows with unique order keys to the nomnomd instances on PORTS (round robin),
# until STOPFILE exists or MAX requests were sent. Every key is written, by
# outcome, to OUTDIR/accepted.keys (202) or OUTDIR/failed.keys (anything else,
# connection errors included: such a row may or may not be stored). Prints a
# JSON summary.
# Usage: cluster_load.py PORTS(comma-separated) OUTDIR STOPFILE [THREADS] [MAX]
import http.client
import json
import os
import sys
import threading
import time

ports = [int(p) for p in sys.argv[1].split(",")]
outdir, stopfile = sys.argv[2], sys.argv[3]
threads_n = int(sys.argv[4]) if len(sys.argv) > 4 else 4
max_requests = int(sys.argv[5]) if len(sys.argv) > 5 else 20000

lock = threading.Lock()
keys = {"accepted": [], "failed": []}
statuses = {}
sent = [0]
deadline = time.monotonic() + 300  # a hard bound whatever happens


def order(key):
    return json.dumps({"order_key": key, "customer_key": "C" + key, "order_status": "O", "total_price": 10.5,
                       "order_date": "2024-01-01", "comment": "cluster"})


def worker(tid):
    conns = {}
    i = 0
    while not os.path.exists(stopfile) and time.monotonic() < deadline:
        with lock:
            if sent[0] >= max_requests:
                return
            sent[0] += 1
        port = ports[(tid + i) % len(ports)]
        key = "cl-%d-%d" % (tid, i)
        i += 1
        status = "error"
        try:
            conn = conns.get(port)
            if conn is None:
                conn = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/ingest/message", body=order(key), headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except Exception:  # noqa: BLE001 - a refused or broken connection is an outcome
            conns.pop(port, None)
            time.sleep(0.05)
        with lock:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            keys["accepted" if status == 202 else "failed"].append(key)
        if status != 202:
            time.sleep(0.02)


threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for name, ks in keys.items():
    with open(os.path.join(outdir, name + ".keys"), "w") as f:
        f.write("".join(k + "\n" for k in ks))
print(json.dumps({"sent": sent[0], "statuses": statuses, "accepted": len(keys["accepted"]),
                  "failed": len(keys["failed"])}))
