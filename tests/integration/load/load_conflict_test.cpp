// End-to-end tests of `nomnom load --on-conflict error|nothing|update` against a
// real PostgreSQL: which occurrence of a key wins, the inserted / updated /
// skipped counts, and isolation of rows PostgreSQL rejects (CHECK, foreign key,
// unique violations) in every mode.
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "tests/support/cli_test_helpers.h"

using namespace nomnom;
using namespace nomnom::testing;
using namespace nomnom::testing::cli;
using nlohmann::json;

namespace {

std::optional<std::string> Col(const std::map<std::string, Row>& rows, const std::string& key, size_t col) {
  auto it = rows.find(key);
  if (it == rows.end()) return std::string("<missing row>");
  return it->second.at(col);
}

constexpr size_t kCustomer = 1, kPrice = 3, kClerk = 6, kShip = 7, kComment = 8;

// `keys` keys, each appearing `copies` times, in a shuffled order so the copies
// of one key usually sit in different chunks and batches (and sometimes
// next to each other). Each line carries its 1-based line number in
// ship_priority, total_price, clerk and comment; comments are padded to `pad`
// bytes so the file spans several input chunks. After every `bad_every`-th
// good line comes a line the parser rejects.
struct SpreadFile {
  std::string content;
  std::map<std::string, std::vector<int>> lines_of;  // key -> its line numbers, ascending
  std::map<int, std::string> bad;                    // line number -> raw text of a rejected line
};

SpreadFile MakeSpreadFile(int keys, int copies, size_t pad, int bad_every) {
  std::vector<int> order;
  for (int k = 0; k < keys; ++k) {
    for (int c = 0; c < copies; ++c) order.push_back(k);
  }
  std::mt19937 rng(12345);
  std::shuffle(order.begin(), order.end(), rng);
  SpreadFile f;
  const std::string padding(pad, 'x');
  int line = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    ++line;
    const std::string key = "key" + std::to_string(order[i]);
    auto o = Order(key);
    o["ship_priority"] = line;
    o["total_price"] = line + 0.25;
    o["clerk"] = "Clerk#" + std::to_string(line);
    o["comment"] = "line " + std::to_string(line) + " " + padding;
    f.content += Line(o);
    f.lines_of[key].push_back(line);
    if ((i + 1) % static_cast<size_t>(bad_every) == 0) {
      ++line;
      f.bad[line] = "{\"order_key\":\"" + key + "\",\"bad_line\":" + std::to_string(line) + "}";
      f.content += f.bad[line] + "\n";
    }
  }
  return f;
}

}  // namespace

TEST_CASE("on-conflict nothing (the default): a second load of the same file skips every row",
          "[cli][conflict][nothing]") {
  TempDir dir;
  const std::string table = UniqueName("conf_twice");
  DropTables drop({table});
  std::string content;
  for (int i = 0; i < 300; ++i) content += Line(Order("t" + std::to_string(i)));
  const std::string path = dir.Write("o.ndjson", content);

  CommandResult first = RunNomnom({"load", path, "--table", table, "--json"});
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  json s1 = Summary(first);
  CHECK(s1["on_conflict"] == "nothing");
  CHECK(s1["inserted"] == 300);
  CHECK(s1["skipped"] == 0);

  auto conn = Connect();
  // A changed row in the table must survive the second load untouched.
  Query(*conn, "UPDATE " + QuoteIdent(table) + " SET comment = 'kept' WHERE order_key = 't7'");
  CommandResult second = RunNomnom({"load", path, "--table", table, "--json"});
  REQUIRE(second.exit_code == 0);
  json s2 = Summary(second);
  CHECK(s2["rows_read"] == 300);
  CHECK(s2["inserted"] == 0);
  CHECK(s2["skipped"] == 300);
  CHECK(s2["updated"] == 0);
  CHECK(s2["rejected"] == 0);
  CHECK(Count(*conn, table) == "300");
  CHECK(Col(TableRows(*conn, table), "t7", kComment) == std::optional<std::string>("kept"));
}

TEST_CASE("on-conflict nothing: the first occurrence of a key in a file is kept", "[cli][conflict][nothing]") {
  TempDir dir;
  const std::string table = UniqueName("conf_first");
  DropTables drop({table});
  auto a1 = Order("a");
  a1["comment"] = "a first";
  auto a2 = Order("a");
  a2["comment"] = "a second";
  auto a3 = Order("a");
  a3["comment"] = "a third";
  auto b1 = Order("b");
  b1["comment"] = "b first";
  auto b2 = Order("b");
  b2["comment"] = "b second";
  const std::string path =
      dir.Write("o.ndjson", Line(a1) + Line(b1) + Line(a2) + Line(Order("c")) + Line(b2) + Line(a3));
  CommandResult r = RunNomnom({"load", path, "--table", table, "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json s = Summary(r);
  CHECK(s["rows_read"] == 6);
  CHECK(s["inserted"] == 3);
  CHECK(s["skipped"] == 3);
  auto conn = Connect();
  auto rows = TableRows(*conn, table);
  CHECK(rows.size() == 3);
  CHECK(Col(rows, "a", kComment) == std::optional<std::string>("a first"));
  CHECK(Col(rows, "b", kComment) == std::optional<std::string>("b first"));
}

TEST_CASE("on-conflict update: the last occurrence wins within a file and across files", "[cli][conflict][update]") {
  TempDir dir;
  const std::string table = UniqueName("conf_last");
  DropTables drop({table});
  auto conn = Connect();

  SECTION("duplicates in one file") {
    auto a1 = Order("a");
    a1["comment"] = "a first";
    auto a2 = Order("a");
    a2["comment"] = "a second";
    a2["total_price"] = 2.5;
    auto a3 = Order("a");  // the last one has no clerk: the update must set it to NULL
    a3.erase("clerk");
    a3["comment"] = "a third";
    auto b1 = Order("b");
    b1["comment"] = "b first";
    auto b2 = Order("b");
    b2["comment"] = "b second";
    const std::string path =
        dir.Write("o.ndjson", Line(a1) + Line(b1) + Line(a2) + Line(Order("c")) + Line(b2) + Line(a3));
    CommandResult r = RunNomnom({"load", path, "--table", table, "--on-conflict", "update", "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json s = Summary(r);
    CHECK(s["on_conflict"] == "update");
    CHECK(s["rows_read"] == 6);
    CHECK(s["inserted"] == 3);
    CHECK(s["updated"] == 3);
    CHECK(s["skipped"] == 0);
    auto rows = TableRows(*conn, table);
    CHECK(rows.size() == 3);
    CHECK(Col(rows, "a", kComment) == std::optional<std::string>("a third"));
    CHECK(Col(rows, "a", kPrice) == std::optional<std::string>("1234.5"));
    CHECK(Col(rows, "a", kClerk) == std::nullopt);
    CHECK(Col(rows, "b", kComment) == std::optional<std::string>("b second"));
  }

  SECTION("across two files in one run, then into a table that holds some keys") {
    std::string f1, f2, f3;
    for (int i = 1; i <= 10; ++i) {
      auto o = Order("k" + std::to_string(i));
      o["comment"] = "file1";
      f1 += Line(o);
    }
    for (int i = 5; i <= 15; ++i) {
      auto o = Order("k" + std::to_string(i));
      o["comment"] = "file2";
      f2 += Line(o);
    }
    for (int i = 10; i <= 20; ++i) {
      nlohmann::ordered_json o;  // required fields only
      o["order_key"] = "k" + std::to_string(i);
      o["customer_key"] = "c";
      o["order_status"] = "F";
      o["total_price"] = i;
      o["order_date"] = "1997-01-01";
      f3 += Line(o);
    }
    const std::string p1 = dir.Write("1.ndjson", f1), p2 = dir.Write("2.ndjson", f2), p3 = dir.Write("3.ndjson", f3);
    CommandResult r = RunNomnom({"load", p1, p2, "--table", table, "--on-conflict", "update", "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json s = Summary(r);
    CHECK(s["rows_read"] == 21);
    CHECK(s["inserted"] == 15);
    CHECK(s["updated"] == 6);
    auto rows = TableRows(*conn, table);
    REQUIRE(rows.size() == 15);
    for (int i = 1; i <= 15; ++i) {
      INFO("k" << i);
      CHECK(Col(rows, "k" + std::to_string(i), kComment) == std::optional<std::string>(i < 5 ? "file1" : "file2"));
    }

    CommandResult r3 = RunNomnom({"load", p3, "--table", table, "--on-conflict", "update", "--json"});
    REQUIRE(r3.exit_code == 0);
    json s3 = Summary(r3);
    CHECK(s3["inserted"] == 5);
    CHECK(s3["updated"] == 6);
    rows = TableRows(*conn, table);
    REQUIRE(rows.size() == 20);
    CHECK(Show(rows["k9"]) ==
          Show(Row{"k9", "cust-k9", "O", "1234.5", "1996-01-02", "1-URGENT", "Clerk#000000007", "0", "file2"}));
    CHECK(Show(rows["k12"]) ==
          Show(Row{"k12", "c", "F", "12", "1997-01-01", std::nullopt, std::nullopt, std::nullopt, std::nullopt}));
    CHECK(Show(rows["k20"]) ==
          Show(Row{"k20", "c", "F", "20", "1997-01-01", std::nullopt, std::nullopt, std::nullopt, std::nullopt}));
  }
}

TEST_CASE("two jobs over many chunks: update keeps the last occurrence and nothing the first, for every key",
          "[cli][conflict][update][nothing]") {
  TempDir dir;
  const std::string t_update = UniqueName("conf_many_upd");
  const std::string t_nothing = UniqueName("conf_many_not");
  DropTables drop({t_update, t_nothing});
  // 6,667 keys x 3 = 20,001 good lines of about 1 KB (about 10 input chunks
  // of 2 MB), and a rejected line after every 1,500th good one.
  const int keys = 6667;
  const int good_lines = keys * 3;
  SpreadFile f = MakeSpreadFile(keys, 3, 900, 1500);
  REQUIRE(f.content.size() > 16u << 20);
  REQUIRE(f.bad.size() == 13);
  const std::string path = dir.Write("spread.ndjson", f.content);
  const std::string rejects = dir.path() + "/rejects.ndjson";
  auto conn = Connect();

  struct Mode {
    std::string name, table;
    bool last;
  };
  for (const Mode& m : {Mode{"update", t_update, true}, Mode{"nothing", t_nothing, false}}) {
    CommandResult r = RunNomnom({"load", path, "--table", m.table, "--on-conflict", m.name, "--jobs", "2", "--parsers",
                                 "2", "--batch-rows", "700", "--rejects", rejects, "--json"});
    INFO(m.name << ": " << r.err);
    REQUIRE(r.exit_code == 3);
    json s = Summary(r);
    CHECK(s["rows_read"] == good_lines + f.bad.size());
    CHECK(s["inserted"] == keys);
    CHECK(s["updated"] == (m.last ? good_lines - keys : 0));
    CHECK(s["skipped"] == (m.last ? 0 : good_lines - keys));
    CHECK(s["rejected"] == f.bad.size());

    // Line numbers stay right across chunks parsed out of order.
    auto recs = ReadRejects(rejects);
    REQUIRE(recs.size() == f.bad.size());
    auto bad = f.bad.begin();
    for (const auto& rec : recs) {
      CHECK(rec["line"] == bad->first);
      CHECK(rec["raw"] == bad->second);
      CHECK_THAT(rec["error"].get<std::string>(), Catch::Contains("missing required field"));
      ++bad;
    }

    PgRows rows = Query(
        *conn, "SELECT order_key, ship_priority, total_price, clerk, left(comment, 12) FROM " + QuoteIdent(m.table));
    REQUIRE(rows.rows.size() == static_cast<size_t>(keys));
    int wrong = 0;
    std::string first_wrong;
    for (const auto& row : rows.rows) {
      const std::string key = row[0].value_or("");
      const auto it = f.lines_of.find(key);
      REQUIRE(it != f.lines_of.end());
      const int want = m.last ? it->second.back() : it->second.front();
      const std::string w = std::to_string(want);
      const bool ok = row[1] == w && row[2] == w + ".25" && row[3] == "Clerk#" + w &&
                      row[4] == ("line " + w + " xxxxxxxxxxxx").substr(0, 12);
      if (!ok && wrong++ == 0) {
        first_wrong = key + ": want line " + w + ", got ship_priority " + row[1].value_or("NULL");
      }
    }
    INFO("first wrong key: " << first_wrong);
    CHECK(wrong == 0);
  }
}

TEST_CASE("rows violating a CHECK or foreign key are rejected with PostgreSQL's message and the rest load",
          "[cli][conflict][constraints]") {
  TempDir dir;
  const std::string customers = UniqueName("conf_cust");
  const std::string table = UniqueName("conf_checked");
  DropTables drop_customers({customers});
  DropTables drop_table({table});
  auto conn = Connect();

  // 40 rows; lines 3, 17 and 40 have a negative price, line 25 an unknown
  // customer, line 31 both.
  std::string content;
  std::map<int, std::string> bad_raw;
  const std::set<int> negative = {3, 17, 31, 40};
  for (int line = 1; line <= 40; ++line) {
    auto o = Order("r" + std::to_string(line));
    o["customer_key"] = line % 2 == 0 ? "c1" : "c2";
    if (negative.count(line) != 0) o["total_price"] = -1.5;
    if (line == 25 || line == 31) o["customer_key"] = "nobody";
    content += Line(o);
    if (negative.count(line) != 0 || line == 25) bad_raw[line] = o.dump();
  }
  const std::string path = dir.Write("o.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";

  for (const char* mode : {"error", "nothing", "update"}) {
    DYNAMIC_SECTION("on-conflict " << mode) {
      Query(*conn, "CREATE TABLE " + QuoteIdent(customers) + " (ck varchar(255) PRIMARY KEY)");
      Query(*conn, "INSERT INTO " + QuoteIdent(customers) + " VALUES ('c1'), ('c2')");
      Query(*conn, CreateOrdersSql(table,
                                   ", CONSTRAINT price_nonneg CHECK (total_price >= 0), CONSTRAINT cust_fk "
                                   "FOREIGN KEY (customer_key) REFERENCES " +
                                       QuoteIdent(customers) + " (ck)"));
      CommandResult r =
          RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "--rejects", rejects, "--json"});
      INFO(r.err);
      REQUIRE(r.exit_code == 3);
      json s = Summary(r);
      CHECK(s["rows_read"] == 40);
      CHECK(s["inserted"] == 35);
      CHECK(s["updated"] == 0);
      CHECK(s["skipped"] == 0);
      CHECK(s["rejected"] == 5);

      auto rows = TableRows(*conn, table);
      CHECK(rows.size() == 35);
      for (int line = 1; line <= 40; ++line) {
        INFO("line " << line);
        CHECK(rows.count("r" + std::to_string(line)) == (bad_raw.count(line) != 0 ? 0u : 1u));
      }
      auto recs = ReadRejects(rejects);
      REQUIRE(recs.size() == 5);
      auto it = bad_raw.begin();
      for (const auto& rec : recs) {
        const int line = it->first;
        INFO("record " << rec.dump());
        CHECK(rec["file"] == path);
        CHECK(rec["line"] == line);
        CHECK(rec["raw"] == it->second);
        const std::string error = rec["error"].get<std::string>();
        if (line == 25) {
          CHECK_THAT(error, Catch::Contains("violates foreign key constraint \"cust_fk\"") && Catch::Contains("23503"));
        } else if (line == 31) {
          // Either constraint may be checked first.
          CHECK_THAT(error, Catch::Contains("price_nonneg") || Catch::Contains("cust_fk"));
        } else {
          CHECK_THAT(error, Catch::Contains("violates check constraint \"price_nonneg\"") && Catch::Contains("23514"));
        }
        ++it;
      }
    }
  }
}

TEST_CASE("on-conflict error: a key already in the table or repeated in the file is a rejected row",
          "[cli][conflict][error]") {
  TempDir dir;
  const std::string table = UniqueName("conf_unique");
  DropTables drop({table});
  auto old = Order("k2");
  old["comment"] = "old";
  const std::string p0 = dir.Write("0.ndjson", Line(old));
  REQUIRE(RunNomnom({"load", p0, "--table", table, "--on-conflict", "error", "-q"}).exit_code == 0);

  auto k4a = Order("k4");
  k4a["comment"] = "k4 first";
  auto k4b = Order("k4");
  k4b["comment"] = "k4 second";
  auto k2 = Order("k2");
  k2["comment"] = "new";
  std::string content;
  for (int i = 10; i < 60; ++i) content += Line(Order("k" + std::to_string(i)));
  content += Line(Order("k1")) + Line(k2) + Line(Order("k3")) + Line(k4a) + Line(k4b);
  for (int i = 60; i < 110; ++i) content += Line(Order("k" + std::to_string(i)));
  const std::string path = dir.Write("1.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";
  CommandResult r =
      RunNomnom({"load", path, "--table", table, "--on-conflict", "error", "--rejects", rejects, "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 3);
  json s = Summary(r);
  CHECK(s["rows_read"] == 105);
  CHECK(s["inserted"] == 103);
  CHECK(s["rejected"] == 2);
  auto conn = Connect();
  auto rows = TableRows(*conn, table);
  CHECK(rows.size() == 104);
  CHECK(Col(rows, "k2", kComment) == std::optional<std::string>("old"));
  CHECK(Col(rows, "k4", kComment) == std::optional<std::string>("k4 first"));
  CHECK(rows.count("k1") == 1);
  CHECK(rows.count("k3") == 1);
  CHECK(rows.count("k109") == 1);
  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == 2);
  CHECK(recs[0]["line"] == 52);
  CHECK(recs[0]["raw"] == k2.dump());
  CHECK(recs[1]["line"] == 55);
  CHECK(recs[1]["raw"] == k4b.dump());
  for (const auto& rec : recs) {
    CHECK_THAT(rec["error"].get<std::string>(),
               Catch::Contains("duplicate key value violates unique constraint") && Catch::Contains("23505"));
  }
  // Customer keys were untouched by the rejected rows.
  CHECK(Col(rows, "k2", kCustomer) == std::optional<std::string>("cust-k2"));
  CHECK(Col(rows, "k1", kShip) == std::optional<std::string>("0"));
}

TEST_CASE("max-errors counts rows PostgreSQL rejects", "[cli][conflict][constraints]") {
  TempDir dir;
  const std::string table = UniqueName("conf_maxerr");
  DropTables drop({table});
  auto conn = Connect();
  std::string content;
  for (int i = 1; i <= 30; ++i) {
    auto o = Order("m" + std::to_string(i));
    if (i % 5 == 0) o["total_price"] = -i;  // 6 violations
    content += Line(o);
  }
  const std::string path = dir.Write("o.ndjson", content);
  for (const char* mode : {"error", "nothing", "update"}) {
    DYNAMIC_SECTION("on-conflict " << mode) {
      Query(*conn, CreateOrdersSql(table, ", CHECK (total_price >= 0)"));
      CommandResult r = RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "--max-errors", "3"});
      CHECK(r.exit_code == 4);
      CHECK_THAT(r.err, Catch::Contains("--max-errors"));
      Query(*conn, "TRUNCATE " + QuoteIdent(table));
      CommandResult ok = RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "--max-errors", "6", "-q"});
      CHECK(ok.exit_code == 3);
      CHECK(Count(*conn, table) == "24");
    }
  }
}

TEST_CASE("update mode rejects a constraint-violating row even when a later row has its key",
          "[cli][conflict][constraints]") {
  TempDir dir;
  const std::string table = UniqueName("conf_superseded");
  DropTables drop({table});
  auto conn = Connect();
  Query(*conn, CreateOrdersSql(table, ", CHECK (total_price >= 0)"));
  auto k1_bad = Order("k1");
  k1_bad["total_price"] = -1;
  auto k1_good = Order("k1");
  k1_good["total_price"] = 5;
  auto k2_good = Order("k2");
  k2_good["total_price"] = 3;
  auto k2_bad = Order("k2");
  k2_bad["total_price"] = -3;
  const std::string path = dir.Write("o.ndjson", Line(k1_bad) + Line(k1_good) + Line(k2_good) + Line(k2_bad));
  const std::string rejects = dir.path() + "/rejects.ndjson";
  CommandResult r =
      RunNomnom({"load", path, "--table", table, "--on-conflict", "update", "--rejects", rejects, "--json"});
  INFO(r.err);
  CHECK(r.exit_code == 3);
  auto rows = TableRows(*conn, table);
  CHECK(Col(rows, "k1", kPrice) == std::optional<std::string>("5"));
  CHECK(Col(rows, "k2", kPrice) == std::optional<std::string>("3"));
  auto recs = ReadRejects(rejects);
  CHECK(recs.size() == 2);
  if (!recs.empty()) CHECK(recs.front()["line"] == 1);
  json s = Summary(r);
  CHECK(s["inserted"] == 2);
  CHECK(s["updated"] == 0);
  CHECK(s["rejected"] == 2);
}
