#!/usr/bin/env python3
# Load for the fault-injection e2e tests (tests/e2e/faults_lib.sh): THREADS
# threads send /ingest/message and /ingest/batch requests (BATCH_ROWS rows)
# with unique order keys to nomnomd on PORT, each over its own keep-alive
# connection, pausing PAUSE_MS between requests (so the load leaves CPU to the
# servers on a small machine). They stop when STOP_FILE exists, after
# MAX_SECONDS, or (with --stop-when-refused) once the daemon refuses
# connections. A connection that cannot be opened is retried every 0.2 s
# (nomnomd may be restarting); an answer other than 202 makes the thread back
# off for 0.1 s, like a client would.
#
# Writes the order keys of every request, by outcome, to
# OUTDIR/{accepted,rejected,unanswered}.keys (accepted: answered 202;
# rejected: answered anything else; unanswered: sent, but the connection broke
# before an answer, so the outcome is unknown), the id in each 202 answer to
# OUTDIR/accepted.ids ("key<TAB>message_id or batch_id"), keeps OUTDIR/progress up to
# date ("<requests answered 202> <requests answered otherwise> <unanswered>")
# so that a test can inject its fault at the right moment, and prints a JSON
# summary (with the body of the first answer of each status other than 202). Exit 1 on a 202 whose body does not account for every row.
import argparse
import http.client
import json
import os
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--outdir", required=True)
ap.add_argument("--threads", type=int, default=4)
ap.add_argument("--batch-rows", type=int, default=20)
ap.add_argument("--pause-ms", type=float, default=10)
ap.add_argument("--stop-file", default="")
ap.add_argument("--max-seconds", type=float, default=120)
ap.add_argument("--stop-when-refused", action="store_true")
ap.add_argument("--key-prefix", default="f")
ap.add_argument("--timeout", type=float, default=30, help="seconds to wait for one answer")
args = ap.parse_args()

lock = threading.Lock()
keys = {"accepted": [], "rejected": [], "unanswered": []}
accepted_ids = []  # (key, message_id or batch_id of its 202 answer), for diagnosis
statuses = {}
counts = {"accepted": 0, "rejected": 0, "unanswered": 0}
bad_answers = []
first_bodies = {}  # status -> the body of its first answer, for the log
started = time.monotonic()
stop = threading.Event()


def order(key):
    return json.dumps({"order_key": key, "customer_key": "C" + key, "order_status": "O", "total_price": 10.5,
                       "order_date": "2024-01-01", "order_priority": "1-URGENT", "clerk": "Clerk#1",
                       "ship_priority": 0, "comment": "fault"})


def record(outcome, status, ks):
    with lock:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        counts[outcome] += 1
        keys[outcome].extend(ks)


def should_stop():
    if stop.is_set():
        return True
    if time.monotonic() - started > args.max_seconds or (args.stop_file and os.path.exists(args.stop_file)):
        stop.set()
    return stop.is_set()


def worker(tid):
    conn = None
    i = 0
    while not should_stop():
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
            try:
                conn.connect()
            except OSError:
                conn = None
                if args.stop_when_refused:
                    return
                time.sleep(0.2)
                continue
        i += 1
        if i % 2:
            ks = ["%st%d-m%d" % (args.key_prefix, tid, i)]
            path, ctype, body = "/ingest/message", "application/json", order(ks[0])
        else:
            ks = ["%st%d-b%d-%d" % (args.key_prefix, tid, i, j) for j in range(args.batch_rows)]
            path, ctype, body = "/ingest/batch", "application/x-ndjson", "".join(order(k) + "\n" for k in ks)
        try:
            conn.request("POST", path, body=body.encode(), headers={"Content-Type": ctype})
            resp = conn.getresponse()
            text = resp.read()
        except (OSError, http.client.HTTPException):
            # Sent (maybe only in part), but no answer: the outcome is unknown.
            record("unanswered", "none", ks)
            conn.close()
            conn = None
            continue
        if resp.status == 202:
            answer = json.loads(text)
            if path == "/ingest/batch" and (answer.get("accepted") != len(ks) or answer.get("rejected") != 0):
                with lock:
                    bad_answers.append(text.decode(errors="replace"))
            with lock:
                the_id = answer.get("message_id") or answer.get("batch_id") or "?"
                accepted_ids.extend((k, the_id) for k in ks)
            record("accepted", 202, ks)
        else:
            with lock:
                first_bodies.setdefault(str(resp.status), text[:300].decode(errors="replace"))
            record("rejected", resp.status, ks)
            time.sleep(0.1)
        if resp.will_close:
            conn.close()
            conn = None
        if args.pause_ms > 0:
            time.sleep(args.pause_ms / 1000.0)


def progress():
    path = os.path.join(args.outdir, "progress")
    while True:
        with lock:
            line = "%d %d %d\n" % (counts["accepted"], counts["rejected"], counts["unanswered"])
        with open(path + ".tmp", "w") as f:
            f.write(line)
        os.replace(path + ".tmp", path)
        if done.is_set():
            return
        time.sleep(0.1)


done = threading.Event()
reporter = threading.Thread(target=progress)
reporter.start()
threads = [threading.Thread(target=worker, args=(t,)) for t in range(args.threads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
done.set()
reporter.join()
for outcome, ks in keys.items():
    with open(os.path.join(args.outdir, outcome + ".keys"), "w") as f:
        f.writelines(k + "\n" for k in ks)
with open(os.path.join(args.outdir, "accepted.ids"), "w") as f:
    f.writelines("%s\t%s\n" % kv for kv in accepted_ids)
print(json.dumps({
    "requests_202": counts["accepted"],
    "requests_other": counts["rejected"],
    "requests_unanswered": counts["unanswered"],
    "rows_accepted": len(keys["accepted"]),
    "rows_rejected": len(keys["rejected"]),
    "rows_unanswered": len(keys["unanswered"]),
    "statuses": statuses,
    "first_bodies": first_bodies,
    "seconds": round(time.monotonic() - started, 3),
}))
if bad_answers:
    print("202 answers that do not account for every row: %s" % bad_answers[:3], file=sys.stderr)
    sys.exit(1)
