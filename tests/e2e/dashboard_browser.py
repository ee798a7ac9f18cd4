#!/usr/bin/python3
# Browser half of tests/e2e/dashboard.sh: drives headless Chromium over the
# DevTools protocol (python3-websocket) against a running nomnomd while rows
# are posted, and prints one line per check: "PASS what" or "FAIL what".
#
# Usage: dashboard_browser.py CDP_PORT DAEMON_URL OUTDIR MODE
#   MODE "data":  the page follows ingest (rows of two entities, API rejects,
#                 dead letters from a CHECK on orders); once ingest stopped its
#                 numbers equal /stats and the tables' row counts within two
#                 refreshes; a dead letter shows with its id; the entity filter;
#                 390 px wide without sideways scrolling; dark mode; no console
#                 errors. Screenshots into OUTDIR.
#   MODE "token": nomnomd has a token: the page asks for it, trades it for a
#                 session cookie that scripts cannot read, then shows data.
# Env: DATABASE_URL (psql), NOMNOM_TOKEN (mode token).
import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import websocket

cdp_port, base, outdir, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
failures = 0


def check(ok, what):
    global failures
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures += 1


def fatal(what):
    check(False, what)
    sys.exit(1)


class Page:
    """One page target over the DevTools protocol; collects console errors."""

    def __init__(self, port):
        deadline = time.time() + 20
        target = None
        while target is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                    target = pages[0] if pages else None
            except (OSError, ValueError):
                pass
            if target is None:
                if time.time() > deadline:
                    fatal("Chromium's DevTools endpoint answered with a page")
                time.sleep(0.2)
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.errors = []  # console errors, exceptions, failed loads (CSP, 404)
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable")

    def _event(self, m):
        method, p = m.get("method"), m.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append("log (" + e.get("source", "") + "): " + e.get("text", "") + " " + e.get("url", ""))

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == my:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self._event(m)

    def pump(self, seconds):
        """Lets events arrive for a while."""
        self.ws.settimeout(0.1)
        end = time.time() + seconds
        while time.time() < end:
            try:
                self._event(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        self.ws.settimeout(30)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expr, timeout, what):
        end = time.time() + timeout
        while time.time() < end:
            try:
                v = self.eval(expr)
            except RuntimeError:  # the document is still loading (no body yet)
                v = None
            if v:
                return v
            self.pump(0.2)
        fatal(what + f" within {timeout} s")

    def viewport(self, width, height, mobile=False):
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)

    def screenshot(self, path, width, mobile=False):
        # The whole page: make the viewport as tall as the content.
        self.viewport(width, 900, mobile)
        self.pump(0.5)
        h = int(self.eval("Math.ceil(document.documentElement.scrollHeight)"))
        self.viewport(width, max(h, 400), mobile)
        self.pump(0.5)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        self.viewport(width, 900, mobile)


def http_json(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(base + path, data=body, method=method, headers={"Content-Type": ctype} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def sql(q):
    return subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", os.environ["DATABASE_URL"], "-c", q],
                          check=True, capture_output=True, text=True).stdout.strip()


def order(key, price):
    return json.dumps({"order_key": key, "customer_key": "C-" + key, "order_status": "O", "total_price": price,
                       "order_date": "2024-01-01", "order_priority": "1-URGENT", "clerk": "Clerk#1",
                       "ship_priority": 0, "comment": "dashboard e2e"})


def page_state(page):
    return page.eval("""(() => {
      const v = (id) => Number(document.getElementById(id).dataset.value);
      const rows = Array.from(document.querySelectorAll('#entities tbody tr')).map((tr) => {
        const o = {name: tr.dataset.entity, table: tr.dataset.table || null};
        tr.querySelectorAll('td[data-key]').forEach((td) => { const v = td.querySelector('[data-value]'); if (v) o[td.dataset.key] = Number(v.dataset.value); });
        return o;
      });
      return {seq: Number(document.body.dataset.seq || 0),
              totals: {accepted: v('total-accepted'), committed: v('total-committed'), rejected: v('total-rejected'), dead: v('total-dead')},
              entities: rows,
              dead_letters: Array.from(document.querySelectorAll('#dead-letters li')).map((li) => ({id: li.dataset.id, text: li.textContent, href: (li.querySelector('a') || {}).href || ''})),
              rejects: Array.from(document.querySelectorAll('#rejects li')).map((li) => ({id: li.dataset.id, text: li.textContent}))};
    })()""")


def run_data(page):
    page.viewport(1280, 900)
    page.call("Page.navigate", url=base + "/dashboard")
    page.wait_for("document.body.dataset.seq !== undefined && Number(document.body.dataset.seq) > 0", 20,
                  "the page rendered a snapshot")
    check(page.eval("document.getElementById('login').hidden"), "no token asked for (nomnomd has none)")

    # The console-error capture works (a probe error is seen, then dropped).
    page.eval("console.error('nomnom-probe')")
    page.pump(0.3)
    check(any("nomnom-probe" in e for e in page.errors), "console errors are captured")
    page.errors = [e for e in page.errors if "nomnom-probe" not in e]

    # Ingest in the background: Order batches with one invalid line (an API
    # reject) and one negative price (a dead letter), and Note rows.
    batches, dead_batches, statuses = [], [], []

    def load():
        for b in range(12):
            lines = [order(f"d{b}-{i}", 10 + i) for i in range(150)]
            lines.insert(5, '{"order_key": "broken", ')  # not JSON: rejected by the API
            if b % 3 == 0:
                lines.append(order(f"d{b}-neg", -1))  # breaks orders_price_check: a dead letter
            st, j = http_json("POST", "/ingest/batch?entity=Order", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
            statuses.append(st)
            if st == 202:
                batches.append(j["batch_id"])
                if b % 3 == 0:
                    dead_batches.append(j["batch_id"])
            notes = "\n".join(json.dumps({"note_id": f"n{b}-{i}", "body": "x"}) for i in range(40)) + "\n"
            st, j = http_json("POST", "/ingest/batch?entity=Note", notes.encode(), "application/x-ndjson")
            statuses.append(st)
            if st == 202:
                batches.append(j["batch_id"])
            # Invoices with 1 to 4 lines each; one with a bad line (an API
            # reject of the whole invoice).
            inv = [json.dumps({"invoice_id": f"i{b}-{i}", "lines": [{"n": n, "amount": n * 1.5} for n in range(1 + i % 4)]})
                   for i in range(20)]
            inv.append(json.dumps({"invoice_id": f"i{b}-bad", "lines": [{"n": 1, "amount": "lots"}]}))
            st, j = http_json("POST", "/ingest/batch?entity=Invoice", ("\n".join(inv) + "\n").encode(), "application/x-ndjson")
            statuses.append(st)
            if st == 202:
                batches.append(j["batch_id"])
            time.sleep(0.5)

    t = threading.Thread(target=load)
    seq_before = page_state(page)["seq"]
    t.start()
    page.pump(3)
    mid = page_state(page)
    check(mid["seq"] > seq_before, f"the page follows the event stream while data is posted (seq {seq_before} -> {mid['seq']})")
    check(mid["totals"]["accepted"] > 0, f"accepted rows show up during ingest ({mid['totals']['accepted']})")
    t.join()
    check(statuses and all(s == 202 for s in statuses), f"every batch answered 202 ({sorted(set(statuses))})")

    # Ingest stopped: wait for the workers, then compare.
    end = time.time() + 60
    pending = list(batches)
    while pending and time.time() < end:
        st, j = http_json("GET", "/ingest/status/" + pending[0])
        if st == 200 and j.get("status") in ("processed", "dead"):
            pending.pop(0)
        else:
            page.pump(0.2)
    check(not pending, f"every batch committed ({len(batches) - len(pending)}/{len(batches)})")
    st, stats = http_json("GET", "/stats")
    seq0 = page_state(page)["seq"]
    orders, notes = int(sql("SELECT count(*) FROM orders")), int(sql("SELECT count(*) FROM notes"))
    invoices, lines = int(sql("SELECT count(*) FROM invoices")), int(sql("SELECT count(*) FROM invoice_lines"))
    dead_count = int(sql("SELECT count(*) FROM nomnom_dead_letters"))
    want = {"accepted": stats["api"]["rows_accepted"], "rejected": stats["api"]["rows_rejected"],
            "committed": stats["database"]["rows_committed"], "dead": stats["database"]["dead_letters"]}
    check(want["committed"] == orders + notes + invoices,
          f"/stats rows_committed {want['committed']} = rows in orders + notes + invoices ({orders} + {notes} + {invoices})")
    check(invoices == 12 * 20 and lines == 12 * 50, f"invoices and their lines stored ({invoices}, {lines})")
    inv_stats = stats["database"].get("entities", {}).get("Invoice", {})
    check(inv_stats.get("tables") == {"invoices": invoices, "invoice_lines": lines},
          f"/stats rows per table of Invoice {inv_stats.get('tables')} = count(*) ({invoices}, {lines})")
    check(want["dead"] == dead_count, f"/stats dead_letters {want['dead']} = rows in nomnom_dead_letters ({dead_count})")
    check(want["accepted"] == 12 * 150 + 4 + 12 * 40 + 12 * 20, f"/stats rows_accepted {want['accepted']} = rows posted valid")
    # Within two refreshes after that reading, the page shows the same.
    state = page_state(page)
    seen = [(state["seq"], state["totals"])]
    while state["seq"] < seq0 + 2 and state["totals"] != want:
        page.pump(0.1)
        state = page_state(page)
        if state["seq"] != seen[-1][0]:
            seen.append((state["seq"], state["totals"]))
    print("page totals by snapshot after /stats was read:", seen, flush=True)
    check(state["totals"] == want, f"page totals {state['totals']} = /stats {want} (page seq {seq0} -> {state['seq']})")
    by_name = {e["name"]: e for e in state["entities"] if not e["table"]}
    # Nested: committed rows per table, within two refreshes as well.
    tables = {e["table"]: e.get("committed") for e in state["entities"] if e["table"]}
    while state["seq"] < seq0 + 3 and tables != {"invoices": invoices, "invoice_lines": lines}:
        page.pump(0.1)
        state = page_state(page)
        tables = {e["table"]: e.get("committed") for e in state["entities"] if e["table"]}
    check(tables == {"invoices": invoices, "invoice_lines": lines},
          f"page's Invoice rows per table {tables} = count(*) (invoices {invoices}, invoice_lines {lines})")
    check(by_name.get("Invoice", {}).get("committed") == invoices, f"page's Invoice committed = rows in invoices ({invoices})")
    check(by_name.get("Invoice", {}).get("rejected") == 12, "page's Invoice rejected = the 12 invoices with a bad line")
    check(by_name.get("Order", {}).get("committed") == orders, f"page's Order committed = rows in orders ({orders})")
    check(by_name.get("Note", {}).get("committed") == notes, f"page's Note committed = rows in notes ({notes})")
    check(by_name.get("Order", {}).get("rejected") == 12, "page's Order rejected = the 12 broken lines")
    check(by_name.get("Order", {}).get("dead") == 4, "page's Order dead = the 4 negative prices")

    procs = page.eval("Array.from(document.querySelectorAll('#processes li')).map((li) => li.dataset.process)")
    check(len(procs) == 1 and ":" in procs[0], f"the worker process's heartbeat is listed ({procs})")
    label = page.eval("(document.querySelector('#processes li') || {}).textContent || ''")
    check(label.startswith("nomnomd on ") and procs and procs[0].split("@", 1)[-1] in label,
          f"the heartbeat shows its role and host ({label[:60]!r})")
    # The dead letters and rejects, with their ids and status links.
    dl = [d for d in state["dead_letters"] if d["id"] in dead_batches]
    check(len(dl) == 4, f"the 4 dead letters are listed with their batch ids ({len(dl)})")
    if dl:
        check(dl[0]["href"].endswith("/dashboard/status/" + dl[0]["id"]), f"a dead letter links to its status ({dl[0]['href']})")
        # The dead letter is a row of a batch: the batch is processed, with rows_dead.
        got = page.eval(f"fetch({json.dumps(dl[0]['href'])}).then(r => r.json()).then(j => j.id + ' ' + (j.rows_dead || 0))")
        check(got == f"{dl[0]['id']} 1", f"the dead letter's status link answers for its batch with 1 dead row ({got})")
        check("orders_price_check" in dl[0]["text"], "a dead letter shows PostgreSQL's reason")
    check(any(r["id"] in batches for r in state["rejects"]), "an API reject is listed with its batch id")

    # The entity filter.
    page.eval("(() => { const s = document.getElementById('entity-filter'); s.value = 'Note'; s.dispatchEvent(new Event('change')); })()")
    f = page_state(page)
    check([e["name"] for e in f["entities"]] == ["Note"], "filter Note: the entities table shows Note only")
    check(f["dead_letters"] == [] and f["totals"]["committed"] == notes, "filter Note: no Order dead letters, Note's totals")
    page.eval("(() => { const s = document.getElementById('entity-filter'); s.value = ''; s.dispatchEvent(new Event('change')); })()")

    page.screenshot(os.path.join(outdir, "dashboard.png"), 1280)
    # A 390 px phone: no sideways scrolling.
    page.viewport(390, 844, True)
    page.pump(1.5)
    sw = page.eval("document.documentElement.scrollWidth")
    check(sw <= 390, f"390 px wide: the page is {sw} px wide (no sideways scroll)")
    wide = page.eval("""Array.from(document.querySelectorAll('body *')).filter((e) => e.getBoundingClientRect().right > 391)
                        .slice(0, 5).map((e) => e.tagName + '#' + e.id + '.' + e.className)""")
    check(not wide, f"390 px wide: no element sticks out ({wide})")
    page.screenshot(os.path.join(outdir, "dashboard-phone.png"), 390, True)
    # Dark mode.
    light = page.eval("getComputedStyle(document.body).backgroundColor")
    page.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
    page.pump(0.5)
    dark = page.eval("getComputedStyle(document.body).backgroundColor")
    check(light != dark, f"prefers-color-scheme dark changes the colours ({light} -> {dark})")
    page.screenshot(os.path.join(outdir, "dashboard-dark.png"), 1280)
    page.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "light"}])
    page.call("Page.navigate", url="about:blank")  # closes the page's event stream


def run_token(page):
    token = os.environ["NOMNOM_TOKEN"]
    page.viewport(1280, 900)
    page.call("Page.navigate", url=base + "/dashboard")
    page.wait_for("!document.getElementById('login').hidden", 15, "the page asks for the token")
    check(page.eval("document.getElementById('board').hidden"), "no data shown before the token")
    # A wrong token first, then the right one.
    page.eval("document.getElementById('token').value = 'wrong'; document.getElementById('login-form').requestSubmit()")
    page.wait_for("document.getElementById('login-error').textContent === 'wrong token'", 10, "a wrong token is refused")
    page.eval(f"document.getElementById('token').value = {json.dumps(token)}; document.getElementById('login-form').requestSubmit()")
    page.wait_for("!document.getElementById('board').hidden && Number(document.body.dataset.seq) > 0", 15,
                  "the page shows data after the token")
    seq = page_state(page)["seq"]
    page.pump(2.5)
    check(page_state(page)["seq"] > seq, "the event stream runs on the session cookie")
    check(page.eval("document.cookie") == "", "the session cookie is HttpOnly (scripts cannot read it)")
    # A status link works on the session cookie (the page cannot send the token).
    got = page.eval("fetch('/dashboard/status/00000000-0000-4000-8000-000000000000').then(r => r.status)")
    check(got in (200, 404), f"/dashboard/status/{{id}} answers on the session cookie (HTTP {got}, not 401)")
    check(token not in page.eval("location.href + document.documentElement.outerHTML"), "the token is in neither URL nor page")
    cookies = page.call("Network.getCookies", urls=[base + "/dashboard/events"])["cookies"]
    c = [c for c in cookies if c["name"] == "nomnom_dashboard"]
    check(len(c) == 1 and c[0]["httpOnly"] and c[0]["sameSite"] == "Strict" and c[0]["path"] == "/dashboard",
          f"cookie attributes {[(x['httpOnly'], x.get('sameSite'), x['path']) for x in c]}")
    # The browser's own 401s (fetch of the snapshot, the wrong token) are
    # network log lines, not script errors.
    # So is the 404 of the made-up id fetched above.
    page.errors = [e for e in page.errors if "status of 401" not in e and "/dashboard/status/00000000-" not in e]


page = Page(cdp_port)
try:
    {"data": run_data, "token": run_token}[mode](page)
except SystemExit:
    raise
except Exception as e:  # noqa: BLE001 - any failure is a failed check with its reason
    check(False, f"{type(e).__name__}: {e}")
check(not page.errors, f"no console errors ({page.errors})")
sys.exit(1 if failures else 0)
