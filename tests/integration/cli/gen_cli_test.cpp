// End-to-end tests of `nomnom gen tpch orders` and `nomnom schema`: row counts,
// seed determinism, CSV that PostgreSQL's COPY ... CSV loads into the same rows
// nomnom loads from the NDJSON, and a printed CREATE TABLE equal to the one
// `nomnom load` creates.
#include <catch2/catch.hpp>
#include <set>
#include <sstream>

#include "tests/support/cli_test_helpers.h"

using namespace nomnom;
using namespace nomnom::testing;
using namespace nomnom::testing::cli;
using nlohmann::json;

namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// Splits one RFC 4180 record (no embedded newlines). Returns nullopt when the
// quoting is malformed.
std::optional<std::vector<std::string>> CsvFields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false, was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          fields.back() += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        fields.back() += c;
      }
    } else if (c == ',') {
      fields.emplace_back();
      was_quoted = false;
    } else if (c == '"') {
      if (!fields.back().empty() || was_quoted) return std::nullopt;
      quoted = was_quoted = true;
    } else {
      if (was_quoted) return std::nullopt;
      fields.back() += c;
    }
  }
  if (quoted) return std::nullopt;
  return fields;
}

CommandResult Gen(const std::vector<std::string>& extra) {
  std::vector<std::string> args{"gen", "tpch", "orders"};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunNomnom(args);
}

// (attnum, name, type, not null) of every column, and the primary key columns.
std::string TableShape(PgConnection& conn, const std::string& table) {
  const std::string reg = "'" + QuoteIdent(table) + "'::regclass";
  PgRows cols = Query(conn,
                      "SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef "
                      "FROM pg_attribute a WHERE a.attrelid = " +
                          reg + " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum");
  std::string shape;
  for (const auto& r : cols.rows) {
    for (const auto& v : r) shape += v.value_or("NULL") + " ";
    shape += "\n";
  }
  shape += "pk: " + QueryValue(conn,
                               "SELECT coalesce(string_agg(a.attname, ',' ORDER BY k.ord), '') FROM pg_index i "
                               "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
                               "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                               "WHERE i.indisprimary AND i.indrelid = " +
                                   reg);
  shape +=
      "\nconstraints: " +
      QueryValue(conn,
                 "SELECT string_agg(contype::text, ',' ORDER BY contype) FROM pg_constraint WHERE conrelid = " + reg);
  return shape;
}

}  // namespace

TEST_CASE("gen tpch orders --sf 0.001 writes 1,500 Order objects", "[cli][gen]") {
  CommandResult r = Gen({"--sf", "0.001"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto lines = Lines(r.out);
  REQUIRE(lines.size() == 1500);
  CHECK(r.out.back() == '\n');
  const std::vector<std::string> names = {"order_key",   "customer_key",  "order_status",
                                          "total_price", "order_date",    "order_priority",
                                          "clerk",       "ship_priority", "comment"};
  std::set<std::string> keys;
  for (size_t i = 0; i < lines.size(); ++i) {
    INFO("line " << i + 1 << ": " << lines[i]);
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(lines[i], nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    std::vector<std::string> got;
    for (auto it = j.begin(); it != j.end(); ++it) got.push_back(it.key());
    REQUIRE(got == names);
    // The sparse dbgen key: only the first 8 of every 32 keys are used.
    CHECK(j["order_key"] == std::to_string((i / 8) * 32 + i % 8 + 1));
    CHECK(j["order_key"].is_string());
    CHECK(j["customer_key"].is_string());
    const std::string status = j["order_status"];
    CHECK((status == "F" || status == "O" || status == "P"));
    CHECK(j["total_price"].is_number());
    CHECK(j["ship_priority"] == 0);
    CHECK(j["order_date"].get<std::string>().size() == 10);
    keys.insert(j["order_key"].get<std::string>());
  }
  CHECK(keys.size() == 1500);
}

TEST_CASE("gen --seed is deterministic and -o writes the same bytes as stdout", "[cli][gen]") {
  TempDir dir;
  CommandResult a = Gen({"--sf", "0.001", "--seed", "42"});
  CommandResult b = Gen({"--sf", "0.001", "--seed", "42"});
  CommandResult c = Gen({"--sf", "0.001", "--seed", "43"});
  CommandResult d = Gen({"--sf", "0.001"});
  CommandResult e = Gen({"--sf", "0.001", "--seed", "0"});
  REQUIRE(a.exit_code == 0);
  REQUIRE(c.exit_code == 0);
  CHECK(a.out.size() > 100000);
  CHECK(a.out == b.out);
  CHECK(a.out != c.out);
  CHECK(d.out == e.out);  // the default seed is 0
  CHECK(d.out != a.out);
  // Different seeds differ row by row, not just somewhere.
  const auto la = Lines(a.out), lc = Lines(c.out);
  REQUIRE(la.size() == lc.size());
  int same = 0;
  for (size_t i = 0; i < la.size(); ++i) same += la[i] == lc[i];
  CHECK(same < 10);

  const std::string path = dir.path() + "/o.ndjson";
  CommandResult f = Gen({"--sf", "0.001", "--seed", "42", "-o", path});
  REQUIRE(f.exit_code == 0);
  CHECK(f.out.empty());
  CHECK(ReadFile(path) == a.out);

  CommandResult csv1 = Gen({"--sf", "0.001", "--seed", "7", "--format", "csv"});
  CommandResult csv2 = Gen({"--sf", "0.001", "--seed", "7", "--format", "csv"});
  REQUIRE(csv1.exit_code == 0);
  CHECK(csv1.out == csv2.out);

  CHECK(Gen({"--sf", "0.001", "--format", "xml"}).exit_code == 2);
  CHECK(Gen({"--sf", "0"}).exit_code == 2);
  CHECK(Gen({"--sf", "-1"}).exit_code == 2);
  CHECK(RunNomnom({"gen", "tpch"}).exit_code == 2);
  CHECK(Gen({"--sf", "0.001", "-o", dir.path() + "/no/such/dir/x"}).exit_code == 1);
}

TEST_CASE("gen --format csv loads with COPY ... CSV into the same rows nomnom loads from the NDJSON",
          "[cli][gen][schema]") {
  const std::string t_csv = UniqueName("gen_csv");
  const std::string t_json = UniqueName("gen_ndjson");
  DropTables drop({t_csv, t_json});
  CommandResult csv = Gen({"--sf", "0.001", "--seed", "5", "--format", "csv"});
  CommandResult nd = Gen({"--sf", "0.001", "--seed", "5"});
  REQUIRE(csv.exit_code == 0);
  REQUIRE(nd.exit_code == 0);

  const auto lines = Lines(csv.out);
  REQUIRE(lines.size() == 1500);
  size_t quoted = 0;
  for (const auto& line : lines) {
    INFO(line);
    auto fields = CsvFields(line);
    REQUIRE(fields.has_value());
    CHECK(fields->size() == 9);
    quoted += line.find('"') != std::string::npos;
  }
  CHECK(quoted > 0);  // comments with commas are quoted, so quoting is exercised

  auto conn = Connect();
  CommandResult schema = RunNomnom({"schema", "--table", t_csv});
  REQUIRE(schema.exit_code == 0);
  Query(*conn, schema.out);
  uint64_t copied = 0;
  auto err = conn->CopyIn("COPY " + QuoteIdent(t_csv) + " FROM STDIN (FORMAT csv)", {csv.out}, &copied);
  INFO((err ? err->message : std::string()));
  REQUIRE_FALSE(err.has_value());
  CHECK(copied == 1500);

  CommandResult load = RunNomnom({"load", "-", "--table", t_json, "--json"}, nd.out);
  INFO(load.err);
  REQUIRE(load.exit_code == 0);
  CHECK(Summary(load)["inserted"] == 1500);

  CHECK(Count(*conn, t_csv) == "1500");
  CHECK(Count(*conn, t_json) == "1500");
  CHECK(SymmetricDifference(*conn, t_csv, t_json) == "0");
  // No column came out NULL or empty from either path.
  CHECK(QueryValue(*conn, "SELECT count(*) FROM " + QuoteIdent(t_json) +
                              " WHERE order_priority IS NULL OR clerk IS NULL OR ship_priority IS NULL OR comment IS "
                              "NULL OR comment = ''") == "0");
  // The comparison is sensitive to a single changed value.
  Query(*conn, "UPDATE " + QuoteIdent(t_csv) + " SET total_price = total_price + 0.01 WHERE order_key = '1'");
  CHECK(SymmetricDifference(*conn, t_csv, t_json) == "2");
}

TEST_CASE("nomnom schema prints the CREATE TABLE that load creates", "[cli][schema]") {
  TempDir dir;
  const std::string t_printed = UniqueName("schema_printed");
  const std::string t_loaded = UniqueName("schema_loaded");
  DropTables drop({t_printed, t_loaded});
  CommandResult schema = RunNomnom({"schema", "--table", t_printed});
  INFO(schema.err);
  REQUIRE(schema.exit_code == 0);
  CHECK_THAT(schema.out, Catch::StartsWith("-- entity Order") &&
                             Catch::Contains("CREATE TABLE IF NOT EXISTS " + QuoteIdent(t_printed)));
  // The default and explicit entity print the same statement.
  CommandResult named = RunNomnom({"schema", "order", "--table", t_printed});
  CHECK(named.exit_code == 0);
  CHECK(named.out == schema.out);
  CommandResult plain = RunNomnom({"schema"});
  CHECK(plain.exit_code == 0);
  CHECK_THAT(plain.out, Catch::Contains("CREATE TABLE IF NOT EXISTS \"orders\""));
  CommandResult unknown = RunNomnom({"schema", "Nope"});
  CHECK(unknown.exit_code == 1);
  CHECK_THAT(unknown.err, Catch::Contains("Nope") && Catch::Contains("Order"));

  auto conn = Connect();
  Query(*conn, schema.out);
  const std::string path = dir.Write("o.ndjson", Line(Order("x")));
  CommandResult load = RunNomnom({"load", path, "--table", t_loaded, "-q"});
  INFO(load.err);
  REQUIRE(load.exit_code == 0);
  const std::string printed = TableShape(*conn, t_printed);
  const std::string loaded = TableShape(*conn, t_loaded);
  CHECK_THAT(printed, Catch::Contains("pk: order_key"));
  CHECK(printed == loaded);
  // nomnom accepts the table created from the printed statement, in every mode.
  for (const char* mode : {"error", "nothing", "update"}) {
    CommandResult r = RunNomnom({"load", path, "--table", t_printed, "--on-conflict", mode, "-q"});
    INFO(mode << ": " << r.err);
    CHECK(r.exit_code == 0);
  }
  CHECK(Count(*conn, t_printed) == "1");
}

TEST_CASE("schema --table with a schema-qualified name prints the table load uses", "[cli][schema]") {
  CommandResult schema = RunNomnom({"schema", "--table", "sales.orders"});
  REQUIRE(schema.exit_code == 0);
  CHECK_THAT(schema.out, Catch::Contains("CREATE TABLE IF NOT EXISTS \"sales\".\"orders\""));
}
