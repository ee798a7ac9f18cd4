// End-to-end tests of `nomnom load` against a real PostgreSQL: values,
// summaries, bad input and rejects, input formats, table creation, exit codes.
#include <zlib.h>
#include <zstd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <sstream>

#include "tests/support/cli_test_helpers.h"

using namespace nomnom;
using namespace nomnom::testing;
using namespace nomnom::testing::cli;
using nlohmann::json;

namespace {

std::string GenOrders(const TempDir& dir, const std::string& name, const std::string& sf) {
  const std::string path = dir.path() + "/" + name;
  CommandResult g = RunNomnom({"gen", "tpch", "orders", "--sf", sf, "-o", path});
  REQUIRE(g.exit_code == 0);
  return path;
}

void WriteGzip(const std::string& path, const std::string& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, data.data(), static_cast<unsigned>(data.size())) == static_cast<int>(data.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void WriteZstd(const TempDir& dir, const std::string& name, const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  REQUIRE(ZSTD_isError(n) == 0);
  out.resize(n);
  dir.Write(name, out);
}

}  // namespace

TEST_CASE("load --on-conflict error into a fresh table loads exact values and a truthful --json summary",
          "[cli][load]") {
  TempDir dir;
  const std::string table = UniqueName("cli_exact");
  DropTables drop({table});

  auto full = Order("k1");
  full["customer_key"] = "C-001";
  full["order_status"] = "F";
  full["total_price"] = 173665.47;
  full["order_date"] = "1996-01-02";
  full["order_priority"] = "5-LOW";
  full["clerk"] = "Clerk#000000951";
  full["ship_priority"] = -7;
  full["comment"] = "caf\u00e9 \"quoted\", back\\slash, tab\t, \u65e5\u672c \U0001F600";
  // Only the required fields: every nullable column must be NULL.
  nlohmann::ordered_json minimal;
  minimal["order_key"] = "k2";
  minimal["customer_key"] = "C-002";
  minimal["order_status"] = "P";
  minimal["total_price"] = 0;
  minimal["order_date"] = "1992-01-01";
  // Explicit nulls, fields in a different order, an escaped key.
  const std::string explicit_nulls =
      R"({"comment":null,"ship_priority":null,"clerk":null,"order_priority":null,)"
      R"("total_price":-0.5,"order_date":"1998-08-02","order_status":"O","customer_key":"C-003","order_\u006bey":"k3"})";
  std::string content = Line(full) + Line(minimal) + explicit_nulls + "\n";
  for (int i = 4; i <= 50; ++i) content += Line(Order("k" + std::to_string(i)));
  const std::string path = dir.Write("orders.ndjson", content);

  CommandResult r = RunNomnom({"load", path, "--table", table, "--on-conflict", "error", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json s = Summary(r);
  CHECK(s["status"] == "ok");
  CHECK(s["on_conflict"] == "error");
  CHECK(s["entity"] == "Order");
  CHECK(s["table"] == QuoteIdent(table));
  CHECK(s["rows_read"] == 50);
  CHECK(s["inserted"] == 50);
  CHECK(s["updated"] == 0);
  CHECK(s["skipped"] == 0);
  CHECK(s["rejected"] == 0);
  CHECK(s["bytes"] == content.size());
  CHECK(s["seconds"].get<double>() >= 0);
  CHECK_FALSE(s.contains("error"));

  auto conn = Connect();
  auto rows = TableRows(*conn, table);
  REQUIRE(rows.size() == 50);
  using O = std::optional<std::string>;
  CHECK(Show(rows["k1"]) == Show(Row{O("k1"), O("C-001"), O("F"), O("173665.47"), O("1996-01-02"), O("5-LOW"),
                                     O("Clerk#000000951"), O("-7"), O(full["comment"].get<std::string>())}));
  CHECK(Show(rows["k2"]) == Show(Row{O("k2"), O("C-002"), O("P"), O("0"), O("1992-01-01"), std::nullopt, std::nullopt,
                                     std::nullopt, std::nullopt}));
  CHECK(Show(rows["k3"]) == Show(Row{O("k3"), O("C-003"), O("O"), O("-0.5"), O("1998-08-02"), std::nullopt,
                                     std::nullopt, std::nullopt, std::nullopt}));
  CHECK(Show(rows["k50"]) == Show(Row{O("k50"), O("cust-k50"), O("O"), O("1234.5"), O("1996-01-02"), O("1-URGENT"),
                                      O("Clerk#000000007"), O("0"), O("comment for k50")}));
  // The comment's bytes round-trip exactly (not just its text rendering).
  CHECK(QueryValue(*conn, "SELECT octet_length(comment) FROM " + QuoteIdent(table) + " WHERE order_key = 'k1'") ==
        std::to_string(full["comment"].get<std::string>().size()));

  // A second load in error mode: every row is now a duplicate key, rejected by
  // PostgreSQL; the text summary (no --json) says so.
  CommandResult again = RunNomnom({"load", path, "--table", table, "--on-conflict", "error"});
  CHECK(again.exit_code == 3);
  // "  rows read   50" -> text["rows read"] == "50"
  std::map<std::string, std::string> text;
  {
    std::istringstream in(again.out);
    std::string line;
    while (std::getline(in, line)) {
      const size_t last = line.find_last_of(' ');
      const size_t first = line.find_first_not_of(' ');
      if (last == std::string::npos || first >= last) continue;
      const size_t label_end = line.find_last_not_of(' ', last);
      text[line.substr(first, label_end + 1 - first)] = line.substr(last + 1);
    }
  }
  INFO(again.out);
  CHECK(text["rows read"] == "50");
  CHECK(text["inserted"] == "0");
  CHECK(text["updated"] == "0");
  CHECK(text["skipped"] == "0");
  CHECK(text["rejected"] == "50");
  CHECK(Count(*conn, table) == "50");
}

TEST_CASE("load creates a missing table with exactly the entity's columns", "[cli][load][schema]") {
  TempDir dir;
  const std::string table = UniqueName("cli_created");
  DropTables drop({table});
  const std::string path = dir.Write("o.ndjson", Line(Order("a")));
  CommandResult r = RunNomnom({"load", path, "--table", table, "-q"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);

  auto conn = Connect();
  PgRows cols = Query(*conn,
                      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a "
                      "WHERE a.attrelid = " +
                          std::string("'") + QuoteIdent(table) +
                          "'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum");
  const std::vector<std::tuple<std::string, std::string, std::string>> expected = {
      {"order_key", "character varying(255)", "t"},
      {"customer_key", "character varying(255)", "t"},
      {"order_status", "character varying(1)", "t"},
      {"total_price", "double precision", "t"},
      {"order_date", "character varying(255)", "t"},
      {"order_priority", "character varying(255)", "f"},
      {"clerk", "character varying(255)", "f"},
      {"ship_priority", "integer", "f"},
      {"comment", "text", "f"}};
  REQUIRE(cols.rows.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("column " << i);
    CHECK(cols.rows[i][0].value_or("") == std::get<0>(expected[i]));
    CHECK(cols.rows[i][1].value_or("") == std::get<1>(expected[i]));
    CHECK(cols.rows[i][2].value_or("") == std::get<2>(expected[i]));
  }
  // information_schema agrees, and the primary key is exactly (order_key).
  CHECK(QueryValue(*conn,
                   "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                   "AND table_name = '" +
                       table + "'") == "9");
  CHECK(QueryValue(*conn,
                   "SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a "
                   "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indisprimary AND "
                   "i.indrelid = '" +
                       QuoteIdent(table) + "'::regclass") == "order_key");
}

TEST_CASE("load into a quoted odd table name", "[cli][load][schema]") {
  TempDir dir;
  const std::string table = UniqueName("We\"ird Name");
  DropTables drop({table});
  const std::string path = dir.Write("o.ndjson", Line(Order("a")) + Line(Order("b")));
  for (const char* mode : {"nothing", "update", "error"}) {
    CommandResult r = RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "--json"});
    INFO(mode << ": " << r.err);
    CHECK((r.exit_code == 0 || (std::string(mode) == "error" && r.exit_code == 3)));
  }
  auto conn = Connect();
  auto found = conn->ExecParams("SELECT count(*) FROM pg_class WHERE relname = $1", {table});
  REQUIRE(found.ok());
  CHECK(found->rows.at(0).at(0).value_or("") == "1");
  auto rows = TableRows(*conn, table);
  CHECK(rows.size() == 2);
  CHECK(rows.count("a") == 1);
  CHECK(rows.count("b") == 1);
}

TEST_CASE("load rejects each kind of bad line, keeps every good one, and writes exact reject records",
          "[cli][load][rejects]") {
  TempDir dir;
  const std::string table = UniqueName("cli_bad");
  DropTables drop({table});
  const std::string req = R"("customer_key":"c","order_status":"O","total_price":1.5,"order_date":"1996-01-01")";
  auto row = [&](const std::string& key, const std::string& extra = "") {
    return "{\"order_key\":\"" + key + "\"," + req + extra + "}";
  };
  struct Bad {
    std::string text;
    std::string error_part;  // a substring of the expected error
  };
  // Lines in file order; "good:KEY" lines are loaded, "" lines are blank.
  std::vector<std::pair<std::string, Bad>> lines = {
      {"good:g1", {row("g1"), ""}},
      {"bad", {R"({"order_key":"m1","customer_key":)", "malformed JSON"}},
      {"bad", {R"([1,2,3])", "not a JSON object"}},
      {"blank", {"", ""}},
      {"bad",
       {R"({"order_key":"m2","order_status":"O","total_price":1,"order_date":"1996-01-01"})",
        "missing required field 'customer_key'"}},
      {"bad",
       {R"({"order_key":"m3","customer_key":"c","order_status":"O","total_price":null,"order_date":"x"})",
        "field 'total_price': null in a NOT NULL field"}},
      {"good:g2", {row("g2", R"(,"clerk":null,"unknown_field":{"a":[1,2]})"), ""}},
      {"bad",
       {R"({"order_key":"m4","customer_key":"c","order_status":"O","total_price":"12.5","order_date":"x"})",
        "field 'total_price': expected a number"}},
      {"bad", {row("m5", R"(,"ship_priority":2.5)"), "field 'ship_priority': 2.5 is not an integer"}},
      {"blank", {"   \t ", ""}},
      {"bad",
       {R"({"order_key":"m6","customer_key":"c","order_status":"OK","total_price":1,"order_date":"x"})",
        "longer than VARCHAR(1)"}},
      {"bad", {row("m7", ",\"comment\":\"a\xC3(b\""), "invalid UTF-8"}},
      {"bad", {row("m8", R"(,"comment":"a\u0000b")"), "NUL"}},
      {"bad", {row("m9") + " trailing", ""}},
      {"bad", {row("m10") + "}", "unexpected content after the JSON object"}},
      {"bad", {R"("a string")", "not a JSON object"}},
      {"good:g3", {row("g3", R"(,"ship_priority":3.0)"), ""}},
      {"bad", {row("m11", R"(,"ship_priority":2147483648)"), "out of range"}},
      {"bad", {row("m12", R"(,"comment":"x","comment":"y")"), "field 'comment' appears more than once"}},
      {"good:g4", {row("g4"), ""}},
  };
  std::string content;
  for (const auto& l : lines) content += l.second.text + "\n";
  const std::string path = dir.Write("bad.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";

  for (const char* mode : {"nothing", "error"}) {
    DYNAMIC_SECTION("on-conflict " << mode) {
      CommandResult r =
          RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "--rejects", rejects, "--json"});
      INFO(r.err);
      REQUIRE(r.exit_code == 3);
      json s = Summary(r);
      size_t good = 0, bad = 0;
      for (const auto& l : lines) {
        good += l.first.rfind("good:", 0) == 0;
        bad += l.first == "bad";
      }
      CHECK(s["status"] == "ok");
      CHECK(s["rows_read"] == good + bad);
      CHECK(s["inserted"] == good);
      CHECK(s["rejected"] == bad);

      auto conn = Connect();
      auto rows = TableRows(*conn, table);
      CHECK(rows.size() == good);
      for (const auto& l : lines) {
        if (l.first.rfind("good:", 0) == 0) CHECK(rows.count(l.first.substr(5)) == 1);
      }
      CHECK(rows["g2"][6] == std::nullopt);
      CHECK(rows["g3"][7] == std::optional<std::string>("3"));

      auto recs = ReadRejects(rejects);
      REQUIRE(recs.size() == bad);
      size_t k = 0;
      for (size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].first != "bad") continue;
        const json& rec = recs[k++];
        INFO("line " << i + 1 << ": " << lines[i].second.text << "\nrecord: " << rec.dump());
        CHECK(rec["file"] == path);
        CHECK(rec["line"] == i + 1);
        CHECK_FALSE(rec["error"].get<std::string>().empty());
        CHECK_THAT(rec["error"].get<std::string>(), Catch::Contains(lines[i].second.error_part));
        if (lines[i].second.error_part == "invalid UTF-8") {
          // Invalid bytes are written as the text \xNN, everything else verbatim.
          std::string expected = lines[i].second.text;
          expected.replace(expected.find("\xC3"), 1, "\\xC3");
          CHECK(rec["raw"] == expected);
        } else {
          CHECK(rec["raw"] == lines[i].second.text);
        }
      }
      // The rejects file's rows were rejected before reaching PostgreSQL: none of their keys is in the table.
      for (const char* key : {"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10", "m11", "m12"}) {
        CHECK(rows.count(key) == 0);
      }
    }
  }
}

TEST_CASE("load handles a BOM, CRLF line ends and a last line without newline", "[cli][load]") {
  TempDir dir;
  const std::string table = UniqueName("cli_crlf");
  DropTables drop({table});
  auto a = Order("a");
  a["comment"] = "first";
  auto c = Order("c");
  c["comment"] = "last, no newline";
  const std::string bad = R"({"order_key":"b","customer_key":null})";
  const std::string content =
      "\xEF\xBB\xBF" + a.dump() + "\r\n" + bad + "\r\n\r\n" + Order("d").dump() + "\r\n" + c.dump();
  const std::string path = dir.Write("crlf.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";
  CommandResult r = RunNomnom({"load", path, "--table", table, "--rejects", rejects, "--json"});
  INFO(r.err);
  CHECK(r.exit_code == 3);
  json s = Summary(r);
  CHECK(s["rows_read"] == 4);
  CHECK(s["inserted"] == 3);
  CHECK(s["rejected"] == 1);

  auto conn = Connect();
  auto rows = TableRows(*conn, table);
  REQUIRE(rows.size() == 3);
  CHECK(rows["a"][8] == std::optional<std::string>("first"));
  CHECK(rows["c"][8] == std::optional<std::string>("last, no newline"));
  CHECK(rows.count("d") == 1);
  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0]["line"] == 2);
  CHECK(recs[0]["raw"] == bad);  // without the \r

  // A BOM on a first line that is bad: the record's raw text does not carry it.
  const std::string path2 = dir.Write("bom_bad.ndjson", "\xEF\xBB\xBF{\"order_key\":\"x\"}\n" + Line(Order("e")));
  CommandResult r2 = RunNomnom({"load", path2, "--table", table, "--rejects", rejects, "-q"});
  CHECK(r2.exit_code == 3);
  auto recs2 = ReadRejects(rejects);
  REQUIRE(recs2.size() == 1);
  CHECK(recs2[0]["line"] == 1);
  CHECK(recs2[0]["raw"] == R"({"order_key":"x"})");
  CHECK(Count(*conn, table) == "4");
}

TEST_CASE("load --strict rejects unknown fields, the default ignores them", "[cli][load]") {
  TempDir dir;
  const std::string table = UniqueName("cli_strict");
  DropTables drop({table});
  auto extra = Order("x1");
  extra["surprise"] = 1;
  const std::string content = Line(Order("p1")) + Line(extra) + Line(Order("p2"));
  const std::string path = dir.Write("o.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";
  auto conn = Connect();

  CommandResult strict = RunNomnom({"load", path, "--table", table, "--strict", "--rejects", rejects, "--json"});
  INFO(strict.err);
  CHECK(strict.exit_code == 3);
  CHECK(Summary(strict)["rejected"] == 1);
  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == 1);
  CHECK(recs[0]["line"] == 2);
  CHECK_THAT(recs[0]["error"].get<std::string>(), Catch::Contains("unknown field 'surprise'"));
  CHECK(recs[0]["raw"] == extra.dump());
  CHECK(Count(*conn, table) == "2");

  CommandResult lax = RunNomnom({"load", path, "--table", table, "--json"});
  CHECK(lax.exit_code == 0);
  json s = Summary(lax);
  CHECK(s["inserted"] == 1);
  CHECK(s["skipped"] == 2);
  CHECK(s["rejected"] == 0);
  CHECK(TableRows(*conn, table).count("x1") == 1);
}

TEST_CASE("load --max-errors stops with exit 4 once exceeded", "[cli][load][rejects]") {
  TempDir dir;
  const std::string table = UniqueName("cli_maxerr");
  DropTables drop({table});
  std::string content;
  for (int i = 0; i < 20; ++i) {
    content += Line(Order("ok" + std::to_string(i)));
    if (i % 4 == 0) content += "{not json}\n";  // 5 bad lines
  }
  const std::string path = dir.Write("o.ndjson", content);

  SECTION("more bad lines than --max-errors: exit 4 and a message") {
    CommandResult r = RunNomnom({"load", path, "--table", table, "--max-errors", "2"});
    CHECK(r.exit_code == 4);
    CHECK_THAT(r.err, Catch::Contains("--max-errors") && Catch::Contains("2"));
    CommandResult j = RunNomnom({"load", path, "--table", table, "--max-errors", "2", "--json", "-q"});
    CHECK(j.exit_code == 4);
    json s = Summary(j);
    CHECK(s["status"] == "error");
    CHECK_THAT(s["error"].get<std::string>(), Catch::Contains("--max-errors"));
  }
  SECTION("exactly --max-errors bad lines: finishes with exit 3") {
    CommandResult r = RunNomnom({"load", path, "--table", table, "--max-errors", "5", "--json"});
    CHECK(r.exit_code == 3);
    json s = Summary(r);
    CHECK(s["inserted"] == 20);
    CHECK(s["rejected"] == 5);
  }
  SECTION("--max-errors 0 and no bad lines: exit 0") {
    std::string good;
    for (int i = 0; i < 10; ++i) good += Line(Order("g" + std::to_string(i)));
    const std::string p = dir.Write("good.ndjson", good);
    CommandResult r = RunNomnom({"load", p, "--table", table, "--max-errors", "0", "--json"});
    CHECK(r.exit_code == 0);
    CHECK(Summary(r)["inserted"] == 10);
    auto conn = Connect();
    CHECK(Count(*conn, table) == "10");
  }
  SECTION("--max-errors 0 and one bad line: exit 4") {
    const std::string p = dir.Write("one_bad.ndjson", Line(Order("z")) + "[]\n");
    CommandResult r = RunNomnom({"load", p, "--table", table, "--max-errors", "0"});
    CHECK(r.exit_code == 4);
    CHECK_THAT(r.err, Catch::Contains("--max-errors"));
  }
}

TEST_CASE("stdin, several files, .gz and .zst inputs give identical tables", "[cli][load][formats]") {
  TempDir dir;
  const std::string base = UniqueName("cli_fmt_plain");
  const std::string t_stdin = UniqueName("cli_fmt_stdin");
  const std::string t_multi = UniqueName("cli_fmt_multi");
  const std::string t_gz = UniqueName("cli_fmt_gz");
  const std::string t_zst = UniqueName("cli_fmt_zst");
  const std::string t_members = UniqueName("cli_fmt_members");
  const std::string t_gz_stdin = UniqueName("cli_fmt_gz_stdin");
  const std::string t_zst_stdin = UniqueName("cli_fmt_zst_stdin");
  DropTables drop({base, t_stdin, t_multi, t_gz, t_zst, t_members, t_gz_stdin, t_zst_stdin});
  const std::string plain = GenOrders(dir, "orders.ndjson", "0.001");
  const std::string data = ReadFile(plain);
  REQUIRE(std::count(data.begin(), data.end(), '\n') == 1500);

  // Three parts of unequal sizes, the middle one compressed (formats mix in one run).
  const size_t cut1 = data.find('\n', data.size() / 5) + 1;
  const size_t cut2 = data.find('\n', data.size() / 2) + 1;
  const std::string part1 = dir.Write("part1.ndjson", data.substr(0, cut1));
  const std::string part2 = dir.path() + "/part2.ndjson.gz";
  WriteGzip(part2, data.substr(cut1, cut2 - cut1));
  const std::string part3 = dir.Write("part3.ndjson", data.substr(cut2));
  const std::string gz = dir.path() + "/orders.ndjson.gz";
  WriteGzip(gz, data);
  WriteZstd(dir, "orders.ndjson.zst", data);
  const std::string zst = dir.path() + "/orders.ndjson.zst";
  // Two gzip members back to back (as `cat a.gz b.gz` or pigz write).
  WriteGzip(dir.path() + "/m1.gz", data.substr(0, cut2));
  WriteGzip(dir.path() + "/m2.gz", data.substr(cut2));
  const std::string members =
      dir.Write("members.ndjson.gz", ReadFile(dir.path() + "/m1.gz") + ReadFile(dir.path() + "/m2.gz"));

  struct Case {
    std::string table;
    std::vector<std::string> inputs;
    std::string stdin_data;
  };
  const std::vector<Case> cases = {{base, {plain}, ""},
                                   {t_stdin, {"-"}, data},
                                   {t_multi, {part1, part2, part3}, ""},
                                   {t_gz, {gz}, ""},
                                   {t_zst, {zst}, ""},
                                   {t_members, {members}, ""},
                                   // Compression is detected from the bytes, so compressed stdin works.
                                   {t_gz_stdin, {"-"}, ReadFile(gz)},
                                   {t_zst_stdin, {"-"}, ReadFile(zst)}};
  auto conn = Connect();
  for (const auto& c : cases) {
    std::vector<std::string> args{"load"};
    args.insert(args.end(), c.inputs.begin(), c.inputs.end());
    for (const char* a : {"--table", c.table.c_str(), "--json"}) args.emplace_back(a);
    CommandResult r = RunNomnom(args, c.stdin_data);
    INFO(c.table << ": " << r.err);
    REQUIRE(r.exit_code == 0);
    json s = Summary(r);
    CHECK(s["rows_read"] == 1500);
    CHECK(s["inserted"] == 1500);
    CHECK(s["rejected"] == 0);
    CHECK(s["bytes"] == data.size());  // uncompressed bytes
    CHECK(Count(*conn, c.table) == "1500");
    if (c.table != base) CHECK(SymmetricDifference(*conn, base, c.table) == "0");
  }
  // Sanity: the comparison can fail.
  Query(*conn, "UPDATE " + QuoteIdent(t_zst) + " SET clerk = 'changed' WHERE order_key = '1'");
  CHECK(SymmetricDifference(*conn, base, t_zst) == "2");
}

TEST_CASE("reject records name the input they came from and its own line numbers", "[cli][load][rejects]") {
  TempDir dir;
  const std::string table = UniqueName("cli_multirej");
  DropTables drop({table});
  const std::string f1 = dir.Write("one.ndjson", Line(Order("a")) + "oops\n" + Line(Order("b")));
  std::string f2_content = Line(Order("c")) + Line(Order("d")) + "\n" + "[]\n";
  std::string gz_content = "{\"order_key\":\"gz\"}\n" + Line(Order("e"));
  const std::string f2 = dir.Write("two.ndjson", f2_content);
  const std::string f3 = dir.path() + "/three.ndjson.gz";
  WriteGzip(f3, gz_content);
  const std::string stdin_data = Line(Order("f")) + Line(Order("g")) + "nope\n";
  const std::string rejects = dir.path() + "/rejects.ndjson";
  CommandResult r = RunNomnom({"load", f1, f2, "-", f3, "--table", table, "--rejects", rejects, "--json"}, stdin_data);
  INFO(r.err);
  CHECK(r.exit_code == 3);
  json s = Summary(r);
  CHECK(s["rows_read"] == 11);
  CHECK(s["inserted"] == 7);
  CHECK(s["rejected"] == 4);
  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == 4);
  std::map<std::string, std::pair<uint64_t, std::string>> by_file;
  for (const auto& rec : recs) {
    by_file[rec["file"].get<std::string>()] = {rec["line"].get<uint64_t>(), rec["raw"].get<std::string>()};
  }
  CHECK(by_file[f1] == std::make_pair(uint64_t{2}, std::string("oops")));
  CHECK(by_file[f2] == std::make_pair(uint64_t{4}, std::string("[]")));
  CHECK(by_file["-"] == std::make_pair(uint64_t{3}, std::string("nope")));
  CHECK(by_file[f3] == std::make_pair(uint64_t{1}, std::string("{\"order_key\":\"gz\"}")));
  auto conn = Connect();
  CHECK(Count(*conn, table) == "7");
}

TEST_CASE("load exit codes and messages for fatal and usage errors", "[cli][load][errors]") {
  TempDir dir;
  const std::string table = UniqueName("cli_errors");
  DropTables drop({table});
  const std::string good = dir.Write("good.ndjson", Line(Order("a")));
  auto no_stack_trace = [](const std::string& err) {
    CHECK_THAT(err, !Catch::Contains("internal error") && !Catch::Contains("terminate called") &&
                        !Catch::Contains("Aborted") && !Catch::Contains("#0 "));
  };

  SECTION("missing input file: exit 1, the message names the file") {
    const std::string missing = dir.path() + "/does-not-exist.ndjson";
    CommandResult r = RunNomnom({"load", missing, "--table", table});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains(missing));
    no_stack_trace(r.err);
    // --json still prints a summary, with the error.
    CommandResult j = RunNomnom({"load", missing, "--table", table, "--json"});
    CHECK(j.exit_code == 1);
    json s = Summary(j);
    CHECK(s["status"] == "error");
    CHECK_THAT(s["error"].get<std::string>(), Catch::Contains(missing));
    CHECK(s["inserted"] == 0);
    // A missing second input after a good one also fails (and names it).
    CommandResult r2 = RunNomnom({"load", good, missing, "--table", table, "-q"});
    CHECK(r2.exit_code == 1);
    CHECK_THAT(r2.err, Catch::Contains(missing));
  }
  SECTION("unreachable database: exit 1, names host and port, no stack trace") {
    CommandResult r = RunNomnom({"load", good, "--table", table, "--db", "postgresql://x@127.0.0.1:1/db"});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("127.0.0.1") && Catch::Contains("port 1"));
    no_stack_trace(r.err);
    // DATABASE_URL is used when --db is absent.
    CommandResult r2 =
        RunNomnom({"load", good, "--table", table}, {}, {{"DATABASE_URL", "postgresql://x@127.0.0.1:1/db"}});
    CHECK(r2.exit_code == 1);
    CHECK_THAT(r2.err, Catch::Contains("127.0.0.1") && Catch::Contains("port 1"));
  }
  SECTION("usage errors: exit 2") {
    CHECK(RunNomnom({"load", good, "--table", table, "--no-such-flag"}).exit_code == 2);
    CHECK(RunNomnom({"load", good, "--table", table, "--on-conflict", "replace"}).exit_code == 2);
    CHECK(RunNomnom({"load", good, "--table", table, "--jobs", "0"}).exit_code == 2);
    CHECK(RunNomnom({"load", "--table", table}).exit_code == 2);  // no input
    CHECK(RunNomnom({}).exit_code == 2);                          // no subcommand
    CHECK(RunNomnom({"frobnicate"}).exit_code == 2);
  }
  SECTION("unknown --entity: exit 1 and the known entity names") {
    CommandResult r = RunNomnom({"load", good, "--table", table, "--entity", "Lineitem"});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("Lineitem") && Catch::Contains("Order"));
    no_stack_trace(r.err);
  }
  SECTION("existing table with a mismatching column type: exit 1, the message names the column") {
    auto conn = Connect();
    std::string sql = CreateOrdersSql(table);
    sql.replace(sql.find("total_price double precision"), 28, "total_price text");
    Query(*conn, sql);
    CommandResult r = RunNomnom({"load", good, "--table", table});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("total_price") && Catch::Contains("text") && Catch::Contains("double precision"));
    no_stack_trace(r.err);
    CHECK(Count(*conn, table) == "0");
  }
  SECTION("existing table without a unique key: --on-conflict nothing refuses, error mode loads") {
    auto conn = Connect();
    std::string sql = CreateOrdersSql(table);
    sql.replace(sql.find(" PRIMARY KEY"), 12, "");
    Query(*conn, sql);
    CommandResult r = RunNomnom({"load", good, "--table", table});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("unique index") && Catch::Contains("order_key"));
    CHECK(RunNomnom({"load", good, "--table", table, "--on-conflict", "error"}).exit_code == 0);
    CHECK(Count(*conn, table) == "1");
  }
}

TEST_CASE("empty and blank-only inputs load nothing and succeed", "[cli][load]") {
  TempDir dir;
  const std::string table = UniqueName("cli_empty");
  DropTables drop({table});
  const std::string empty = dir.Write("empty.ndjson", "");
  const std::string blank = dir.Write("blank.ndjson", "\n  \n\t\r\n\n");
  CommandResult r = RunNomnom({"load", empty, blank, "--table", table, "--json"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  json s = Summary(r);
  CHECK(s["rows_read"] == 0);
  CHECK(s["inserted"] == 0);
  CHECK(s["rejected"] == 0);
  auto conn = Connect();
  CHECK(Count(*conn, table) == "0");
}

TEST_CASE("a line longer than --max-line-mb is rejected with its start and the rest loads", "[cli][load][rejects]") {
  TempDir dir;
  const std::string table = UniqueName("cli_oversize");
  DropTables drop({table});
  auto big = Order("big");
  big["comment"] = std::string(1536 * 1024, 'y');  // 1.5 MB
  const std::string big_line = big.dump();
  const std::string content = Line(Order("a")) + big_line + "\n" + "{\"order_key\":\"after\"}\n" + Line(Order("b"));
  const std::string path = dir.Write("o.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";
  CommandResult r = RunNomnom({"load", path, "--table", table, "--max-line-mb", "1", "--rejects", rejects, "--json"});
  INFO(r.err);
  CHECK(r.exit_code == 3);
  json s = Summary(r);
  CHECK(s["rows_read"] == 4);
  CHECK(s["inserted"] == 2);
  CHECK(s["rejected"] == 2);
  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == 2);
  CHECK(recs[0]["line"] == 2);
  const std::string raw = recs[0]["raw"];
  CHECK_FALSE(raw.empty());
  CHECK(raw.size() < 4096);
  CHECK(big_line.rfind(raw, 0) == 0);  // a prefix of the line
  CHECK_THAT(recs[0]["error"].get<std::string>(), Catch::Contains(std::to_string(big_line.size())));
  CHECK(recs[1]["line"] == 3);  // line numbering continues after the skipped line
  CHECK(recs[1]["raw"] == "{\"order_key\":\"after\"}");
  auto conn = Connect();
  auto rows = TableRows(*conn, table);
  CHECK(rows.size() == 2);
  CHECK(rows.count("a") == 1);
  CHECK(rows.count("b") == 1);
  // Without the limit the same line loads.
  CommandResult r2 = RunNomnom({"load", path, "--table", table, "-q"});
  CHECK(r2.exit_code == 3);
  CHECK(QueryValue(*conn, "SELECT length(comment) FROM " + QuoteIdent(table) + " WHERE order_key = 'big'") ==
        std::to_string(1536 * 1024));
}

TEST_CASE("the oversize-line reject message names the real flag", "[cli][load][rejects]") {
  TempDir dir;
  const std::string table = UniqueName("cli_oversize_msg");
  DropTables drop({table});
  auto big = Order("big");
  big["comment"] = std::string(1536 * 1024, 'y');
  const std::string path = dir.Write("o.ndjson", Line(big));
  const std::string rejects = dir.path() + "/rejects.ndjson";
  CommandResult r = RunNomnom({"load", path, "--table", table, "--max-line-mb", "1", "--rejects", rejects, "-q"});
  CHECK(r.exit_code == 3);
  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == 1);
  CHECK_THAT(recs[0]["error"].get<std::string>(), Catch::Contains("--max-line-mb"));
}

TEST_CASE("load --table schema.table creates the schema and the table", "[cli][load][schema]") {
  TempDir dir;
  const std::string schema = UniqueName("cli_schema");
  struct DropSchema {
    std::string name;
    ~DropSchema() {
      auto conn = PgConnection::Connect(DatabaseUrl(), "nomnom-tests-cleanup");
      if (!conn.ok()) return;
      (*conn)->TryExec("SET client_min_messages = warning");
      (*conn)->TryExec("DROP SCHEMA IF EXISTS " + QuoteIdent(name) + " CASCADE");
    }
  } drop{schema};
  const std::string path = dir.Write("o.ndjson", Line(Order("a")) + Line(Order("b")));
  CommandResult r = RunNomnom({"load", path, "--table", schema + ".Orders", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json s = Summary(r);
  CHECK(s["table"] == QuoteIdent(schema) + "." + QuoteIdent("Orders"));
  CHECK(s["inserted"] == 2);
  auto conn = Connect();
  CHECK(QueryValue(*conn, "SELECT count(*) FROM " + QuoteIdent(schema) + ".\"Orders\"") == "2");
  // A second load into the same qualified table finds it (and skips both rows).
  CommandResult again = RunNomnom({"load", path, "--table", schema + ".Orders", "--json"});
  CHECK(again.exit_code == 0);
  CHECK(Summary(again)["skipped"] == 2);
}

TEST_CASE("an existing table with other column order and extra columns is loaded by column name",
          "[cli][load][schema]") {
  TempDir dir;
  const std::string table = UniqueName("cli_reordered");
  DropTables drop({table});
  auto conn = Connect();
  Query(*conn, "CREATE TABLE " + QuoteIdent(table) +
                   " (loaded_at timestamptz NOT NULL DEFAULT now(), comment text, ship_priority integer,"
                   " clerk varchar(255), order_priority varchar(255), order_date varchar(255) NOT NULL,"
                   " total_price double precision NOT NULL, order_status varchar(1) NOT NULL,"
                   " customer_key varchar(255) NOT NULL, order_key varchar(255) PRIMARY KEY, note text)");
  auto a = Order("a");
  a["ship_priority"] = 9;
  const std::string path = dir.Write("o.ndjson", Line(a) + Line(Order("b")));
  for (const char* mode : {"error", "nothing", "update"}) {
    CommandResult r = RunNomnom({"load", path, "--table", table, "--on-conflict", mode, "-q"});
    INFO(mode << ": " << r.err);
    CHECK(r.exit_code == 0);
    auto rows = TableRows(*conn, table);
    REQUIRE(rows.size() == 2);
    CHECK(Show(rows["a"]) ==
          Show(Row{"a", "cust-a", "O", "1234.5", "1996-01-02", "1-URGENT", "Clerk#000000007", "9", "comment for a"}));
    CHECK(QueryValue(*conn, "SELECT count(*) FROM " + QuoteIdent(table) +
                                " WHERE note IS NULL AND loaded_at IS NOT NULL") == "2");
  }
}
