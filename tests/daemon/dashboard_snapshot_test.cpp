// The dashboard's snapshot builder: rates, percentiles from histogram buckets,
// bounded lists and history.
#include "daemon/dashboard_snapshot.h"
#include "daemon/dashboard_sessions.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace nomnom;
using json = nlohmann::json;

namespace {

DashboardInputs Inputs(double t, uint64_t accepted, uint64_t committed) {
  DashboardInputs in;
  in.monotonic_s = t;
  in.unix_s = 1700000000 + t;
  in.time = "2026-01-01T00:00:00Z";
  in.accepted = accepted;
  in.committed = committed;
  in.entities.push_back(DashboardEntityInput{"Order", accepted, 0, committed, 0, "", {}});
  in.api_latency.bounds = {0.001, 0.01, 0.1};
  in.api_latency.cumulative = {0, 0, 0, 0};
  return in;
}

}  // namespace

TEST_CASE("dashboard: rate per second", "[dashboard]") {
  CHECK(RatePerSecond(100, 300, 2.0) == Approx(100.0));
  CHECK(RatePerSecond(100, 100, 1.0) == 0.0);
  CHECK(RatePerSecond(100, 300, 0.0) == 0.0);   // no time passed
  CHECK(RatePerSecond(100, 300, -1.0) == 0.0);  // clock went back
  CHECK(RatePerSecond(300, 100, 1.0) == 0.0);   // counter went back (a restart)
}

TEST_CASE("dashboard: quantiles from histogram buckets", "[dashboard]") {
  const std::vector<double> bounds = {1, 2, 4};
  const std::vector<uint64_t> zero = {0, 0, 0, 0};
  // 10 observations in (1, 2], nothing else: the median is in the middle of that bucket.
  CHECK(*HistogramQuantile(0.5, bounds, zero, {0, 10, 10, 10}) == Approx(1.5));
  CHECK(*HistogramQuantile(0.99, bounds, zero, {0, 10, 10, 10}) == Approx(1.99));
  // The first bucket starts at 0.
  CHECK(*HistogramQuantile(0.5, bounds, zero, {4, 4, 4, 4}) == Approx(0.5));
  // 50 in [0,1], 50 in (2,4]: p99 is in the last finite bucket.
  CHECK(*HistogramQuantile(0.99, bounds, zero, {50, 50, 100, 100}) == Approx(2 + 2 * 49.0 / 50.0));
  // In +Inf: the largest finite bound.
  CHECK(*HistogramQuantile(0.99, bounds, zero, {0, 0, 0, 7}) == Approx(4.0));
  // Only what was observed between the readings counts.
  CHECK(*HistogramQuantile(0.5, bounds, {100, 100, 100, 100}, {100, 110, 110, 110}) == Approx(1.5));
  // Nothing observed, mismatched sizes, a counter that went back, a bad q.
  CHECK_FALSE(HistogramQuantile(0.5, bounds, zero, zero));
  CHECK_FALSE(HistogramQuantile(0.5, bounds, zero, {1, 1, 1}));
  CHECK_FALSE(HistogramQuantile(0.5, bounds, {5, 5, 5, 5}, {1, 1, 1, 1}));
  CHECK_FALSE(HistogramQuantile(1.0, bounds, zero, {1, 1, 1, 1}));
}

TEST_CASE("dashboard: recent events are bounded, newest first", "[dashboard]") {
  RecentEvents ev(3);
  for (int i = 1; i <= 5; ++i) ev.Add(DashboardEvent{"t", "id" + std::to_string(i), "Order", 0, "why"});
  auto list = ev.Newest();
  REQUIRE(list.size() == 3);
  CHECK(list[0].id == "id5");
  CHECK(list[2].id == "id3");
  CHECK(ev.added() == 5);
  RecentEvents none(0);
  none.Add(DashboardEvent{});
  CHECK(none.Newest().empty());
}

TEST_CASE("dashboard: snapshot rates from the last two inputs", "[dashboard]") {
  SnapshotBuilder b;
  json s1 = json::parse(b.Build(Inputs(10.0, 100, 50)));
  CHECK(s1["seq"] == 1);
  CHECK(s1["totals"]["accepted"] == 100);
  CHECK(s1["totals"]["accepted_per_s"] == 0.0);  // nothing to compare with yet
  json s2 = json::parse(b.Build(Inputs(12.0, 500, 250)));
  CHECK(s2["totals"]["accepted_per_s"].get<double>() == Approx(200.0));
  CHECK(s2["totals"]["committed_per_s"].get<double>() == Approx(100.0));
  CHECK(s2["entities"][0]["name"] == "Order");
  CHECK(s2["entities"][0]["accepted_per_s"].get<double>() == Approx(200.0));
  CHECK(s2["interval_s"].get<double>() == Approx(2.0));
  // An entity that appears later has no rate yet.
  DashboardInputs in3 = Inputs(13.0, 600, 300);
  in3.entities.push_back(DashboardEntityInput{"Customer", 7, 1, 0, 0, "", {}});
  json s3 = json::parse(b.Build(in3));
  CHECK(s3["entities"][1]["accepted"] == 7);
  CHECK(s3["entities"][1]["accepted_per_s"] == 0.0);
  CHECK(s3["entities"][0]["accepted_per_s"].get<double>() == Approx(100.0));
  // The chart history holds one point per build.
  CHECK(s3["history"]["t"].size() == 3);
  CHECK(s3["history"]["accepted_per_s"][1].get<double>() == Approx(200.0));
}

TEST_CASE("dashboard: committed rates go by the time between database readings", "[dashboard]") {
  SnapshotBuilder b;
  DashboardInputs in = Inputs(10.0, 0, 100);
  in.db_read_s = 9.5;
  b.Build(in);
  // The next snapshot a second later; the counters were read 0.5 s apart.
  in = Inputs(11.0, 0, 150);
  in.db_read_s = 10.0;
  json s = json::parse(b.Build(in));
  CHECK(s["totals"]["committed_per_s"].get<double>() == Approx(100.0));
  CHECK(s["entities"][0]["committed_per_s"].get<double>() == Approx(100.0));
  // No new reading: the last rate stands (not 0, not a spike later).
  in = Inputs(12.0, 0, 150);
  in.db_read_s = 10.0;
  s = json::parse(b.Build(in));
  CHECK(s["totals"]["committed_per_s"].get<double>() == Approx(100.0));
  CHECK(s["entities"][0]["committed_per_s"].get<double>() == Approx(100.0));
  // A reading 1.5 s after the last: 150 rows / 1.5 s.
  in = Inputs(13.0, 0, 300);
  in.db_read_s = 11.5;
  s = json::parse(b.Build(in));
  CHECK(s["totals"]["committed_per_s"].get<double>() == Approx(100.0));
  CHECK(s["history"]["committed_per_s"][3].get<double>() == Approx(100.0));
}

TEST_CASE("dashboard: history is bounded", "[dashboard]") {
  SnapshotOptions o;
  o.history_points = 4;
  SnapshotBuilder b(o);
  json s;
  for (int i = 0; i < 10; ++i) s = json::parse(b.Build(Inputs(i, static_cast<uint64_t>(i) * 10, 0)));
  CHECK(s["history"]["t"].size() == 4);
  CHECK(s["history"]["t"][3].get<double>() == Approx(1700000009));
}

TEST_CASE("dashboard: API request rate and percentiles over the window", "[dashboard]") {
  SnapshotOptions o;
  o.latency_window = 2;
  SnapshotBuilder b(o);
  DashboardInputs in = Inputs(0, 0, 0);
  json s = json::parse(b.Build(in));
  CHECK(s["api"]["p50_ms"].is_null());  // nothing observed
  CHECK(s["api"]["requests_per_s"] == 0.0);
  in.monotonic_s = 1;
  in.api_latency.cumulative = {10, 20, 20, 20};  // 10 in [0,1ms], 10 in (1ms,10ms]
  s = json::parse(b.Build(in));
  CHECK(s["api"]["requests_per_s"].get<double>() == Approx(20.0));
  CHECK(s["api"]["p50_ms"].get<double>() == Approx(1.0));
  CHECK(s["api"]["p99_ms"].get<double>() == Approx(1 + 9 * 9.8 / 10));
  // Two readings later the first ones have left the window: only the new
  // observations (all in (10ms, 100ms]) count.
  in.monotonic_s = 2;
  s = json::parse(b.Build(in));
  in.monotonic_s = 3;
  in.api_latency.cumulative = {10, 20, 30, 30};
  s = json::parse(b.Build(in));
  CHECK(s["api"]["window_s"].get<double>() == Approx(2.0));
  CHECK(s["api"]["requests_per_s"].get<double>() == Approx(5.0));
  CHECK(s["api"]["p50_ms"].get<double>() == Approx(55.0));
}

TEST_CASE("dashboard: pipeline, events and unknown readings", "[dashboard]") {
  SnapshotBuilder b;
  DashboardInputs in = Inputs(0, 0, 0);
  in.nats_connected = true;
  in.postgres_connected = false;
  in.postgres_error = "connection refused";
  in.stream_messages = 12;
  in.consumer_pending = 3;
  in.consumer_ack_pending = 2;
  in.worker_states = {{"fetching", 1}, {"backing off", 1}};
  in.workers = {{"worker-0", "fetching", ""}, {"worker-1", "backing off", "no database"}};
  in.processes = {DashboardProcess{"host-a:12", 2, "fetching 2", "", 42, 1.234}};
  in.dead_letters = {DashboardEvent{"t", "b1", "Order", 3, "violates check"}};
  in.rejects = {DashboardEvent{"t", "", "Order", 0, "\xff not utf-8"}};
  json s = json::parse(b.Build(in));
  CHECK(s["pipeline"]["nats"]["connected"] == true);
  CHECK(s["pipeline"]["postgres"]["error"] == "connection refused");
  CHECK(s["pipeline"]["stream"]["messages"] == 12);
  CHECK(s["pipeline"]["stream"]["bytes"].is_null());
  CHECK(s["pipeline"]["consumer"]["lag"] == 5);
  CHECK(s["pipeline"]["consumer"]["redelivered"].is_null());
  CHECK(s["pipeline"]["workers"]["count"] == 2);
  CHECK(s["pipeline"]["workers"]["states"]["backing off"] == 1);
  CHECK(s["pipeline"]["workers"]["list"][1]["error"] == "no database");
  CHECK(s["pipeline"]["processes"][0]["process"] == "host-a:12");
  CHECK(s["pipeline"]["processes"][0]["workers"] == 2);
  CHECK(s["pipeline"]["processes"][0]["age_s"].get<double>() == Approx(1.23));
  CHECK_FALSE(s["pipeline"]["processes"][0].contains("error"));
  CHECK(s["dead_letters"][0]["line"] == 3);
  CHECK(s["dead_letters"][0]["id"] == "b1");
  CHECK_FALSE(s["rejects"][0].contains("line"));
  CHECK(s["rejects"][0]["reason"].get<std::string>().find("not utf-8") != std::string::npos);
}

TEST_CASE("dashboard sessions: expire, are bounded, random", "[dashboard]") {
  DashboardSessions s(1000, 2);
  const std::string a = s.Create(0);
  CHECK(a.size() == 64);
  CHECK(s.Valid(a, 999));
  CHECK_FALSE(s.Valid(a, 1000));  // expired
  CHECK_FALSE(s.Valid(a, 10));    // and forgotten
  const std::string b = s.Create(100);
  const std::string c = s.Create(200);
  CHECK(b != c);
  const std::string d = s.Create(300);  // drops the oldest (b)
  CHECK(s.size() == 2);
  CHECK_FALSE(s.Valid(b, 301));
  CHECK(s.Valid(c, 301));
  CHECK(s.Valid(d, 301));
  CHECK_FALSE(s.Valid("", 301));
  CHECK_FALSE(s.Valid(std::string(64, '0'), 301));
}

TEST_CASE("dashboard sessions: cookies and constant-time compare", "[dashboard]") {
  CHECK(CookieValue("a=1; nomnom_dashboard=xyz; b=2", "nomnom_dashboard") == "xyz");
  CHECK(CookieValue("nomnom_dashboard=\"q\"", "nomnom_dashboard") == "q");
  CHECK(CookieValue("xnomnom_dashboard=1; a=2", "nomnom_dashboard").empty());
  CHECK(CookieValue("", "a").empty());
  CHECK(ConstantTimeEqual("secret", "secret"));
  CHECK_FALSE(ConstantTimeEqual("secreT", "secret"));
  CHECK_FALSE(ConstantTimeEqual("secret1", "secret"));
  CHECK_FALSE(ConstantTimeEqual("", "secret"));
}

TEST_CASE("dashboard: nested entities show committed rows per table", "[dashboard]") {
  SnapshotBuilder b;
  DashboardInputs in = Inputs(10.0, 100, 100);
  in.db_read_s = 10.0;
  in.entities[0].table = "orders";
  in.entities[0].derived = {{"order_line_items", 400}};
  in.entities.push_back(DashboardEntityInput{"Customer", 5, 0, 5, 0, "customers", {}});  // flat: no tables
  json s = json::parse(b.Build(in));
  const json& order = s["entities"][0];
  REQUIRE(order["tables"].size() == 2);
  CHECK(order["tables"][0]["table"] == "orders");  // the root first, with the entity's rows
  CHECK(order["tables"][0]["committed"] == 100);
  CHECK(order["tables"][1]["table"] == "order_line_items");
  CHECK(order["tables"][1]["committed"] == 400);
  CHECK(order["tables"][1]["committed_per_s"] == 0.0);  // no earlier reading
  CHECK_FALSE(s["entities"][1].contains("tables"));

  // Two seconds later: 100 more orders with 400 more line items.
  in = Inputs(12.0, 200, 200);
  in.db_read_s = 12.0;
  in.entities[0].table = "orders";
  in.entities[0].derived = {{"order_line_items", 800}};
  s = json::parse(b.Build(in));
  CHECK(s["entities"][0]["tables"][0]["committed_per_s"] == Approx(50.0));
  CHECK(s["entities"][0]["tables"][1]["committed"] == 800);
  CHECK(s["entities"][0]["tables"][1]["committed_per_s"] == Approx(200.0));

  // A snapshot without a new database reading keeps the last rates.
  in.monotonic_s = 13.0;
  s = json::parse(b.Build(in));
  CHECK(s["entities"][0]["tables"][1]["committed_per_s"] == Approx(200.0));
}

TEST_CASE("dashboard sessions: wrong tokens are limited per address and in all", "[dashboard]") {
  FailureLimiter::Limits l;
  l.max_per_key = 3;
  l.max_total = 5;
  l.window_ms = 1000;
  l.max_keys = 3;
  FailureLimiter f(l);
  for (int i = 0; i < 3; ++i) {
    CHECK(f.RetryAfterMs("a", 100) == 0);
    f.Failed("a", 100);
  }
  CHECK(f.RetryAfterMs("a", 100) == 1000);  // the window started at 100
  CHECK(f.RetryAfterMs("a", 600) == 500);
  CHECK(f.RetryAfterMs("b", 600) == 0);  // another address may still try
  f.Failed("b", 600);
  f.Failed("b", 600);  // 5 failures in all
  CHECK(f.RetryAfterMs("b", 700) == 400);
  CHECK(f.RetryAfterMs("c", 700) == 400);  // everyone waits for the total window
  CHECK(f.RetryAfterMs("a", 1100) == 0);   // both windows ended
  f.Failed("a", 1100);
  f.Succeeded("a");
  CHECK(f.keys() == 1);  // b's window (from 600) still runs
  // Tracking is bounded: a fourth address waits while three are tracked.
  f.Failed("x", 2000);
  f.Failed("y", 2100);
  f.Failed("z", 2200);
  CHECK(f.keys() == 3);
  CHECK(f.RetryAfterMs("w", 2300) == 700);  // until x's window ends
  CHECK(f.RetryAfterMs("x", 2300) == 0);    // known addresses are still judged by their own count
  CHECK(f.RetryAfterMs("w", 3000) == 0);
}

TEST_CASE("dashboard sessions: peer address without the port", "[dashboard]") {
  CHECK(PeerAddress("127.0.0.1:5555") == "127.0.0.1");
  CHECK(PeerAddress("[::1]:80") == "::1");
  CHECK(PeerAddress("::1") == "::1");
  CHECK(PeerAddress("") == "");
}
