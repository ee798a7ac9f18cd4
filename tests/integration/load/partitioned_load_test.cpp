// `nomnom load` into partitioned tables (PARTITION BY HASH, RANGE, LIST on the
// key) in every conflict mode. Before the fix, --on-conflict update failed on
// every partitioned table with "cannot retrieve a system column in this
// context" (the merge returned xmax, which a partitioned table cannot).
#include <catch2/catch.hpp>

#include "tests/support/cli_test_helpers.h"

using namespace nomnom;
using namespace nomnom::testing;
using namespace nomnom::testing::cli;
using nlohmann::json;

namespace {

// Creates `table` with the Order columns, partitioned by `kind` on order_key
// into partitions named <table>_p<i>; the keys "k0".."k99" land in several.
void CreatePartitioned(PgConnection& conn, const std::string& table, const std::string& kind) {
  const std::string base = CreateOrdersSql(table);
  Query(conn, base + " PARTITION BY " + kind + " (order_key)");
  auto part = [&](int i, const std::string& bounds) {
    Query(conn, "CREATE TABLE " + QuoteIdent(table + "_p" + std::to_string(i)) + " PARTITION OF " + QuoteIdent(table) +
                    " " + bounds);
  };
  if (kind == "HASH") {
    for (int i = 0; i < 4; ++i) part(i, "FOR VALUES WITH (MODULUS 4, REMAINDER " + std::to_string(i) + ")");
  } else if (kind == "RANGE") {
    part(0, "FOR VALUES FROM (MINVALUE) TO ('k3')");
    part(1, "FOR VALUES FROM ('k3') TO ('k6')");
    part(2, "FOR VALUES FROM ('k6') TO (MAXVALUE)");
  } else {
    part(0, "FOR VALUES IN ('k1', 'k2', 'k3', 'k10', 'k20')");
    part(1, "FOR VALUES IN ('k4', 'k5', 'k50', 'k51')");
    part(2, "DEFAULT");
  }
}

std::string Keys(int from, int to, const std::string& comment) {
  std::string s;
  for (int i = from; i < to; ++i) {
    auto o = Order("k" + std::to_string(i));
    o["comment"] = comment;
    s += Line(o);
  }
  return s;
}

}  // namespace

TEST_CASE("load into a partitioned table works in every conflict mode", "[cli][conflict][partitioned]") {
  const std::string kind = GENERATE(as<std::string>{}, "HASH", "RANGE", "LIST");
  const std::string mode = GENERATE(as<std::string>{}, "error", "nothing", "update", "");
  DYNAMIC_SECTION(kind << " x " << (mode.empty() ? "default" : mode)) {
    TempDir dir;
    const std::string table = UniqueName("part");
    DropTables drop({table});
    auto conn = Connect();
    CreatePartitioned(*conn, table, kind);
    // Several partitions hold rows.
    const std::string first = dir.Write("a.ndjson", Keys(0, 100, "first"));
    // Keys 50..149: 50 already loaded, 50 new.
    const std::string second = dir.Write("b.ndjson", Keys(50, 150, "second"));
    std::vector<std::string> args = {"load", first, "--table", table, "--json"};
    if (!mode.empty()) args.insert(args.end(), {"--on-conflict", mode});
    CommandResult r1 = RunNomnom(args);
    INFO(r1.err);
    REQUIRE(r1.exit_code == 0);
    CHECK(Summary(r1)["inserted"] == 100);
    CHECK(QueryValue(*conn, "SELECT count(DISTINCT tableoid) FROM " + QuoteIdent(table)) != "1");

    args[1] = second;
    CommandResult r2 = RunNomnom(args);
    INFO(r2.err);
    json s = Summary(r2);
    CHECK(s["rows_read"] == 100);
    CHECK(Count(*conn, table) == "150");
    const std::string kept_first =
        QueryValue(*conn, "SELECT count(*) FROM " + QuoteIdent(table) + " WHERE comment = 'first'");
    if (mode == "error") {
      // The 50 existing keys are duplicate-key rejects; the 50 new rows commit.
      CHECK(r2.exit_code == 3);
      CHECK(s["inserted"] == 50);
      CHECK(s["rejected"] == 50);
      CHECK(kept_first == "100");
    } else if (mode == "update") {
      CHECK(r2.exit_code == 0);
      CHECK(s["inserted"] == 50);
      CHECK(s["updated"] == 50);
      CHECK(kept_first == "50");
    } else {
      CHECK(r2.exit_code == 0);
      CHECK(s["inserted"] == 50);
      CHECK(s["skipped"] == 50);
      CHECK(kept_first == "100");
    }
    // A file repeating keys within itself (the merge in passes) in update mode.
    if (mode == "update") {
      const std::string third = dir.Write("c.ndjson", Keys(0, 10, "third-a") + Keys(0, 10, "third-b"));
      args[1] = third;
      CommandResult r3 = RunNomnom(args);
      INFO(r3.err);
      REQUIRE(r3.exit_code == 0);
      json s3 = Summary(r3);
      CHECK(s3["inserted"] == 0);
      CHECK(s3["updated"] == 20);
      CHECK(QueryValue(*conn, "SELECT count(*) FROM " + QuoteIdent(table) + " WHERE comment = 'third-b'") == "10");
    }
  }
}
