// `nomnom top`: URL parsing and the text rendering of a snapshot.
#include <catch2/catch.hpp>

#include "cli/top.h"
#include "daemon/dashboard_snapshot.h"

using namespace nomnom;

TEST_CASE("top: URLs", "[top]") {
  auto t = ParseTopUrl("http://127.0.0.1:8080");
  REQUIRE(t.ok());
  CHECK(t->host == "127.0.0.1");
  CHECK(t->port == "8080");
  CHECK(t->base_path.empty());
  t = ParseTopUrl("localhost:9/nomnom/");
  REQUIRE(t.ok());
  CHECK(t->host == "localhost");
  CHECK(t->base_path == "/nomnom");
  t = ParseTopUrl("http://[::1]:81");
  REQUIRE(t.ok());
  CHECK(t->host == "::1");
  CHECK(t->port == "81");
  CHECK(ParseTopUrl("http://example.org")->port == "80");
  CHECK_FALSE(ParseTopUrl("https://x:1").ok());
  CHECK_FALSE(ParseTopUrl("http://:80").ok());
  CHECK_FALSE(ParseTopUrl("http://h:8x").ok());
}

TEST_CASE("top: renders a snapshot within the width", "[top]") {
  DashboardInputs in;
  in.time = "2026-01-01T00:00:00Z";
  in.accepted = 1234567;
  in.committed = 1234000;
  in.dead = 3;
  in.nats_connected = true;
  in.stream = "MESSAGES";
  in.stream_messages = 10;
  in.stream_bytes = 2048;
  in.entities = {{"Order", 1234567, 2, 1234000, 3, "orders", {}}};
  in.workers = {{"worker-0", "fetching", ""}};
  in.processes = {DashboardProcess{"pod-1:7", 4, "fetching 3, committing 1", "", 99, 0.5}};
  in.dead_letters = {DashboardEvent{"t1", "b-1", "Order", 7, std::string(500, 'x')}};
  SnapshotBuilder b;
  const std::string text = RenderTop(b.Build(in), "http://h:1", 80);
  CHECK(text.find("1,234,567") != std::string::npos);
  CHECK(text.find("PostgreSQL UNREACHABLE") != std::string::npos);
  CHECK(text.find("2.0 KiB") != std::string::npos);
  CHECK(text.find("b-1 line 7") != std::string::npos);
  CHECK(text.find("LAST REJECTS: none") != std::string::npos);
  CHECK(text.find("worker-0:fetching") != std::string::npos);
  CHECK(text.find("process pod-1:7: fetching 3, committing 1, 99 rows committed") != std::string::npos);
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    CHECK(end - start <= 80);
    start = end + 1;
  }
  CHECK(text.find("order_line_items") == std::string::npos);  // flat entity: no table lines
  CHECK(RenderTop("{\"x\":1}", "u", 80).starts_with("not a dashboard snapshot"));
  CHECK(RenderTop("nonsense", "u", 80).starts_with("not a dashboard snapshot"));
}

TEST_CASE("top: nested entities list committed rows per table", "[top]") {
  DashboardInputs in;
  in.time = "2026-01-01T00:00:00Z";
  DashboardEntityInput order;
  order.name = "Order";
  order.accepted = 10;
  order.committed = 10;
  order.table = "orders";
  order.derived = {{"order_line_items", 41}};
  in.entities = {order};
  SnapshotBuilder b;
  const std::string text = RenderTop(b.Build(in), "http://h:1", 80);
  const size_t items = text.find("  order_line_items ");
  REQUIRE(items != std::string::npos);
  const std::string line = text.substr(items, text.find('\n', items) - items);
  CHECK(line.find(" 41 ") != std::string::npos);
  CHECK(text.find("  orders") != std::string::npos);
}

TEST_CASE("top: a 401 says how to give the token", "[top]") {
  const std::string none = nomnom::SnapshotError("/dashboard/snapshot", 401, R"({"error":"missing token"})", false);
  CHECK(none.find("HTTP 401") != std::string::npos);
  CHECK(none.find("pass --token TOKEN or set NOMNOM_API_TOKEN") != std::string::npos);
  const std::string wrong = nomnom::SnapshotError("/dashboard/snapshot", 401, "{}", true);
  CHECK(wrong.find("refused the token") != std::string::npos);
  const std::string other = nomnom::SnapshotError("/dashboard/snapshot", 503, "no snapshot yet", false);
  CHECK(other == "GET /dashboard/snapshot: HTTP 503: no snapshot yet");
}
