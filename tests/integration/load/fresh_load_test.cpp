// `nomnom load --fresh` against a real PostgreSQL: the key is dropped for the
// load and built at the end; refusals (non-empty, FK-referenced, partitioned,
// other conflict modes, stdin); duplicate keys rejected with file and line, the
// first occurrence kept; a failed load undone. The crash cleanup is
// tests/e2e/fresh_crash.sh.
#include <catch2/catch.hpp>

#include "tests/support/cli_test_helpers.h"

using namespace nomnom;
using namespace nomnom::testing;
using namespace nomnom::testing::cli;
using nlohmann::json;

namespace {

// The primary key constraint's name and columns ("" when there is none).
std::string PrimaryKey(PgConnection& conn, const std::string& table) {
  return QueryValue(conn,
                    "SELECT coalesce((SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE contype = 'p' AND conrelid = '" +
                        QuoteIdent(table) + "'::regclass), '')");
}

// Marker rows a fresh load left for the table (0 when none, or no marker table).
std::string MarkerRows(PgConnection& conn, const std::string& table) {
  if (QueryValue(conn, "SELECT to_regclass('nomnom_fresh_loads') IS NOT NULL") != "t") return "0";
  return QueryValue(conn,
                    "SELECT count(*) FROM nomnom_fresh_loads WHERE table_oid = '" + QuoteIdent(table) + "'::regclass");
}

std::string Keys(const std::vector<std::string>& keys) {
  std::string content;
  for (const auto& k : keys) content += Line(Order(k));
  return content;
}

}  // namespace

TEST_CASE("load --fresh creates a missing table, loads every row and ends with the primary key", "[cli][fresh]") {
  TempDir dir;
  const std::string table = UniqueName("fresh_new");
  DropTables drop({table});
  auto conn = Connect();
  std::string content;
  for (int i = 1; i <= 2000; ++i) content += Line(Order("k" + std::to_string(i)));
  const std::string path = dir.Write("o.ndjson", content);

  CommandResult r = RunNomnom({"load", path, "--table", table, "--fresh", "--json", "--batch-rows", "300"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json s = Summary(r);
  CHECK(s["on_conflict"] == "error");
  CHECK(s["fresh"] == true);
  CHECK(s["inserted"] == 2000);
  CHECK(Count(*conn, table) == "2000");
  CHECK(PrimaryKey(*conn, table) == table + "_pkey PRIMARY KEY (order_key)");
  CHECK(MarkerRows(*conn, table) == "0");

  // The same into the now non-empty table: refused, nothing changed.
  CommandResult again = RunNomnom({"load", path, "--table", table, "--fresh"});
  CHECK(again.exit_code == 1);
  CHECK_THAT(again.err, Catch::Contains("--fresh refused") && Catch::Contains("is not empty"));
  CHECK(Count(*conn, table) == "2000");
  CHECK(PrimaryKey(*conn, table) == table + "_pkey PRIMARY KEY (order_key)");
  CHECK(MarkerRows(*conn, table) == "0");
}

TEST_CASE("load --fresh into an existing empty table keeps its key's name, other indexes and constraints",
          "[cli][fresh]") {
  TempDir dir;
  const std::string table = UniqueName("fresh_empty");
  DropTables drop({table});
  auto conn = Connect();
  Query(*conn, "CREATE TABLE " + QuoteIdent(table) +
                   " (order_key varchar(255) NOT NULL, customer_key varchar(255) NOT NULL,"
                   " order_status varchar(1) NOT NULL, total_price double precision NOT NULL CHECK (total_price >= 0),"
                   " order_date varchar(255) NOT NULL, order_priority varchar(255), clerk varchar(255),"
                   " ship_priority integer, comment text, CONSTRAINT my_key PRIMARY KEY (order_key))");
  Query(*conn, "CREATE INDEX " + QuoteIdent(table + "_cust") + " ON " + QuoteIdent(table) + " (customer_key)");
  auto bad = Order("neg");
  bad["total_price"] = -1;
  const std::string path = dir.Write("o.ndjson", Keys({"a", "b"}) + Line(bad) + Keys({"c"}));
  const std::string rejects = dir.path() + "/rejects.ndjson";

  CommandResult r = RunNomnom({"load", path, "--table", table, "--fresh", "--rejects", rejects});
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK(Count(*conn, table) == "3");
  CHECK(PrimaryKey(*conn, table) == "my_key PRIMARY KEY (order_key)");
  CHECK(QueryValue(*conn, "SELECT count(*) FROM pg_indexes WHERE tablename = '" + table + "'") == "2");
  CHECK(QueryValue(*conn, "SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND conrelid = '" +
                              QuoteIdent(table) + "'::regclass") == "1");
  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0]["line"] == 3);
  CHECK_THAT(recs[0]["error"].get<std::string>(), Catch::Contains("check constraint"));
}

TEST_CASE("load --fresh is refused on a table foreign keys reference, a partitioned table, and a partition",
          "[cli][fresh]") {
  TempDir dir;
  const std::string parent = UniqueName("fresh_ref");
  const std::string child = UniqueName("fresh_child");
  const std::string parted = UniqueName("fresh_parted");
  DropTables drop({parent, child, parted});
  auto conn = Connect();
  const std::string path = dir.Write("o.ndjson", Keys({"a", "b", "c"}));

  Query(*conn, CreateOrdersSql(parent));
  Query(*conn, "CREATE TABLE " + QuoteIdent(child) + " (id int, k varchar(255) REFERENCES " + QuoteIdent(parent) + ")");
  CommandResult r = RunNomnom({"load", path, "--table", parent, "--fresh"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("--fresh refused") && Catch::Contains("referenced by foreign keys") &&
                        Catch::Contains(child));
  CHECK(Count(*conn, parent) == "0");
  CHECK(PrimaryKey(*conn, parent) == parent + "_pkey PRIMARY KEY (order_key)");
  CHECK(MarkerRows(*conn, parent) == "0");

  Query(*conn, "CREATE TABLE " + QuoteIdent(parted) +
                   " (order_key varchar(255) NOT NULL PRIMARY KEY, customer_key varchar(255) NOT NULL,"
                   " order_status varchar(1) NOT NULL, total_price double precision NOT NULL,"
                   " order_date varchar(255) NOT NULL, order_priority varchar(255), clerk varchar(255),"
                   " ship_priority integer, comment text) PARTITION BY HASH (order_key)");
  Query(*conn, "CREATE TABLE " + QuoteIdent(parted + "_0") + " PARTITION OF " + QuoteIdent(parted) +
                   " FOR VALUES WITH (MODULUS 1, REMAINDER 0)");
  r = RunNomnom({"load", path, "--table", parted, "--fresh"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("is a partitioned table"));
  r = RunNomnom({"load", path, "--table", parted + "_0", "--fresh"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("is a partition of another table"));
  CHECK(Count(*conn, parted) == "0");
  CHECK(PrimaryKey(*conn, parted) == parted + "_pkey PRIMARY KEY (order_key)");
}

TEST_CASE("load --fresh refuses other conflict modes, --via-nats and standard input", "[cli][fresh]") {
  TempDir dir;
  const std::string table = UniqueName("fresh_usage");
  DropTables drop({table});
  const std::string path = dir.Write("o.ndjson", Keys({"a"}));
  CommandResult r = RunNomnom({"load", path, "--table", table, "--fresh", "--on-conflict", "nothing"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("cannot be combined with --on-conflict nothing"));
  r = RunNomnom({"load", path, "--table", table, "--fresh", "--via-nats"});
  CHECK(r.exit_code == 2);
  r = RunNomnom({"load", "-", "--table", table, "--fresh"}, Keys({"a"}));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("standard input"));
  // --on-conflict error is what --fresh means anyway.
  r = RunNomnom({"load", path, "--table", table, "--fresh", "--on-conflict", "error"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
}

TEST_CASE(
    "load --fresh: duplicate keys are rejected with their file and line, the first occurrence in input order "
    "is kept",
    "[cli][fresh]") {
  TempDir dir;
  const std::string table = UniqueName("fresh_dups");
  DropTables drop({table});
  auto conn = Connect();
  Query(*conn, CreateOrdersSql(table, ", CHECK (total_price >= 0)"));
  auto second_k3 = Order("k3");
  second_k3["comment"] = "the later k3";
  auto second_k1 = Order("k1");
  second_k1["comment"] = "the later k1";
  auto third_k1 = Order("k1");
  third_k1["comment"] = "the third k1";
  auto bad_k2 = Order("k2");  // a duplicate key that the CHECK rejects already during the load
  bad_k2["total_price"] = -5;
  // a.ndjson: k1..k5, then k3 again (line 6), a line the encoder rejects (7), k2 failing its CHECK (8).
  const std::string a =
      dir.Write("a.ndjson", Keys({"k1", "k2", "k3", "k4", "k5"}) + Line(second_k3) + "{not json\n" + Line(bad_k2));
  // b.ndjson: k6, k1 again (line 2), k7, k1 a third time (line 4).
  const std::string b = dir.Write("b.ndjson", Keys({"k6"}) + Line(second_k1) + Keys({"k7"}) + Line(third_k1));
  const std::string rejects = dir.path() + "/rejects.ndjson";

  // Small batches on two connections: the duplicates land in different transactions.
  CommandResult r = RunNomnom(
      {"load", a, b, "--table", table, "--fresh", "--json", "--rejects", rejects, "--batch-rows", "2", "--jobs", "2"});
  INFO(r.err);
  REQUIRE(r.exit_code == 3);
  json s = Summary(r);
  CHECK(s["inserted"] == 7);
  CHECK(s["rejected"] == 5);
  CHECK(s["rows_read"] == 12);
  CHECK(Count(*conn, table) == "7");
  CHECK(PrimaryKey(*conn, table) == table + "_pkey PRIMARY KEY (order_key)");
  CHECK(MarkerRows(*conn, table) == "0");
  // The first occurrences won.
  CHECK(QueryValue(*conn, "SELECT comment FROM " + QuoteIdent(table) + " WHERE order_key = 'k1'") == "comment for k1");
  CHECK(QueryValue(*conn, "SELECT comment FROM " + QuoteIdent(table) + " WHERE order_key = 'k3'") == "comment for k3");
  CHECK(QueryValue(*conn, "SELECT total_price FROM " + QuoteIdent(table) + " WHERE order_key = 'k2'") == "1234.5");

  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == 5);
  // Sorted by (file, line).
  CHECK(recs[0]["file"] == a);
  CHECK(recs[0]["line"] == 6);
  CHECK(recs[0]["raw"] == Line(second_k3).substr(0, Line(second_k3).size() - 1));
  CHECK_THAT(recs[0]["error"].get<std::string>(),
             Catch::Contains("duplicate key") && Catch::Contains("(k3)") && Catch::Contains(a + ":3"));
  CHECK(recs[1]["line"] == 7);
  CHECK(recs[2]["line"] == 8);
  CHECK_THAT(recs[2]["error"].get<std::string>(), Catch::Contains("check constraint"));
  CHECK(recs[3]["file"] == b);
  CHECK(recs[3]["line"] == 2);
  CHECK_THAT(recs[3]["error"].get<std::string>(),
             Catch::Contains("duplicate key") && Catch::Contains("(k1)") && Catch::Contains(a + ":1"));
  CHECK(recs[3]["raw"] == Line(second_k1).substr(0, Line(second_k1).size() - 1));
  CHECK(recs[4]["file"] == b);
  CHECK(recs[4]["line"] == 4);
  CHECK_THAT(recs[4]["error"].get<std::string>(), Catch::Contains(a + ":1"));
}

TEST_CASE("load --fresh is all or nothing: a load that stops (--max-errors) is undone and the key restored",
          "[cli][fresh]") {
  TempDir dir;
  const std::string table = UniqueName("fresh_undo");
  DropTables drop({table});
  auto conn = Connect();
  std::string content;
  for (int i = 1; i <= 3000; ++i) content += Line(Order("k" + std::to_string(i)));
  content += "{broken\n{broken\n";
  const std::string path = dir.Write("o.ndjson", content);
  CommandResult r = RunNomnom({"load", path, "--table", table, "--fresh", "--max-errors", "1", "--batch-rows", "500"});
  INFO(r.err);
  CHECK(r.exit_code == 4);
  CHECK_THAT(r.err, Catch::Contains("was undone"));
  CHECK(Count(*conn, table) == "0");
  CHECK(PrimaryKey(*conn, table) == table + "_pkey PRIMARY KEY (order_key)");
  CHECK(MarkerRows(*conn, table) == "0");
}
