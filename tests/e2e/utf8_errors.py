#!/usr/bin/env python3
"""Drives tests/e2e/utf8_errors.sh: bad values whose error excerpts are cut at
every byte offset of a multi-byte character, for every field type, through
/ingest/batch (next to a good row) and /ingest/message; invalid UTF-8 in the
query, headers and body. Every answer must be the expected status with a body
that is valid UTF-8 JSON. Prints the number of good rows that got a 202."""
import http.client
import json
import sys

host, port = sys.argv[1], int(sys.argv[2])
failures = []
good_rows = 0

FIELDS = ["s", "s5", "i", "b", "f", "n", "ok", "d", "ts", "j"]
VALID_AS_STRING = {"s", "j"}  # TEXT and jsonb take any string: those rows are good
CHARS = ["\u00e9", "\u20ac", "\U0001F600"]  # 2, 3 and 4 bytes in UTF-8


def request(method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def check(what, status, data, want):
    try:
        parsed = json.loads(data.decode("utf-8", errors="strict"))
    except Exception as e:  # noqa: BLE001 - any decode or parse failure is the finding
        failures.append(f"{what}: body is not valid UTF-8 JSON ({e}): {data[:200]!r}")
        return None
    if status != want:
        failures.append(f"{what}: expected HTTP {want}, got {status}: {data[:300]!r}")
        return None
    return parsed


def row(key, field=None, value=None):
    r = {"id": key}
    if field is not None:
        r[field] = value
    return json.dumps(r, ensure_ascii=False)


n = 0
for field in FIELDS:
    for ch in CHARS:
        width = len(ch.encode())
        # Excerpts keep 40 bytes: put the character's first byte at 40-width+1
        # .. 40, so the cut falls at every offset inside it (and just past it).
        for prefix in range(40 - width, 41):
            n += 1
            bad = "x" * prefix + ch * 10
            good_key = f"ok-{n}"
            valid = field in VALID_AS_STRING
            second = f"ok-{n}-2" if valid else f"bad-{n}"
            body = (row(good_key, "d", "2024-01-01") + "\n" + row(second, field, bad) + "\n").encode()
            what = f"batch field {field} prefix {prefix} char U+{ord(ch):X}"
            st, data = request("POST", "/ingest/batch", body, {"Content-Type": "application/x-ndjson"})
            j = check(what, st, data, 202)
            want = (2, 0, "accepted") if valid else (1, 1, "partial")
            if j is not None:
                good_rows += want[0]
                if (j.get("accepted"), j.get("rejected"), j.get("status")) != want:
                    failures.append(f"{what}: expected accepted, rejected, status = {want}: {j}")
            if prefix in (40 - width, 40) and not valid:  # the message path once per cut class is enough
                st, data = request("POST", "/ingest/message", row(f"m-{n}", field, bad).encode(),
                                   {"Content-Type": "application/json"})
                check(f"message field {field} prefix {prefix}", st, data, 400)

# Invalid UTF-8 where the server echoes input back.
bad_bytes = b"\xc3\x28\xa0\xa1\xe2\x82\xf0\x9f\x98"
st, data = request("POST", "/ingest/message?entity=" + "%C3%28%FF", b'{"id":"q"}',
                   {"Content-Type": "application/json"})
check("unknown entity with invalid UTF-8 in the query", st, data, 404)
conn = http.client.HTTPConnection(host, port, timeout=30)
conn.putrequest("POST", "/ingest/message")
conn.putheader("Content-Type", b"application/\xff\xfe")
conn.putheader("Content-Length", "10")
conn.endheaders()
conn.send(b'{"id":"h"}')
resp = conn.getresponse()
check("Content-Type with invalid UTF-8", resp.status, resp.read(), 415)
conn.close()
st, data = request("GET", "/ingest/status/%FF%FE%C3")
check("status id with invalid UTF-8", st, data, 404)
st, data = request("POST", "/ingest/message", b'{"id":"' + bad_bytes + b'"}', {"Content-Type": "application/json"})
check("message body with invalid UTF-8", st, data, 400)
st, data = request("POST", "/ingest/batch", row("ok-last", "d", "2024-01-01").encode() + b"\n" + b'{"id":"' +
                   bad_bytes + b'"}\n', {"Content-Type": "application/x-ndjson"})
if check("batch with an invalid UTF-8 line", st, data, 202) is not None:
    good_rows += 1

for f in failures[:20]:
    print("FAIL: " + f, file=sys.stderr)
print(f"{good_rows} {len(failures)}")
