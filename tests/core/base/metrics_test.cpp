#include "core/base/metrics.h"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using namespace nomnom;

TEST_CASE("metrics render as Prometheus text", "[metrics]") {
  MetricsRegistry r;
  r.Counter("nomnom_rows_total", "Rows", {{"entity", "Order"}}).Inc(5);
  r.Gauge("nomnom_lag", "Lag").Set(2.5);
  auto& h = r.Histogram("nomnom_latency_seconds", "Latency", {{"route", "/x"}}, {0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  const std::string text = r.Render();
  CHECK_THAT(text, Catch::Contains("# TYPE nomnom_rows_total counter\nnomnom_rows_total{entity=\"Order\"} 5\n"));
  CHECK_THAT(text, Catch::Contains("nomnom_lag 2.5\n"));
  CHECK_THAT(text, Catch::Contains("nomnom_latency_seconds_bucket{route=\"/x\",le=\"0.10000000000000001\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("nomnom_latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("nomnom_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("nomnom_latency_seconds_sum{route=\"/x\"} 5.5499999999999998\n"));
  CHECK_THAT(text, Catch::Contains("nomnom_latency_seconds_count{route=\"/x\"} 3\n"));
}

TEST_CASE("label values are escaped", "[metrics]") {
  CHECK(RenderLabels({{"a", "x\"y\\z\n"}}) == "{a=\"x\\\"y\\\\z\\n\"}");
  CHECK(RenderLabels({}).empty());
}

TEST_CASE("the same name and labels give the same metric; kinds cannot mix", "[metrics]") {
  MetricsRegistry r;
  MetricCounter& a = r.Counter("c", "h", {{"k", "1"}});
  MetricCounter& b = r.Counter("c", "h", {{"k", "1"}});
  CHECK(&a == &b);
  CHECK(&a != &r.Counter("c", "h", {{"k", "2"}}));
  CHECK_THROWS(r.Gauge("c", "h"));
}

TEST_CASE("counters are exact under concurrency", "[metrics]") {
  MetricsRegistry r;
  MetricCounter& c = r.Counter("c", "h");
  MetricHistogram& h = r.Histogram("h", "h");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.Inc();
        h.Observe(0.001);
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(c.Value() == 40000);
  CHECK(h.Count() == 40000);
  CHECK(h.CumulativeCounts().back() == 40000);
}
