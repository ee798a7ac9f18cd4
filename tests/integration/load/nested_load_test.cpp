// Nested loads with `nomnom load --entities data/tpch/entities-nested`: one
// Order line fills `orders` and `order_line_items` in one transaction; bad
// elements reject their whole order (and only it); conflict modes per table
// (update replaces an order's line items, nothing keeps them).
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "tests/support/cli_test_helpers.h"

using namespace nomnom;
using namespace nomnom::testing;
using namespace nomnom::testing::cli;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr const char* kLineColumns =
    "order_key, line_number, part_key, supplier_key, quantity, extended_price, discount, tax, return_flag, "
    "line_status, ship_date, commit_date, receipt_date, ship_instruct, ship_mode, comment";

// A schema of its own per test, so the fixed table names of the nested
// entities do not collide; dropped at the end.
class Schema {
 public:
  Schema() : name_(UniqueName("nest")) {
    auto conn = Connect();
    Query(*conn, "CREATE SCHEMA " + QuoteIdent(name_));
  }
  ~Schema() {
    auto conn = PgConnection::Connect(DatabaseUrl(), "nomnom-tests-cleanup");
    if (!conn.ok()) return;
    (*conn)->TryExec("SET client_min_messages = warning");
    (*conn)->TryExec("DROP SCHEMA IF EXISTS " + QuoteIdent(name_) + " CASCADE");
  }
  Schema(const Schema&) = delete;
  Schema& operator=(const Schema&) = delete;
  const std::string& name() const { return name_; }
  // The database URL with search_path set to this schema.
  std::string Url() const {
    const std::string url = DatabaseUrl();
    return url + (url.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + name_;
  }
  std::unique_ptr<PgConnection> Conn() const {
    auto conn = Connect();
    Query(*conn, "SET search_path = " + QuoteIdent(name_));
    return conn;
  }

 private:
  std::string name_;
};

std::string EntitiesDir() { return SourcePath("data/tpch/entities-nested"); }

CommandResult LoadNested(const Schema& schema, const std::string& path, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"load", path, "--entities", EntitiesDir(), "--db", schema.Url(), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunNomnom(args);
}

ordered_json Item(int line, const std::string& part) {
  ordered_json i;
  i["line_number"] = line;
  i["part_key"] = part;
  i["supplier_key"] = "S-" + part;
  i["quantity"] = line * 2;
  i["extended_price"] = line * 10.5;
  return i;
}

ordered_json NestedOrder(const std::string& key, std::vector<ordered_json> items) {
  ordered_json o = Order(key);
  o["line_items"] = std::move(items);
  return o;
}

// Rows of a query as "a|b|NULL" lines, in the query's order.
std::vector<std::string> Rows(PgConnection& conn, const std::string& sql) {
  std::vector<std::string> out;
  for (const auto& r : Query(conn, sql).rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) line += (i ? "|" : "") + r[i].value_or("NULL");
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> Items(PgConnection& conn, const std::string& key) {
  return Rows(
      conn, "SELECT line_number, part_key FROM order_line_items WHERE order_key = '" + key + "' ORDER BY line_number");
}

}  // namespace

TEST_CASE("the original's example order with two line items loads into exactly the right rows", "[cli][nested]") {
  Schema schema;
  TempDir dir;
  const std::string path = dir.Write(
      "o.ndjson",
      R"({"order_key":"123","customer_key":"CUST-001","order_status":"O","total_price":99.99,"order_date":"2024-01-01","line_items":[)"
      R"({"line_number":1,"part_key":"PART-1","supplier_key":"SUPP-1","quantity":2,"extended_price":40.0,"discount":0.05,"tax":0.08,"return_flag":"N","line_status":"O","ship_date":"2024-01-05","ship_mode":"AIR"},)"
      R"({"line_number":2,"part_key":"PART-2","supplier_key":"SUPP-2","quantity":1.5,"extended_price":59.99}]})"
      "\n");
  CommandResult r = LoadNested(schema, path);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json s = Summary(r);
  CHECK(s["rows_read"] == 1);
  CHECK(s["inserted"] == 1);
  REQUIRE(s["tables"].size() == 2);
  CHECK(s["tables"][0]["table"] == "\"orders\"");
  CHECK(s["tables"][0]["inserted"] == 1);
  CHECK(s["tables"][1]["table"] == "\"order_line_items\"");
  CHECK(s["tables"][1]["inserted"] == 2);
  auto conn = schema.Conn();
  CHECK(Rows(*conn, std::string("SELECT ") + kOrderColumns + " FROM orders") ==
        std::vector<std::string>{"123|CUST-001|O|99.99|2024-01-01|NULL|NULL|NULL|NULL"});
  CHECK(Rows(*conn, std::string("SELECT ") + kLineColumns + " FROM order_line_items ORDER BY line_number") ==
        std::vector<std::string>{
            "123|1|PART-1|SUPP-1|2|40|0.05|0.08|N|O|2024-01-05|NULL|NULL|NULL|AIR|NULL",
            "123|2|PART-2|SUPP-2|1.5|59.99|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
        });
  // The identity column numbered them.
  CHECK(Rows(*conn, "SELECT count(DISTINCT id), min(id) > 0 FROM order_line_items") == std::vector<std::string>{"2|t"});
}

TEST_CASE("bad nested input rejects its whole order, names the element, and costs no other order",
          "[cli][nested][rejects]") {
  Schema schema;
  TempDir dir;
  struct Bad {
    std::string key;
    ordered_json order;
    std::string error;
  };
  std::vector<Bad> bad;
  {
    auto missing = Item(2, "p");
    missing.erase("part_key");
    bad.push_back({"missing", NestedOrder("missing", {Item(1, "p"), missing, Item(3, "p")}),
                   "line_items[1].part_key: missing required field"});
    auto wrong = Item(4, "p");
    wrong["quantity"] = "four";
    bad.push_back({"wrong", NestedOrder("wrong", {Item(1, "p"), Item(2, "p"), Item(3, "p"), wrong}),
                   "line_items[3].quantity: expected a number, got string"});
    auto not_array = Order("notarray");
    not_array["line_items"] = Item(1, "p");
    bad.push_back({"notarray", not_array, "field 'line_items': expected an array, got object"});
    bad.push_back({"empty", NestedOrder("empty", {}), "field 'line_items': empty array"});
    bad.push_back({"dup", NestedOrder("dup", {Item(1, "p"), Item(2, "p"), Item(1, "q")}),
                   "line_items[2]: duplicate key (order_key, line_number) of line_items[0]"});
    bad.push_back({"absent", Order("absent"), "missing required field 'line_items'"});
    auto not_object = NestedOrder("notobject", {Item(1, "p")});
    not_object["line_items"].push_back(7);
    bad.push_back({"notobject", not_object, "line_items[1]: expected an object, got number"});
    auto too_long = Item(1, "p");
    too_long["return_flag"] = "NN";
    bad.push_back({"toolong", NestedOrder("toolong", {too_long}), "line_items[0].return_flag: "});
  }
  std::string content;
  int good = 0;
  for (const Bad& b : bad) {
    content += Line(NestedOrder("good" + std::to_string(good), {Item(1, "a"), Item(2, "b")}));
    ++good;
    content += Line(b.order);
  }
  const std::string path = dir.Write("o.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";
  CommandResult r = LoadNested(schema, path, {"--rejects", rejects});
  INFO(r.err);
  CHECK(r.exit_code == 3);
  json s = Summary(r);
  CHECK(s["rejected"] == bad.size());
  CHECK(s["inserted"] == good);
  auto recs = ReadRejects(rejects);
  REQUIRE(recs.size() == bad.size());
  for (size_t i = 0; i < bad.size(); ++i) {
    INFO("order " << bad[i].key << ": " << recs[i]["error"]);
    CHECK(recs[i]["line"] == 2 * (i + 1));
    CHECK_THAT(recs[i]["error"].get<std::string>(), Catch::Matchers::StartsWith(bad[i].error));
  }
  auto conn = schema.Conn();
  CHECK(QueryValue(*conn, "SELECT count(*) FROM orders") == std::to_string(good));
  CHECK(QueryValue(*conn, "SELECT count(*) FROM order_line_items") == std::to_string(2 * good));
  CHECK(QueryValue(*conn, "SELECT count(*) FROM order_line_items WHERE order_key NOT LIKE 'good%'") == "0");
}

TEST_CASE("a line item PostgreSQL rejects rejects its whole order only", "[cli][nested][rejects]") {
  Schema schema;
  TempDir dir;
  auto conn = schema.Conn();
  // Create the tables first (a load of nothing), then add a CHECK to the line items.
  const std::string first = dir.Write("first.ndjson", Line(NestedOrder("seed", {Item(1, "s")})));
  REQUIRE(LoadNested(schema, first).exit_code == 0);
  Query(*conn, "ALTER TABLE order_line_items ADD CONSTRAINT small CHECK (quantity < 100)");
  std::string content;
  for (int i = 0; i < 50; ++i) {
    std::vector<ordered_json> items = {Item(1, "x"), Item(2, "y"), Item(3, "z")};
    if (i == 17 || i == 33) items[2]["quantity"] = 500;
    content += Line(NestedOrder("k" + std::to_string(i), items));
  }
  const std::string path = dir.Write("o.ndjson", content);
  for (const std::string mode : {"error", "nothing", "update"}) {
    DYNAMIC_SECTION("mode " << mode) {
      const std::string rejects = dir.path() + "/rejects-" + mode + ".ndjson";
      CommandResult r = LoadNested(schema, path, {"--on-conflict", mode, "--rejects", rejects});
      INFO(r.err);
      CHECK(r.exit_code == 3);
      auto recs = ReadRejects(rejects);
      REQUIRE(recs.size() == 2);
      CHECK(recs[0]["line"] == 18);
      CHECK(recs[1]["line"] == 34);
      CHECK_THAT(recs[0]["error"].get<std::string>(),
                 Catch::Matchers::Contains("order_line_items") && Catch::Matchers::Contains("small"));
      CHECK(QueryValue(*conn, "SELECT count(*) FROM orders WHERE order_key LIKE 'k%'") == "48");
      CHECK(QueryValue(*conn, "SELECT count(*) FROM order_line_items WHERE order_key LIKE 'k%'") == "144");
      CHECK(QueryValue(*conn, "SELECT count(*) FROM orders WHERE order_key IN ('k17', 'k33')") == "0");
      CHECK(QueryValue(*conn, "SELECT count(*) FROM order_line_items WHERE order_key IN ('k17', 'k33')") == "0");
    }
  }
}

TEST_CASE("conflict modes per table: update replaces an order's line items, nothing keeps them",
          "[cli][nested][conflict]") {
  Schema schema;
  TempDir dir;
  const std::string first = dir.Write("a.ndjson", Line(NestedOrder("o1", {Item(1, "a"), Item(2, "b"), Item(3, "c")})) +
                                                      Line(NestedOrder("o2", {Item(1, "a")})));
  auto resent = NestedOrder("o1", {Item(2, "B"), Item(4, "D")});
  resent["customer_key"] = "changed";
  const std::string second = dir.Write("b.ndjson", Line(resent) + Line(NestedOrder("o3", {Item(1, "n")})));
  auto conn = schema.Conn();
  REQUIRE(LoadNested(schema, first).exit_code == 0);

  SECTION("nothing: the existing order and its items stay as they are; the new order loads") {
    CommandResult r = LoadNested(schema, second, {"--on-conflict", "nothing"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json s = Summary(r);
    CHECK(s["tables"][0]["inserted"] == 1);
    CHECK(s["tables"][0]["skipped"] == 1);
    CHECK(s["tables"][1]["inserted"] == 1);
    CHECK(s["tables"][1]["skipped"] == 2);
    CHECK(QueryValue(*conn, "SELECT customer_key FROM orders WHERE order_key = 'o1'") == "cust-o1");
    CHECK(Items(*conn, "o1") == std::vector<std::string>{"1|a", "2|b", "3|c"});
    CHECK(Items(*conn, "o3") == std::vector<std::string>{"1|n"});
  }
  SECTION("update: the re-sent order replaces its items; re-loading changes nothing") {
    for (int pass = 0; pass < 2; ++pass) {
      CommandResult r = LoadNested(schema, second, {"--on-conflict", "update"});
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      // o1's items 1 and 3 are gone the first time; nothing the second.
      CHECK(Summary(r)["tables"][1]["deleted"] == (pass == 0 ? 2 : 0));
      CHECK(QueryValue(*conn, "SELECT customer_key FROM orders WHERE order_key = 'o1'") == "changed");
      CHECK(Items(*conn, "o1") == std::vector<std::string>{"2|B", "4|D"});
      CHECK(Items(*conn, "o2") == std::vector<std::string>{"1|a"});
      CHECK(Items(*conn, "o3") == std::vector<std::string>{"1|n"});
    }
  }
  SECTION("error: the re-sent order is a duplicate-key reject, whole") {
    const std::string rejects = dir.path() + "/rejects.ndjson";
    CommandResult r = LoadNested(schema, second, {"--on-conflict", "error", "--rejects", rejects});
    CHECK(r.exit_code == 3);
    auto recs = ReadRejects(rejects);
    REQUIRE(recs.size() == 1);
    CHECK(recs[0]["line"] == 1);
    CHECK(Items(*conn, "o1") == std::vector<std::string>{"1|a", "2|b", "3|c"});
    CHECK(Items(*conn, "o3") == std::vector<std::string>{"1|n"});
  }
}

TEST_CASE("nothing: an order a concurrent transaction inserts keeps that transaction's line items",
          "[cli][nested][conflict]") {
  // The load's root insert waits for the other transaction's uncommitted row
  // with the same key and then skips it: none of the load's items for that
  // order may be added to the other transaction's. (Deciding "the order is
  // new" before the insert added item 2 here.)
  Schema schema;
  TempDir dir;
  REQUIRE(LoadNested(schema, dir.Write("seed.ndjson", Line(NestedOrder("seed", {Item(1, "s")})))).exit_code == 0);
  auto conn = schema.Conn();
  auto other = schema.Conn();
  Query(*other, "BEGIN");
  Query(*other, std::string("INSERT INTO orders (") + kOrderColumns + ") SELECT 'k'" +
                    std::string(kOrderColumns).substr(std::string(kOrderColumns).find(',')) +
                    " FROM orders WHERE order_key = 'seed'");
  Query(*other,
        "INSERT INTO order_line_items (order_key, line_number, part_key, supplier_key, quantity, extended_price)"
        " VALUES ('k', 1, 'theirs', 'S', 1, 1)");
  const std::string path = dir.Write("k.ndjson", Line(NestedOrder("k", {Item(1, "mine1"), Item(2, "mine2")})) +
                                                     Line(NestedOrder("n", {Item(1, "n")})));
  CommandResult r;
  std::thread load([&] { r = LoadNested(schema, path, {"--on-conflict", "nothing"}); });
  bool waited = false;  // the load is blocked on the other transaction's row
  for (int i = 0; i < 600 && !waited; ++i) {
    waited = QueryValue(*conn,
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = "
                        "current_database() AND pid <> pg_backend_pid()") != "0";
    if (!waited) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Query(*other, "COMMIT");
  load.join();
  REQUIRE(waited);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json s = Summary(r);
  CHECK(s["tables"][0]["inserted"] == 1);
  CHECK(s["tables"][0]["skipped"] == 1);
  CHECK(Items(*conn, "k") == std::vector<std::string>{"1|theirs"});
  CHECK(Items(*conn, "n") == std::vector<std::string>{"1|n"});
}

TEST_CASE("an order repeated in one file: its line items are the winning occurrence's", "[cli][nested][conflict]") {
  Schema schema;
  TempDir dir;
  auto a = NestedOrder("r", {Item(1, "a1"), Item(2, "a2"), Item(3, "a3")});
  a["customer_key"] = "A";
  auto b = NestedOrder("r", {Item(1, "b1"), Item(5, "b5")});
  b["customer_key"] = "B";
  std::string content = Line(a);
  for (int i = 0; i < 20; ++i) content += Line(NestedOrder("x" + std::to_string(i), {Item(1, "x")}));
  content += Line(b);
  const std::string path = dir.Write("o.ndjson", content);
  auto conn = schema.Conn();
  SECTION("update: the last") {
    CommandResult r = LoadNested(schema, path, {"--on-conflict", "update"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(QueryValue(*conn, "SELECT customer_key FROM orders WHERE order_key = 'r'") == "B");
    CHECK(Items(*conn, "r") == std::vector<std::string>{"1|b1", "5|b5"});
  }
  SECTION("nothing: the first") {
    CommandResult r = LoadNested(schema, path, {"--on-conflict", "nothing"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(QueryValue(*conn, "SELECT customer_key FROM orders WHERE order_key = 'r'") == "A");
    CHECK(Items(*conn, "r") == std::vector<std::string>{"1|a1", "2|a2", "3|a3"});
  }
  CHECK(QueryValue(*conn, "SELECT count(*) FROM orders") == "21");
}

TEST_CASE("gen tpch orders --nested loads every order and line item; several jobs, small batches",
          "[cli][nested][gen]") {
  Schema schema;
  TempDir dir;
  const std::string path = dir.path() + "/nested.ndjson";
  CommandResult g = RunNomnom({"gen", "tpch", "orders", "--sf", "0.002", "--nested", "-o", path});
  REQUIRE(g.exit_code == 0);
  CommandResult g2 = RunNomnom({"gen", "tpch", "orders", "--sf", "0.002", "--nested"});
  CHECK(g2.out == ReadFile(path));  // deterministic
  uint64_t orders = 0, items = 0;
  {
    std::istringstream in(ReadFile(path));
    std::string line;
    while (std::getline(in, line)) {
      auto j = json::parse(line);
      ++orders;
      REQUIRE(j["line_items"].is_array());
      items += j["line_items"].size();
    }
  }
  CHECK(orders == 3000);
  CHECK(items > 3 * orders);
  CHECK(items < 5 * orders);
  // The orders' own fields are exactly the flat generator's.
  CommandResult flat = RunNomnom({"gen", "tpch", "orders", "--sf", "0.002"});
  {
    std::istringstream a(ReadFile(path)), b(flat.out);
    std::string la, lb;
    while (std::getline(a, la) && std::getline(b, lb)) {
      auto ja = ordered_json::parse(la);
      ja.erase("line_items");
      REQUIRE(ja.dump() == ordered_json::parse(lb).dump());
    }
  }
  for (const std::string mode : {"error", "nothing", "update"}) {
    CommandResult r = LoadNested(schema, path, {"--on-conflict", mode, "--jobs", "3", "--batch-rows", "300"});
    INFO(mode << ": " << r.err);
    REQUIRE(r.exit_code == 0);
    if (mode == "error") {
      CHECK(Summary(r)["tables"][1]["inserted"] == items);
    }
    auto conn = schema.Conn();
    CHECK(QueryValue(*conn, "SELECT count(*) FROM orders") == std::to_string(orders));
    CHECK(QueryValue(*conn, "SELECT count(*) FROM order_line_items") == std::to_string(items));
    CHECK(QueryValue(*conn,
                     "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_line_items l "
                     "WHERE l.order_key = o.order_key)") == "0");
    if (mode == "error") {
      // A second plain COPY of the same file rejects every order whole, adds nothing.
      CommandResult again = LoadNested(schema, path, {"--on-conflict", "error"});
      CHECK(again.exit_code == 3);
      CHECK(Summary(again)["rejected"] == orders);
      CHECK(QueryValue(*conn, "SELECT count(*) FROM order_line_items") == std::to_string(items));
    }
  }
}

TEST_CASE("a derived entity loads flat rows directly; --strict accepts the list field", "[cli][nested]") {
  Schema schema;
  TempDir dir;
  ordered_json li = Item(1, "p");
  li["order_key"] = "o9";
  const std::string flat = dir.Write("li.ndjson", Line(li));
  CommandResult r = RunNomnom(
      {"load", flat, "--entities", EntitiesDir(), "--entity", "OrderLineItem", "--db", schema.Url(), "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(Summary(r)["inserted"] == 1);
  auto conn = schema.Conn();
  CHECK(Items(*conn, "o9") == std::vector<std::string>{"1|p"});
  const std::string nested = dir.Write("o.ndjson", Line(NestedOrder("s1", {Item(1, "p")})));
  CommandResult strict = LoadNested(schema, nested, {"--strict"});
  INFO(strict.err);
  CHECK(strict.exit_code == 0);
  CHECK(Items(*conn, "s1") == std::vector<std::string>{"1|p"});
  // --strict also checks each element's keys.
  auto odd = Item(1, "p");
  odd["colour"] = "red";
  const std::string extra = dir.Write("x.ndjson", Line(NestedOrder("s2", {Item(2, "q"), odd})));
  CommandResult lax = LoadNested(schema, extra);
  CHECK(lax.exit_code == 0);
  CHECK(Items(*conn, "s2") == std::vector<std::string>{"1|p", "2|q"});
  CommandResult refused = LoadNested(schema, extra, {"--strict", "--on-conflict", "update"});
  CHECK(refused.exit_code == 3);
  CHECK_THAT(refused.err, Catch::Matchers::Contains("line_items[1]: unknown field 'colour' (strict mode)"));
}

TEST_CASE("nomnom schema prints each entity's DDL; the bundled Order's is unchanged; unknown keys warn",
          "[cli][nested][schema]") {
  CommandResult all = RunNomnom({"schema", "--entities", EntitiesDir()});
  INFO(all.err);
  REQUIRE(all.exit_code == 0);
  CHECK(all.err.empty());
  for (const char* header : {"-- entity Nation (", "-- entity Order (", "-- entity OrderLineItem ("}) {
    CHECK_THAT(all.out, Catch::Matchers::Contains(header));
  }
  CHECK_THAT(all.out, Catch::Matchers::Contains("  \"id\" integer GENERATED BY DEFAULT AS IDENTITY,\n") &&
                          Catch::Matchers::Contains("  UNIQUE (\"order_key\", \"line_number\")\n"));
  // A name: that entity and the ones derived from it.
  CommandResult order = RunNomnom({"schema", "Order", "--entities", EntitiesDir()});
  REQUIRE(order.exit_code == 0);
  CHECK_THAT(order.out, Catch::Matchers::Contains("-- entity OrderLineItem ("));
  CHECK_THAT(order.out, !Catch::Matchers::Contains("-- entity Nation ("));
  // The bundled Order, exactly as before.
  CommandResult bundled = RunNomnom({"schema", "Order"});
  REQUIRE(bundled.exit_code == 0);
  const std::string ddl = bundled.out.substr(bundled.out.find('\n') + 1);
  CHECK(ddl ==
        "CREATE TABLE IF NOT EXISTS \"orders\" (\n"
        "  \"order_key\" character varying(255) NOT NULL,\n"
        "  \"customer_key\" character varying(255) NOT NULL,\n"
        "  \"order_status\" character varying(1) NOT NULL,\n"
        "  \"total_price\" double precision NOT NULL,\n"
        "  \"order_date\" character varying(255) NOT NULL,\n"
        "  \"order_priority\" character varying(255),\n"
        "  \"clerk\" character varying(255),\n"
        "  \"ship_priority\" integer,\n"
        "  \"comment\" text,\n"
        "  PRIMARY KEY (\"order_key\")\n"
        ");\n");
  TempDir dir;
  dir.Write("e.yaml", "entity:\n  name: E\n  colour: blue\n  fields:\n    - {name: id, type: Integer}\n");
  CommandResult warned = RunNomnom({"schema", "--entities", dir.path()});
  REQUIRE(warned.exit_code == 0);
  CHECK_THAT(warned.err, Catch::Matchers::Contains("warning") && Catch::Matchers::Contains("e.yaml:3") &&
                             Catch::Matchers::Contains("'colour'"));
}

TEST_CASE("load --fresh is refused for an entity with derived entities, and nothing is written",
          "[cli][nested][fresh]") {
  Schema schema;
  TempDir dir;
  const std::string path = dir.Write("o.ndjson", NestedOrder("f-1", {Item(1, "P-1")}).dump() + "\n");
  CommandResult r = LoadNested(schema, path, {"--fresh"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--fresh loads one table") && Catch::Contains("derived entities"));
  auto conn = schema.Conn();
  CHECK(Query(*conn, "SELECT to_regclass('orders') IS NULL").rows[0][0].value_or("") == "t");
}

// ---- depth 2: Order -> OrderLineItem -> OrderLineItemAdjustment (tests/fixtures/entities-deep) ----

namespace {

std::string DeepDir() { return SourcePath("tests/fixtures/entities-deep"); }

CommandResult LoadDeep(const Schema& schema, const std::string& path, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"load", path, "--entities", DeepDir(), "--db", schema.Url(), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunNomnom(args);
}

ordered_json Adj(int no, double amount, const std::string& reason = "") {
  ordered_json a;
  a["no"] = no;
  a["amount"] = amount;
  if (!reason.empty()) a["reason"] = reason;
  return a;
}

// A line item; adjs null: no "adjustments" key.
ordered_json DeepItem(int line, const std::string& part, std::optional<std::vector<ordered_json>> adjs) {
  ordered_json i;
  i["line_number"] = line;
  i["part_key"] = part;
  if (adjs) i["adjustments"] = *adjs;
  return i;
}

ordered_json DeepOrder(const std::string& key, const std::string& customer, std::vector<ordered_json> items) {
  ordered_json o;
  o["order_key"] = key;
  o["customer_key"] = customer;
  o["line_items"] = std::move(items);
  return o;
}

struct DeepRows {
  std::vector<std::string> orders, items, adjs;
  bool operator==(const DeepRows&) const = default;
};

DeepRows ReadDeep(PgConnection& conn) {
  return {Rows(conn, "SELECT order_key, customer_key FROM orders ORDER BY 1"),
          Rows(conn, "SELECT order_key, line_number, part_key FROM order_line_items ORDER BY 1, 2"),
          Rows(conn,
               "SELECT order_key, line_number, adjustment_no, amount, reason FROM order_line_item_adjustments "
               "ORDER BY 1, 2, 3")};
}

std::string Show(const DeepRows& r) {
  std::string s;
  for (const auto* v : {&r.orders, &r.items, &r.adjs}) {
    s += "[";
    for (const auto& l : *v) s += l + "; ";
    s += "]\n";
  }
  return s;
}

// The first load of each depth-2 test.
const DeepRows kDeepFirst = {
    {"o1|c1", "o2|c2"},
    {"o1|1|p1", "o1|2|p2", "o2|1|q1"},
    {"o1|1|1|5|promo", "o1|1|2|-1.5|NULL", "o2|1|1|2|NULL"},
};

std::string DeepFirstFile(TempDir& dir) {
  return dir.Write("first.ndjson",
                   Line(DeepOrder("o1", "c1",
                                  {DeepItem(1, "p1", std::vector<ordered_json>{Adj(1, 5, "promo"), Adj(2, -1.5)}),
                                   DeepItem(2, "p2", std::nullopt)})) +
                       Line(DeepOrder("o2", "c2", {DeepItem(1, "q1", std::vector<ordered_json>{Adj(1, 2)})})));
}

}  // namespace

TEST_CASE("depth 2: one line fills three tables; the summary counts every table", "[cli][nested][deep]") {
  Schema schema;
  TempDir dir;
  CommandResult r = LoadDeep(schema, DeepFirstFile(dir));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  json s = Summary(r);
  REQUIRE(s["tables"].size() == 3);
  CHECK(s["tables"][0]["table"] == "\"orders\"");
  CHECK(s["tables"][1]["table"] == "\"order_line_items\"");
  CHECK(s["tables"][2]["table"] == "\"order_line_item_adjustments\"");
  CHECK(s["tables"][0]["inserted"] == 2);
  CHECK(s["tables"][1]["inserted"] == 3);
  CHECK(s["tables"][2]["inserted"] == 3);
  auto conn = schema.Conn();
  const DeepRows got = ReadDeep(*conn);
  INFO(Show(got));
  CHECK(got == kDeepFirst);
  // The text summary names every table too.
  CommandResult text = RunNomnom(
      {"load", DeepFirstFile(dir), "--entities", DeepDir(), "--db", schema.Url(), "--on-conflict", "nothing"});
  INFO(text.err << text.out);
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.out + text.err, Catch::Matchers::Contains("order_line_item_adjustments"));
  // nomnom schema Order: parents before children.
  CommandResult ddl = RunNomnom({"schema", "Order", "--entities", DeepDir()});
  REQUIRE(ddl.exit_code == 0);
  const size_t a = ddl.out.find("-- entity Order ("), b = ddl.out.find("-- entity OrderLineItem ("),
               c = ddl.out.find("-- entity OrderLineItemAdjustment (");
  CHECK(a < b);
  CHECK(b < c);
  CHECK(c != std::string::npos);
}

TEST_CASE("depth 2: a bad grandchild rejects its whole order, named by its full path, and only it",
          "[cli][nested][deep][rejects]") {
  Schema schema;
  TempDir dir;
  ordered_json bad_amount = Adj(2, 0);
  bad_amount["amount"] = "lots";
  std::string content =
      Line(DeepOrder("g1", "c", {DeepItem(1, "a", std::vector<ordered_json>{Adj(1, 1)})})) +
      Line(DeepOrder(
          "bad", "c",
          {DeepItem(1, "a", std::nullopt), DeepItem(2, "b", std::vector<ordered_json>{Adj(1, 1), bad_amount})})) +
      Line(DeepOrder("dup", "c", {DeepItem(1, "a", std::vector<ordered_json>{Adj(1, 1), Adj(1, 2)})})) +
      Line(DeepOrder("g2", "c", {DeepItem(1, "a", std::vector<ordered_json>{})}));
  const std::string path = dir.Write("o.ndjson", content);
  const std::string rejects = dir.path() + "/rejects.ndjson";
  for (const std::string mode : {"error", "nothing", "update"}) {
    DYNAMIC_SECTION("mode " << mode) {
      CommandResult r = LoadDeep(schema, path, {"--on-conflict", mode, "--rejects", rejects});
      INFO(r.err);
      CHECK(r.exit_code == 3);
      auto recs = ReadRejects(rejects);
      REQUIRE(recs.size() == 2);
      CHECK(recs[0]["line"] == 2);
      CHECK(recs[0]["error"] == "line_items[1].adjustments[1].amount: expected a number, got string");
      CHECK(recs[1]["line"] == 3);
      CHECK_THAT(recs[1]["error"].get<std::string>(),
                 Catch::Matchers::StartsWith("line_items[0].adjustments[1]: duplicate key (order_key, line_number, "
                                             "adjustment_no) of line_items[0].adjustments[0]"));
      auto conn = schema.Conn();
      const DeepRows got = ReadDeep(*conn);
      INFO(Show(got));
      CHECK(got == DeepRows{{"g1|c", "g2|c"}, {"g1|1|a", "g2|1|a"}, {"g1|1|1|1|NULL"}});
    }
  }
}

TEST_CASE("depth 2, conflict modes: update replaces a re-sent order's whole subtree, nothing keeps it",
          "[cli][nested][deep][conflict]") {
  Schema schema;
  TempDir dir;
  auto conn = schema.Conn();
  REQUIRE(LoadDeep(schema, DeepFirstFile(dir)).exit_code == 0);
  REQUIRE(ReadDeep(*conn) == kDeepFirst);
  // o1: item 1 (and its two adjustments) gone, item 2 gains one, item 3 new
  // with an empty list; o2: its item keeps no adjustments; o3: new.
  const std::string second = dir.Write(
      "second.ndjson", Line(DeepOrder("o1", "c1-new",
                                      {DeepItem(2, "p2-new", std::vector<ordered_json>{Adj(1, 9, "late")}),
                                       DeepItem(3, "p3", std::vector<ordered_json>{})})) +
                           Line(DeepOrder("o2", "c2", {DeepItem(1, "q1", std::nullopt)})) +
                           Line(DeepOrder("o3", "c3", {DeepItem(1, "r1", std::vector<ordered_json>{Adj(1, 1)})})));

  SECTION("nothing: existing orders keep their whole subtree; the new order loads") {
    CommandResult r = LoadDeep(schema, second, {"--on-conflict", "nothing"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    json s = Summary(r);
    CHECK(s["tables"][0]["inserted"] == 1);
    CHECK(s["tables"][0]["skipped"] == 2);
    CHECK(s["tables"][1]["inserted"] == 1);
    CHECK(s["tables"][1]["skipped"] == 3);
    // o1's item 2 had no adjustments: its new one is not added either.
    CHECK(s["tables"][2]["inserted"] == 1);
    CHECK(s["tables"][2]["skipped"] == 1);
    const DeepRows got = ReadDeep(*conn);
    INFO(Show(got));
    CHECK(got == DeepRows{{"o1|c1", "o2|c2", "o3|c3"},
                          {"o1|1|p1", "o1|2|p2", "o2|1|q1", "o3|1|r1"},
                          {"o1|1|1|5|promo", "o1|1|2|-1.5|NULL", "o2|1|1|2|NULL", "o3|1|1|1|NULL"}});
  }
  SECTION("update: each re-sent order's subtree is exactly its line's; re-loading changes nothing") {
    for (int pass = 0; pass < 2; ++pass) {
      CommandResult r = LoadDeep(schema, second, {"--on-conflict", "update"});
      INFO("pass " << pass << ": " << r.err);
      REQUIRE(r.exit_code == 0);
      json s = Summary(r);
      // First pass: o1's item 1 goes; its two adjustments and o2's one go.
      CHECK(s["tables"][1]["deleted"] == (pass == 0 ? 1 : 0));
      CHECK(s["tables"][2]["deleted"] == (pass == 0 ? 3 : 0));
      const DeepRows got = ReadDeep(*conn);
      INFO(Show(got));
      CHECK(got == DeepRows{{"o1|c1-new", "o2|c2", "o3|c3"},
                            {"o1|2|p2-new", "o1|3|p3", "o2|1|q1", "o3|1|r1"},
                            {"o1|2|1|9|late", "o3|1|1|1|NULL"}});
    }
  }
  SECTION("error: a re-sent order is a duplicate-key reject, whole; the new order loads") {
    const std::string rejects = dir.path() + "/rejects.ndjson";
    CommandResult r = LoadDeep(schema, second, {"--on-conflict", "error", "--rejects", rejects});
    INFO(r.err);
    CHECK(r.exit_code == 3);
    auto recs = ReadRejects(rejects);
    REQUIRE(recs.size() == 2);
    CHECK(recs[0]["line"] == 1);
    CHECK(recs[1]["line"] == 2);
    const DeepRows got = ReadDeep(*conn);
    INFO(Show(got));
    CHECK(got == DeepRows{{"o1|c1", "o2|c2", "o3|c3"},
                          {"o1|1|p1", "o1|2|p2", "o2|1|q1", "o3|1|r1"},
                          {"o1|1|1|5|promo", "o1|1|2|-1.5|NULL", "o2|1|1|2|NULL", "o3|1|1|1|NULL"}});
  }
}

TEST_CASE("entities that repeat for each other in a cycle are a clear error naming them", "[cli][nested][deep]") {
  TempDir dir;
  dir.Write("a.yaml",
            "entity:\n  name: A\n  source_type: derived\n  repeated_for: {entity: B, field: bs}\n  fields:\n"
            "    - {name: id, type: Integer}\n    - {name: as, type: \"List[Object]\"}\n");
  dir.Write("b.yaml",
            "entity:\n  name: B\n  source_type: derived\n  repeated_for: {entity: A, field: as}\n  fields:\n"
            "    - {name: id, type: Integer}\n    - {name: bs, type: \"List[Object]\"}\n");
  CommandResult r = RunNomnom({"schema", "--entities", dir.path()});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Matchers::Contains("cycle (A -> B -> A)"));
}

TEST_CASE("depth 2 from the middle: a derived entity loaded as the root fills its own derived table",
          "[cli][nested][deep]") {
  Schema schema;
  TempDir dir;
  auto item = [](int line, std::vector<ordered_json> adjs) {
    ordered_json i = DeepItem(line, "p" + std::to_string(line), adjs);
    i["order_key"] = "m1";  // a root's own key here (copied from Order in a load of Order)
    return i;
  };
  const std::string first = dir.Write("a.ndjson", Line(item(1, {Adj(1, 1), Adj(2, 2)})) + Line(item(2, {Adj(1, 3)})));
  const std::string second = dir.Write("b.ndjson", Line(item(1, {})) + Line(item(2, {Adj(2, 20)})));
  auto load = [&](const std::string& path) {
    return RunNomnom({"load", path, "--entities", DeepDir(), "--entity", "OrderLineItem", "--db", schema.Url(),
                      "--json", "--on-conflict", "update"});
  };
  CommandResult r = load(first);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(Summary(r)["tables"].size() == 2);
  auto conn = schema.Conn();
  const std::string adjs =
      "SELECT order_key, line_number, adjustment_no, amount FROM order_line_item_adjustments ORDER BY 1, 2, 3";
  CHECK(Rows(*conn, adjs) == std::vector<std::string>{"m1|1|1|1", "m1|1|2|2", "m1|2|1|3"});
  // Each re-sent item replaces its adjustments (linked by the item's key,
  // order_key included), also item 1 whose list is now empty.
  r = load(second);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(Summary(r)["tables"][1]["deleted"] == 3);
  CHECK(Rows(*conn, adjs) == std::vector<std::string>{"m1|2|2|20"});
}
