#!/usr/bin/env python3
# Load for tests/e2e/sigterm_load.sh: THREADS threads send /ingest/message and
# /ingest/batch requests (BATCH_ROWS rows) with unique order keys to nomnomd
# on PORT, each over its own keep-alive connection. Once SIGTERM_AFTER
# requests were answered 202, the daemon (PID) gets SIGTERM; the threads go on
# until it refuses connections. Writes the order keys of every request, by
# outcome, to OUTDIR/{accepted,rejected,unanswered}.keys and prints a JSON
# summary.
# Usage: ingest_load.py PORT PID OUTDIR [THREADS] [SIGTERM_AFTER] [BATCH_ROWS]
import http.client
import json
import os
import signal
import sys
import threading
import time

port, pid, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
threads_n = int(sys.argv[4]) if len(sys.argv) > 4 else 8
sigterm_after = int(sys.argv[5]) if len(sys.argv) > 5 else 200
batch_rows = int(sys.argv[6]) if len(sys.argv) > 6 else 20

lock = threading.Lock()
keys = {"accepted": [], "rejected": [], "unanswered": []}
statuses = {}
answered_202 = 0
after_sigterm_202 = 0
sigterm_sent = threading.Event()
sigterm_at = [0.0]
started = time.monotonic()


def order(key):
    return json.dumps({"order_key": key, "customer_key": "C" + key, "order_status": "O", "total_price": 10.5,
                       "order_date": "2024-01-01", "order_priority": "1-URGENT", "clerk": "Clerk#1",
                       "ship_priority": 0, "comment": "sigterm"})


def record(outcome, status, ks, accepted_rows=None):
    global answered_202, after_sigterm_202
    with lock:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if outcome == "accepted":
            answered_202 += 1
            if sigterm_sent.is_set():
                after_sigterm_202 += 1
        keys[outcome].extend(ks)
        if answered_202 >= sigterm_after and not sigterm_sent.is_set():
            sigterm_at[0] = time.monotonic() - started
            sigterm_sent.set()
            os.kill(pid, signal.SIGTERM)


def worker(tid):
    conn = None
    i = 0
    while True:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.connect()
            except OSError:
                return  # the daemon stopped listening
        i += 1
        if i % 2:
            ks = ["t%d-m%d" % (tid, i)]
            path, ctype, body = "/ingest/message", "application/json", order(ks[0])
        else:
            ks = ["t%d-b%d-%d" % (tid, i, j) for j in range(batch_rows)]
            path, ctype, body = "/ingest/batch", "application/x-ndjson", "".join(order(k) + "\n" for k in ks)
        try:
            conn.request("POST", path, body=body.encode(), headers={"Content-Type": ctype})
            resp = conn.getresponse()
            text = resp.read()
        except (OSError, http.client.HTTPException):
            # Sent, but no answer (the daemon closed the connection): outcome unknown.
            record("unanswered", "none", ks)
            conn.close()
            conn = None
            continue
        if resp.status == 202:
            answer = json.loads(text)
            if path == "/ingest/batch" and (answer.get("accepted") != batch_rows or answer.get("rejected") != 0):
                print("unexpected batch answer: %s" % text, file=sys.stderr)
                sys.exit(1)
            record("accepted", 202, ks)
        else:
            record("rejected", resp.status, ks)
        if resp.will_close:
            conn.close()
            conn = None


threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for outcome, ks in keys.items():
    with open(os.path.join(outdir, outcome + ".keys"), "w") as f:
        f.writelines(k + "\n" for k in ks)
print(json.dumps({
    "requests_202": answered_202,
    "requests_202_after_sigterm": after_sigterm_202,
    "rows_accepted": len(keys["accepted"]),
    "rows_rejected": len(keys["rejected"]),
    "rows_unanswered": len(keys["unanswered"]),
    "statuses": statuses,
    "sigterm_sent": sigterm_sent.is_set(),
    "sigterm_after_seconds": round(sigterm_at[0], 3),
    "seconds": round(time.monotonic() - started, 3),
}))
