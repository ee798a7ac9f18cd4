// Rows PostgreSQL rejects for reasons outside SQLSTATE classes 22/23 (a
// trigger raising an exception, an index row too large) are isolated like any
// bad row: `nomnom load` rejects them with PostgreSQL's message, file and
// line, and every other row loads, in every conflict mode.
#include <catch2/catch.hpp>
#include <random>

#include "tests/support/cli_test_helpers.h"

using namespace nomnom;
using namespace nomnom::testing;
using namespace nomnom::testing::cli;
using nlohmann::json;

namespace {

// A BEFORE INSERT OR UPDATE trigger on `table` that raises P0001 "no x please"
// for the row whose order_key is 'x'. The function is dropped with the table
// (CASCADE drops the trigger, the function is dropped explicitly).
void AddNoXTrigger(PgConnection& conn, const std::string& table, const std::string& function) {
  Query(conn, "CREATE OR REPLACE FUNCTION " + QuoteIdent(function) +
                  "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                  " IF NEW.order_key = 'x' THEN RAISE EXCEPTION 'no x please'; END IF;"
                  " RETURN NEW; END $$");
  Query(conn, "CREATE TRIGGER no_x BEFORE INSERT OR UPDATE ON " + QuoteIdent(table) +
                  " FOR EACH ROW EXECUTE FUNCTION " + QuoteIdent(function) + "()");
}

class DropFunction {
 public:
  explicit DropFunction(std::string name) : name_(std::move(name)) {}
  ~DropFunction() {
    auto conn = PgConnection::Connect(DatabaseUrl(), "nomnom-tests-cleanup");
    if (conn.ok()) (*conn)->TryExec("DROP FUNCTION IF EXISTS " + QuoteIdent(name_) + "() CASCADE");
  }
  DropFunction(const DropFunction&) = delete;
  DropFunction& operator=(const DropFunction&) = delete;

 private:
  std::string name_;
};

}  // namespace

TEST_CASE("a row a trigger rejects (P0001) is rejected with its line; the other rows load, in every conflict mode",
          "[cli][isolation]") {
  TempDir dir;
  const std::string table = UniqueName("iso_trigger");
  const std::string function = UniqueName("iso_no_x");
  DropFunction drop_function(function);
  DropTables drop({table});
  auto conn = Connect();
  // Line 3 of five is the one the trigger refuses.
  const std::vector<std::string> keys = {"a", "b", "x", "c", "d"};
  std::string content;
  for (const auto& k : keys) content += Line(Order(k));
  const std::string path = dir.Write("o.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";

  for (const char* mode : {"error", "nothing", "update"}) {
    for (const bool existing : {false, true}) {
      // `existing`: the four good keys are already in the table, so nothing
      // skips them and update runs the merge's DO UPDATE through the trigger.
      if (existing && std::string(mode) == "error") continue;
      DYNAMIC_SECTION("on-conflict " << mode << (existing ? ", keys already present" : ", fresh table")) {
        Query(*conn, "DROP TABLE IF EXISTS " + QuoteIdent(table));
        Query(*conn, CreateOrdersSql(table));
        if (existing) {
          for (const auto& k : keys) {
            if (k == "x") continue;
            Query(*conn, "INSERT INTO " + QuoteIdent(table) + " (" + kOrderColumns + ") VALUES ('" + k +
                             "', 'old', 'O', 1, '1996-01-01', NULL, NULL, 0, 'old')");
          }
        }
        AddNoXTrigger(*conn, table, function);
        CommandResult r =
            RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "--rejects", rejects, "--json"});
        INFO(r.err);
        REQUIRE(r.exit_code == 3);
        json s = Summary(r);
        CHECK(s["rows_read"] == 5);
        CHECK(s["rejected"] == 1);
        const std::string m(mode);
        CHECK(s["inserted"] == (existing ? 0 : 4));
        CHECK(s["updated"] == (existing && m == "update" ? 4 : 0));
        CHECK(s["skipped"] == (existing && m == "nothing" ? 4 : 0));
        auto rows = TableRows(*conn, table);
        CHECK(rows.size() == 4);
        CHECK(rows.count("x") == 0);
        for (const auto& k : {"a", "b", "c", "d"}) {
          INFO("key " << k);
          REQUIRE(rows.count(k) == 1);
          const bool old = existing && m == "nothing";
          CHECK(rows[k][8] == std::optional<std::string>(old ? "old" : "comment for " + std::string(k)));
        }
        auto recs = ReadRejects(rejects);
        REQUIRE(recs.size() == 1);
        CHECK(recs[0]["file"] == path);
        CHECK(recs[0]["line"] == 3);
        CHECK(recs[0]["raw"] == Order("x").dump());
        CHECK_THAT(recs[0]["error"].get<std::string>(), Catch::Contains("no x please") && Catch::Contains("P0001"));
        Query(*conn, "DROP TABLE " + QuoteIdent(table));
        Query(*conn, "DROP FUNCTION " + QuoteIdent(function) + "()");
      }
    }
  }
}

TEST_CASE("an index row too large (54000) is a rejected row; the other rows load, in every conflict mode",
          "[cli][isolation]") {
  TempDir dir;
  const std::string table = UniqueName("iso_bigkey");
  DropTables drop({table});
  auto conn = Connect();
  // 10 kB of random characters: pglz cannot shrink it under the btree limit
  // (about 2.7 kB per index row).
  std::mt19937 rng(7);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string huge;
  for (int i = 0; i < 10000; ++i) huge += alphabet[rng() % alphabet.size()];
  std::string content;
  for (int i = 1; i <= 5; ++i) {
    auto o = Order("k" + std::to_string(i));
    if (i == 4) o["comment"] = huge;
    content += Line(o);
  }
  const std::string path = dir.Write("o.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";
  for (const char* mode : {"error", "nothing", "update"}) {
    DYNAMIC_SECTION("on-conflict " << mode) {
      Query(*conn, "DROP TABLE IF EXISTS " + QuoteIdent(table));
      Query(*conn, CreateOrdersSql(table));
      Query(*conn, "CREATE INDEX ON " + QuoteIdent(table) + " (comment)");
      CommandResult r =
          RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "--rejects", rejects, "--json"});
      INFO(r.err);
      REQUIRE(r.exit_code == 3);
      json s = Summary(r);
      CHECK(s["inserted"] == 4);
      CHECK(s["rejected"] == 1);
      auto rows = TableRows(*conn, table);
      CHECK(rows.size() == 4);
      CHECK(rows.count("k4") == 0);
      auto recs = ReadRejects(rejects);
      REQUIRE(recs.size() == 1);
      CHECK(recs[0]["line"] == 4);
      CHECK_THAT(recs[0]["error"].get<std::string>(), Catch::Contains("54000"));
    }
  }
}

TEST_CASE("errors no row causes still stop the load: a missing permission is fatal, not thousands of rejects",
          "[cli][isolation]") {
  TempDir dir;
  const std::string table = UniqueName("iso_readonly");
  DropTables drop({table});
  auto conn = Connect();
  Query(*conn, CreateOrdersSql(table));
  // A trigger raising insufficient_privilege (42501) for every row stands in
  // for a revoked permission: no row is to blame, so no row may be rejected.
  const std::string function = UniqueName("iso_deny");
  DropFunction drop_function(function);
  Query(*conn, "CREATE OR REPLACE FUNCTION " + QuoteIdent(function) +
                   "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                   " RAISE EXCEPTION 'denied for every row' USING ERRCODE = '42501'; END $$");
  Query(*conn, "CREATE TRIGGER deny BEFORE INSERT ON " + QuoteIdent(table) + " FOR EACH ROW EXECUTE FUNCTION " +
                   QuoteIdent(function) + "()");
  std::string content;
  for (int i = 0; i < 50; ++i) content += Line(Order("p" + std::to_string(i)));
  const std::string path = dir.Write("o.ndjson", content);
  for (const char* mode : {"error", "nothing", "update"}) {
    DYNAMIC_SECTION("on-conflict " << mode) {
      CommandResult r = RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "-q"});
      CHECK(r.exit_code == 1);
      CHECK_THAT(r.err, Catch::Contains("denied for every row") && Catch::Contains("42501"));
      CHECK(Count(*conn, table) == "0");
    }
  }
}
