// nomnomd's dashboard: reads /dashboard/snapshot once, then follows
// /dashboard/events (Server-Sent Events, one snapshot a second). With a token
// set on nomnomd, asks for it once and trades it for a session cookie
// (POST /dashboard/session); the token never goes into a URL and is not kept.
// Data is put on the page with textContent only.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat("en-US");
  const fmtRate = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  let source = null;
  let chart = null;
  let last = null;
  let retryTimer = null;

  function setConn(state, text) {
    const el = $("conn");
    el.dataset.state = state;
    el.textContent = text;
  }

  function setNumber(el, value) {
    el.dataset.value = String(value);
    el.textContent = fmt.format(value);
  }

  // 15000 -> "15k", 1200000 -> "1.2M": axis labels that fit any value.
  function si(v) {
    const a = Math.abs(v);
    for (const [d, suffix] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (a >= d) return +(v / d).toFixed(a / d >= 100 ? 0 : 1) + suffix;
    }
    return String(+v.toFixed(a >= 10 || a === 0 ? 0 : 1));
  }

  function rateText(v) {
    return fmtRate.format(v) + " /s";
  }

  function bytesText(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
  }

  function orDash(v) {
    return v === null || v === undefined ? "–" : fmt.format(v);
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- chart ---------------------------------------------------------------

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function chartWidth() {
    return Math.max(200, $("chart").clientWidth);
  }

  function makeChart() {
    if (typeof uPlot !== "function") return null;
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--line"), width: 1 }, ticks: { stroke: cssVar("--line") } };
    const opts = {
      width: chartWidth(),
      height: 200,
      cursor: { drag: { x: false, y: false } },
      legend: { live: false },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      // Whole seconds on the time axis (the points are a second apart).
      axes: [
        Object.assign({ space: 60, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600] }, axis),
        Object.assign({ size: 56, values: (u, splits) => splits.map(si) }, axis),
      ],
      series: [
        {},
        { label: "accepted", stroke: cssVar("--accepted"), width: 2, value: (u, v) => (v == null ? "–" : fmtRate.format(v)) },
        { label: "committed", stroke: cssVar("--committed"), width: 2, value: (u, v) => (v == null ? "–" : fmtRate.format(v)) },
      ],
    };
    return new uPlot(opts, [[], [], []], $("chart"));
  }

  // The chart's colours come from the CSS: draw it again when the theme changes.
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (!chart) return;
    chart.destroy();
    chart = null;
    if (last) render(last);
  });

  window.addEventListener("resize", () => {
    if (chart) chart.setSize({ width: chartWidth(), height: 200 });
  });

  // ---- rendering -------------------------------------------------------------

  function selectedEntity() {
    return $("entity-filter").value;
  }

  function syncFilter(entities) {
    const select = $("entity-filter");
    const have = new Set(Array.from(select.options).map((o) => o.value));
    for (const e of entities) {
      if (!have.has(e.name)) select.appendChild(el("option", { value: e.name }, e.name));
    }
  }

  function renderTotals(s) {
    const want = selectedEntity();
    let t = s.totals;
    if (want) {
      t = s.entities.find((e) => e.name === want) || { accepted: 0, committed: 0, rejected: 0, dead: 0, accepted_per_s: 0, committed_per_s: 0, rejected_per_s: 0, dead_per_s: 0 };
    }
    for (const k of ["accepted", "committed", "rejected", "dead"]) {
      setNumber($("total-" + k), t[k]);
      $("rate-" + k).textContent = rateText(t[k + "_per_s"]);
    }
    // Committed counts every worker's rows (load --via-nats, other replicas);
    // accepted only this nomnomd's 202s: more committed than accepted here
    // came from elsewhere, at least the difference.
    const elsewhere = t.committed - t.accepted;
    $("committed-elsewhere").textContent =
      elsewhere > 0 ? "at least " + fmt.format(elsewhere) + " from other sources (load --via-nats, other nomnomd)" : "";
  }

  function renderEntities(s) {
    const want = selectedEntity();
    const body = $("entities").tBodies[0];
    const rows = [];
    for (const e of s.entities) {
      if (want && e.name !== want) continue;
      const tr = el("tr", { "data-entity": e.name });
      tr.appendChild(el("td", null, e.name));
      for (const k of ["accepted", "committed", "rejected", "dead"]) {
        const td = el("td", { "data-key": k });
        const v = el("span", { "data-value": String(e[k]) }, fmt.format(e[k]));
        td.appendChild(v);
        td.appendChild(el("span", { class: "sub" }, rateText(e[k + "_per_s"])));
        tr.appendChild(td);
      }
      rows.push(tr);
      // Nested entities: committed rows per table (root first). Accepted,
      // rejected and dead count root rows, each with its derived rows.
      for (const t of e.tables || []) {
        const sub = el("tr", { class: "table-row", "data-entity": e.name, "data-table": t.table });
        sub.appendChild(el("td", null, "\u21b3 " + t.table));
        for (const k of ["accepted", "committed", "rejected", "dead"]) {
          const td = el("td", { "data-key": k });
          if (k === "committed") {
            td.appendChild(el("span", { "data-value": String(t.committed) }, fmt.format(t.committed)));
            td.appendChild(el("span", { class: "sub" }, rateText(t.committed_per_s)));
          } else {
            td.appendChild(el("span", { class: "muted" }, "\u2013"));
          }
          sub.appendChild(td);
        }
        rows.push(sub);
      }
    }
    body.replaceChildren(...rows);
  }

  function kv(dl, name, value, cls) {
    const d = el("div");
    d.appendChild(el("dt", null, name));
    const dd = el("dd", cls ? { class: cls } : null, value);
    d.appendChild(dd);
    dl.appendChild(d);
  }

  function renderPipeline(s) {
    const p = s.pipeline;
    const dl = $("pipeline");
    dl.replaceChildren();
    kv(dl, "NATS", p.nats.connected ? "connected" : "disconnected", p.nats.connected ? "ok" : "down");
    kv(dl, "PostgreSQL", p.postgres.connected ? "connected" : "unreachable" + (p.postgres.error ? ": " + p.postgres.error : ""), p.postgres.connected ? "ok" : "down");
    kv(dl, "Stream " + p.stream.name, orDash(p.stream.messages) + " msgs · " + bytesText(p.stream.bytes));
    kv(dl, "Consumer lag", orDash(p.consumer.lag) + " (" + orDash(p.consumer.pending) + " pending, " + orDash(p.consumer.ack_pending) + " unacked)");
    kv(dl, "Redelivered", orDash(p.consumer.redelivered));
    kv(dl, "API requests", rateText(s.api.requests_per_s));
    kv(dl, "API latency p50 / p99", (s.api.p50_ms == null ? "–" : s.api.p50_ms + " ms") + " / " + (s.api.p99_ms == null ? "–" : s.api.p99_ms + " ms"));
    kv(dl, "Workers here", String(p.workers.count));
    const procs = (p.processes || []).map((x) => {
      const li = el("li", { "data-process": x.process });
      // "<role>@<host>:<pid>": the program (nomnomd or worker), then where it runs.
      const at = x.process.indexOf("@");
      li.appendChild(el("strong", null, at > 0 ? x.process.slice(0, at) : "worker"));
      li.appendChild(document.createTextNode(" on " + (at > 0 ? x.process.slice(at + 1) : x.process)));
      li.appendChild(document.createTextNode(" · " + x.workers + " worker" + (x.workers === 1 ? "" : "s") + ": " + x.states +
        " · " + fmt.format(x.rows_committed) + " rows committed · seen " + x.age_s.toFixed(1) + " s ago"));
      if (x.error) li.appendChild(el("span", { class: "error" }, x.error));
      return li;
    });
    $("processes").replaceChildren(...procs);
    $("processes-empty").hidden = procs.length > 0;
    const ul = $("workers");
    ul.replaceChildren(...p.workers.list.map((w) => {
      const li = el("li", { "data-state": w.state }, w.name + ": " + w.state);
      if (w.error) li.title = w.error;
      return li;
    }));
  }

  function renderEvents(listId, emptyId, events) {
    const want = selectedEntity();
    const items = [];
    for (const ev of events) {
      if (want && ev.entity !== want) continue;
      const li = el("li", { "data-id": ev.id });
      const meta = el("div", { class: "meta" });
      if (ev.id) {
        const a = el("a", { class: "id", href: "/dashboard/status/" + encodeURIComponent(ev.id) }, ev.id);
        meta.appendChild(a);
      } else {
        meta.appendChild(el("span", { class: "id" }, "(no id)"));
      }
      if (ev.entity) meta.appendChild(el("span", null, ev.entity));
      if (ev.line) meta.appendChild(el("span", null, "line " + ev.line));
      meta.appendChild(el("span", null, ev.time));
      li.appendChild(meta);
      li.appendChild(el("div", { class: "reason" }, ev.reason));
      items.push(li);
    }
    $(listId).replaceChildren(...items);
    $(emptyId).hidden = items.length > 0;
  }

  function render(s) {
    last = s;
    $("login").hidden = true;
    $("board").hidden = false;
    if (!chart) chart = makeChart();
    syncFilter(s.entities);
    renderTotals(s);
    renderEntities(s);
    renderPipeline(s);
    renderEvents("dead-letters", "dead-letters-empty", s.dead_letters);
    renderEvents("rejects", "rejects-empty", s.rejects);
    if (chart) chart.setData([s.history.t, s.history.accepted_per_s, s.history.committed_per_s]);
    $("updated").textContent = s.time;
    document.body.dataset.seq = String(s.seq);
  }

  $("entity-filter").addEventListener("change", () => {
    if (last) render(last);
  });

  // ---- data flow ---------------------------------------------------------------

  function later(fn, ms) {
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      fn();
    }, ms);
  }

  function askToken(message) {
    if (source) {
      source.close();
      source = null;
    }
    setConn("down", "token needed");
    $("board").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  function follow() {
    if (source) source.close();
    source = new EventSource("/dashboard/events");
    source.onopen = () => setConn("live", "live");
    source.onmessage = (e) => {
      let s;
      try {
        s = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      setConn("live", "live");
      render(s);
    };
    source.onerror = () => {
      // The browser retries by itself; when it gave up (the session expired,
      // or too many viewers), start over from the snapshot.
      if (source && source.readyState === EventSource.CLOSED) {
        setConn("down", "disconnected");
        source = null;
        later(start, 3000);
      } else {
        setConn("down", "reconnecting");
      }
    };
  }

  // The page as nomnomd served it may carry the current snapshot (a data
  // block, not a script): show it at once, then follow the event stream.
  function embeddedSnapshot() {
    const block = $("snapshot");
    if (!block) return null;
    block.remove();
    try {
      return JSON.parse(block.textContent);
    } catch (err) {
      return null;
    }
  }

  async function start() {
    const embedded = embeddedSnapshot();
    if (embedded) {
      render(embedded);
      follow();
      return;
    }
    let r;
    try {
      r = await fetch("/dashboard/snapshot", { credentials: "same-origin", cache: "no-store" });
    } catch (err) {
      setConn("down", "unreachable");
      later(start, 3000);
      return;
    }
    if (r.status === 401) {
      askToken();
      return;
    }
    if (!r.ok) {
      setConn("down", "HTTP " + r.status);
      later(start, 3000);
      return;
    }
    render(await r.json());
    follow();
  }

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("token");
    const token = input.value;
    input.value = "";
    let r;
    try {
      r = await fetch("/dashboard/session", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: token }),
      });
    } catch (err) {
      $("login-error").textContent = "nomnomd is unreachable";
      return;
    }
    if (!r.ok) {
      const wait = r.headers.get("Retry-After");
      askToken(r.status === 401 ? "wrong token" : r.status === 429 ? "too many wrong tokens; try again in " + (wait || "60") + " s" : "HTTP " + r.status);
      return;
    }
    start();
  });

  start();
})();
