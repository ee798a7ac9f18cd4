// The optimistic direct COPY of --on-conflict nothing/update must give exactly
// the staging merge's results, also when the first conflict appears only in a
// later batch, or inside the first batch.
#include <catch2/catch.hpp>

#include "tests/support/cli_test_helpers.h"

using namespace nomnom;
using namespace nomnom::testing;
using namespace nomnom::testing::cli;

namespace {

std::string Rows(int from, int to, const std::string& comment) {
  std::string s;
  for (int i = from; i <= to; ++i) {
    auto o = Order("k" + std::to_string(i));
    o["comment"] = comment;
    s += Line(o);
  }
  return s;
}

}  // namespace

TEST_CASE("a conflict in a later batch switches to the merge without changing the outcome", "[cli][optimistic]") {
  auto conn = Connect();
  TempDir dir;
  for (const std::string mode : {"nothing", "update"}) {
    DYNAMIC_SECTION("mode " << mode) {
      const std::string table = UniqueName("optimistic");
      DropTables drop({table});
      Query(*conn, CreateOrdersSql(table));
      // k35 exists already; with 10-row batches it sits in the 4th batch.
      auto existing = Order("k35");
      existing["comment"] = "old";
      Query(*conn, "INSERT INTO " + QuoteIdent(table) +
                       " (order_key, customer_key, order_status, total_price, order_date, comment) VALUES ('k35', '" +
                       existing["customer_key"].get<std::string>() + "', 'O', 1, '2024-01-01', 'old')");
      const std::string file = dir.Write("rows_" + mode + ".ndjson", Rows(1, 50, "new"));
      CommandResult r = RunNomnom({"load", file, "--table", table, "--on-conflict", mode, "--batch-rows", "10",
                                   "--jobs", "1", "--json", "--quiet"});
      REQUIRE(r.exit_code == 0);
      auto j = Summary(r);
      CHECK(j["inserted"] == 49);
      if (mode == "nothing") {
        CHECK(j["skipped"] == 1);
        CHECK(QueryValue(*conn, "SELECT comment FROM " + QuoteIdent(table) + " WHERE order_key = 'k35'") == "old");
      } else {
        CHECK(j["updated"] == 1);
        CHECK(QueryValue(*conn, "SELECT comment FROM " + QuoteIdent(table) + " WHERE order_key = 'k35'") == "new");
      }
      CHECK(Count(*conn, table) == "50");
      CHECK(QueryValue(*conn, "SELECT count(*) FROM " + QuoteIdent(table) + " WHERE comment = 'new'") ==
            (mode == "nothing" ? "49" : "50"));
    }
  }
}

TEST_CASE("a key repeated inside the first batch falls back to the merge (first wins / last wins)",
          "[cli][optimistic]") {
  auto conn = Connect();
  TempDir dir;
  for (const std::string mode : {"nothing", "update"}) {
    DYNAMIC_SECTION("mode " << mode) {
      const std::string table = UniqueName("optimistic_dup");
      DropTables drop({table});
      std::string body = Rows(1, 5, "first");
      auto again = Order("k3");
      again["comment"] = "second";
      body += Line(again);
      const std::string file = dir.Write("dup_" + mode + ".ndjson", body);
      CommandResult r =
          RunNomnom({"load", file, "--table", table, "--on-conflict", mode, "--jobs", "1", "--json", "--quiet"});
      REQUIRE(r.exit_code == 0);
      auto j = Summary(r);
      CHECK(j["inserted"] == 5);
      CHECK(Count(*conn, table) == "5");
      CHECK(QueryValue(*conn, "SELECT comment FROM " + QuoteIdent(table) + " WHERE order_key = 'k3'") ==
            (mode == "nothing" ? "first" : "second"));
      if (mode == "nothing") {
        CHECK(j["skipped"] == 1);
      } else {
        CHECK(j["updated"] == 1);
      }
    }
  }
}
