// The full TPC-H entity files (data/tpch/entities-full): every table parses
// with the spec's column names, types and keys, and gives the expected DDL.
// Also Decimal's `args: [precision, scale]`. Pure unit tests.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "core/format/schema.h"
#include "tests/support/test_env.h"

using Catch::Matchers::Contains;
using nomnom::Entity;
using nomnom::testing::SourcePath;

TEST_CASE("the eight TPC-H tables parse with the spec's columns and keys", "[schema][tpch]") {
  auto all = nomnom::LoadEntityDir(SourcePath("data/tpch/entities-full"));
  INFO((all.ok() ? std::string() : all.status().message()));
  REQUIRE(all.ok());
  // table -> {column count, key columns}
  const std::map<std::string, std::pair<size_t, std::vector<std::string>>> want = {
      {"region", {3, {"r_regionkey"}}}, {"nation", {4, {"n_nationkey"}}},
      {"supplier", {7, {"s_suppkey"}}}, {"customer", {8, {"c_custkey"}}},
      {"part", {9, {"p_partkey"}}},     {"partsupp", {5, {"ps_partkey", "ps_suppkey"}}},
      {"orders", {9, {"o_orderkey"}}},  {"lineitem", {16, {"l_orderkey", "l_linenumber"}}},
  };
  REQUIRE(all->size() == want.size());
  for (const Entity& e : *all) {
    INFO(e.table);
    auto it = want.find(e.table);
    REQUIRE(it != want.end());
    CHECK(e.warnings.empty());
    CHECK(e.fields.size() == it->second.first);
    std::vector<std::string> keys;
    for (size_t k : e.key_fields) keys.push_back(e.fields[k].name);
    CHECK(keys == it->second.second);
    for (const auto& f : e.fields) CHECK_FALSE(f.nullable);
  }
}

TEST_CASE("TPC-H DDL uses NUMERIC(15,2), DATE and VARCHAR(n)", "[schema][tpch]") {
  auto li = nomnom::LoadEntityFile(SourcePath("data/tpch/entities-full/lineitem.yaml"));
  REQUIRE(li.ok());
  const std::string ddl = li->CreateTableSql();
  CHECK_THAT(ddl, Contains("CREATE TABLE IF NOT EXISTS \"lineitem\" (") && Contains("\"l_orderkey\" bigint NOT NULL") &&
                      Contains("\"l_linenumber\" integer NOT NULL") &&
                      Contains("\"l_extendedprice\" numeric(15,2) NOT NULL") &&
                      Contains("\"l_shipdate\" date NOT NULL") &&
                      Contains("\"l_shipmode\" character varying(10) NOT NULL") &&
                      Contains("PRIMARY KEY (\"l_orderkey\", \"l_linenumber\")"));
  auto ps = nomnom::LoadEntityFile(SourcePath("data/tpch/entities-full/partsupp.yaml"));
  REQUIRE(ps.ok());
  CHECK_THAT(ps->CreateTableSql(), Contains("\"ps_supplycost\" numeric(15,2) NOT NULL") &&
                                       Contains("PRIMARY KEY (\"ps_partkey\", \"ps_suppkey\")"));
}

TEST_CASE("Decimal args are precision and scale", "[schema][tpch]") {
  auto parse = [](const std::string& args) {
    return nomnom::ParseEntity("entity:\n  name: T\n  fields:\n    - name: x\n      type: Decimal\n" + args +
                                   "  persistence:\n    database:\n      conformant_table: t\n",
                               "t.yaml");
  };
  auto plain = parse("");
  REQUIRE(plain.ok());
  CHECK(plain->fields[0].PgTypeName() == "numeric");
  auto p_only = parse("      args: [10]\n");
  REQUIRE(p_only.ok());
  CHECK(p_only->fields[0].PgTypeName() == "numeric(10,0)");
  auto both = parse("      args: [12, 4]\n");
  REQUIRE(both.ok());
  CHECK(both->fields[0].PgTypeName() == "numeric(12,4)");
  auto bad_scale = parse("      args: [4, 5]\n");
  REQUIRE_FALSE(bad_scale.ok());
  CHECK_THAT(bad_scale.status().message(), Contains("field 'x'") && Contains("scale"));
  auto bad_p = parse("      args: [0, 0]\n");
  REQUIRE_FALSE(bad_p.ok());
  CHECK_THAT(bad_p.status().message(), Contains("precision"));
}
