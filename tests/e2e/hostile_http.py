#!/usr/bin/env python3
# Driver of tests/e2e/hostile_http.sh: while a good client posts
# /ingest/message rows, hostile clients hold thousands of idle connections,
# trickle headers (slowloris), send made-up methods, huge bodies to unknown
# routes, chunked bodies, requests smuggled behind a Transfer-Encoding other
# than chunked, pipelined good and bad requests and invalid UTF-8
# everywhere. Every good request that is answered must get 202. Only
# 127.0.0.1, bounded in count and time. Writes the good keys answered 202 to
# OUTDIR/accepted.keys and prints a JSON summary.
# Usage: hostile_http.py PORT OUTDIR [IDLE_CONNECTIONS]
import json
import os
import random
import socket
import sys
import threading
import time

port, outdir = int(sys.argv[1]), sys.argv[2]
idle_n = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
stop = threading.Event()
lock = threading.Lock()
summary = {"good_202": 0, "good_other": {}, "good_unanswered": 0, "idle_opened": 0, "idle_refused": 0,
           "pipelined_ok": 0, "chunked_status": None, "smuggled": [], "errors": []}
accepted = []
deadline = time.monotonic() + 120


def order(key):
    return json.dumps({"order_key": key, "customer_key": "C", "order_status": "O", "total_price": 1.5,
                       "order_date": "2024-01-01"}).encode()


def connect(timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(f):
    """Reads one response from a file object; returns (status, body) or None."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    length = 0
    while True:
        h = f.readline()
        if not h or h in (b"\r\n", b"\n"):
            break
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = f.read(length) if length else b""
    return status, body


def request(s, f, method, path, body=b"", headers=()):
    head = "%s %s HTTP/1.1\r\nHost: t\r\n" % (method, path)
    for h in headers:
        head += h + "\r\n"
    head += "Content-Length: %d\r\n\r\n" % len(body)
    s.sendall(head.encode("latin-1") + body)
    return read_response(f)


def good_client():
    i = 0
    s = f = None
    while not stop.is_set() and time.monotonic() < deadline:
        key = "good-%d" % i
        i += 1
        try:
            if s is None:
                s = connect()
                f = s.makefile("rb")
            r = request(s, f, "POST", "/ingest/message", order(key), ["Content-Type: application/json"])
        except OSError:
            r = None
        with lock:
            if r is None:
                summary["good_unanswered"] += 1
            elif r[0] == 202:
                summary["good_202"] += 1
                accepted.append(key)
            else:
                summary["good_other"][str(r[0])] = summary["good_other"].get(str(r[0]), 0) + 1
        if r is None and s is not None:
            s.close()
            s = None
            time.sleep(0.05)
        time.sleep(0.005)
    if s is not None:
        s.close()


idle = []


def idle_holder():
    for n in range(idle_n):
        if stop.is_set():
            return
        try:
            s = connect(5)
            if n % 3 == 0:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")  # a header that never ends
            idle.append(s)
            with lock:
                summary["idle_opened"] += 1
        except OSError:
            with lock:
                summary["idle_refused"] += 1


def slowloris():
    socks = []
    for _ in range(50):
        try:
            s = connect(5)
            s.sendall(b"POST /ingest/message HTTP/1.1\r\nHost: t\r\n")
            socks.append(s)
        except OSError:
            pass
    end = time.monotonic() + 15
    while time.monotonic() < end and not stop.is_set():
        for s in list(socks):
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:
                socks.remove(s)
        time.sleep(1)
    for s in socks:
        s.close()


def random_methods():
    rnd = random.Random(7)
    for i in range(300):
        try:
            s = connect(5)
            f = s.makefile("rb")
            m = "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rnd.randint(1, 12)))
            r = request(s, f, m, rnd.choice(["/ingest/message", "/health", "/nope", "/metrics"]))
            if r is not None and r[0] not in (400, 404, 405):
                with lock:
                    summary["errors"].append("method %s answered %d" % (m, r[0]))
            s.close()
        except OSError:
            pass


def huge_bodies():
    for i in range(20):
        try:
            s = connect(5)
            f = s.makefile("rb")
            size = 524288000 if i % 2 == 0 else 8 << 20  # over and under the body limit
            s.sendall(b"POST /no/such/route HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
            s.sendall(b"x" * (1 << 20))
            r = read_response(f)
            # Answered without reading the body: 404, whether the announced
            # size is over the body limit or not (no route would take it).
            if r is None or r[0] != 404:
                with lock:
                    summary["errors"].append("huge body to an unknown route: %r" % (r,))
            s.close()
        except OSError:
            pass


def chunked():
    try:
        s = connect(10)
        f = s.makefile("rb")
        rows = b"".join(order("chunked-%d" % i) + b"\n" for i in range(50))
        head = (b"POST /ingest/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        body = b""
        for k in range(0, len(rows), 700):
            piece = rows[k:k + 700]
            body += b"%x\r\n" % len(piece) + piece + b"\r\n"
        s.sendall(head + body + b"0\r\n\r\n")
        r = read_response(f)
        with lock:
            summary["chunked_status"] = r[0] if r else None
            if r and r[0] == 202:
                accepted.extend("chunked-%d" % i for i in range(50))
        s.close()
    except OSError as e:
        with lock:
            summary["errors"].append("chunked: %s" % e)


def smuggled():
    """A /ingest/message request hidden in a /ingest/batch body whose framing
    is a Transfer-Encoding other than exactly "chunked" (RFC 9112 6.1: 400 or
    501, and the connection closed). The hidden row must never be stored."""
    for i, coding in enumerate((b"xchunked", b"gzip", b"chunked, identity", b"identity", b"gzip, chunked")):
        try:
            s = connect(10)
            f = s.makefile("rb")
            hidden = order("smuggled-%d" % i)
            inner = (b"POST /ingest/message HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(hidden)).encode() + b"\r\n\r\n" + hidden)
            s.sendall(b"POST /ingest/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\n"
                      b"Transfer-Encoding: " + coding + b"\r\n\r\n" + inner)
            first = read_response(f)
            second = read_response(f)  # nothing more: the connection is closed
            with lock:
                summary["smuggled"].append([coding.decode(), first and first[0], second and second[0]])
            s.close()
        except OSError as e:
            with lock:
                summary["smuggled"].append([coding.decode(), "error: %s" % e, None])


def pipelined():
    for round_ in range(20):
        try:
            s = connect(10)
            f = s.makefile("rb")
            key = "pipe-%d" % round_
            reqs = [
                (b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n", None),
                (b"POST /ingest/message HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 5\r\n\r\n{bad}", 400),
                (b"POST /ingest/message HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
                 str(len(order(key))).encode() + b"\r\n\r\n" + order(key), 202),
                (b"GET /ingest/status/\xff\xfe HTTP/1.1\r\nHost: t\r\nX-Bad: \xc3\x28\r\n\r\n", 404),
                (b"GET /stats?x=%FF%C3 HTTP/1.1\r\nHost: t\r\n\r\n", 200),
            ]
            s.sendall(b"".join(r for r, _ in reqs))
            ok = True
            for raw, want in reqs:
                r = read_response(f)
                if r is None or (want is not None and r[0] != want):
                    ok = False
                    with lock:
                        summary["errors"].append("pipelined %r: got %r" % (raw[:30], r and r[0]))
                    break
                json.loads(r[1].decode("utf-8"))  # every answer is valid UTF-8 JSON
                if want == 202:
                    with lock:
                        accepted.append(key)
            if ok:
                with lock:
                    summary["pipelined_ok"] += 1
            s.close()
        except (OSError, ValueError) as e:
            with lock:
                summary["errors"].append("pipelined: %s" % e)


good = threading.Thread(target=good_client)
good.start()
time.sleep(0.5)
attackers = [threading.Thread(target=t) for t in (idle_holder, slowloris, random_methods, huge_bodies, chunked, smuggled, pipelined)]
for t in attackers:
    t.start()
for t in attackers:
    t.join(timeout=max(1, deadline - time.monotonic()))
time.sleep(1)
stop.set()
good.join()
for s in idle:
    s.close()
with open(os.path.join(outdir, "accepted.keys"), "w") as f:
    f.write("".join(k + "\n" for k in accepted))
summary["errors"] = summary["errors"][:20]
print(json.dumps(summary))
