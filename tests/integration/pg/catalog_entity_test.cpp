#include "core/pg/catalog_entity.h"

#include <catch2/catch.hpp>
#include <string>

#include "core/pg/pg_connection.h"
#include "tests/support/test_env.h"

using namespace nomnom;
using namespace nomnom::testing;

TEST_CASE("an entity is built from a hand-made table's catalog entry", "[catalog]") {
  auto conn = Connect();
  const std::string t = UniqueName("cat_ok");
  Query(*conn, "CREATE TABLE " + QuoteIdent(t) +
                   " (id int8 PRIMARY KEY, serial_no int8 GENERATED ALWAYS AS IDENTITY, name text NOT NULL,"
                   " code varchar(12), amount numeric(12,3), seen timestamptz, at_local timestamp, flag bool,"
                   " doc jsonb, day date, n int4, ratio float8, twice int8 GENERATED ALWAYS AS (id * 2) STORED)");
  auto e = EntityFromCatalog(*conn, t);
  REQUIRE(e.ok());
  CHECK(e->table == t);
  CHECK(e->table_schema == "public");
  REQUIRE(e->fields.size() == 11);  // the identity and generated columns are skipped
  CHECK(e->fields[0].name == "id");
  CHECK(e->fields[0].type == FieldType::kBigInt);
  CHECK_FALSE(e->fields[0].nullable);
  CHECK(e->fields[1].name == "name");
  CHECK(e->fields[1].type == FieldType::kString);
  CHECK_FALSE(e->fields[1].nullable);
  CHECK(e->fields[2].type == FieldType::kString);
  CHECK(e->fields[2].max_length == 12);
  CHECK(e->fields[2].nullable);
  CHECK(e->fields[3].type == FieldType::kDecimal);
  CHECK(e->fields[3].declared_type == "numeric(12,3)");
  CHECK(e->fields[4].type == FieldType::kDateTime);
  CHECK(e->fields[5].type == FieldType::kDateTime);
  CHECK(e->fields[6].type == FieldType::kBoolean);
  CHECK(e->fields[7].type == FieldType::kJson);
  CHECK(e->fields[8].type == FieldType::kDate);
  CHECK(e->fields[9].type == FieldType::kInteger);
  CHECK(e->fields[10].type == FieldType::kFloat);
  REQUIRE(e->key_fields.size() == 1);
  CHECK(e->fields[e->key_fields[0]].name == "id");
  Query(*conn, "DROP TABLE " + QuoteIdent(t));
}

TEST_CASE("without a primary key the first unique index is the key, in index order", "[catalog]") {
  auto conn = Connect();
  const std::string t = UniqueName("cat_uq");
  Query(*conn, "CREATE TABLE " + QuoteIdent(t) + " (a text, b int8 NOT NULL, c int4 NOT NULL, UNIQUE (c, b))");
  auto e = EntityFromCatalog(*conn, t);
  REQUIRE(e.ok());
  REQUIRE(e->key_fields.size() == 2);
  CHECK(e->fields[e->key_fields[0]].name == "c");
  CHECK(e->fields[e->key_fields[1]].name == "b");
  Query(*conn, "DROP TABLE " + QuoteIdent(t));
}

TEST_CASE("a column nomnom cannot encode is an error naming table, column and type", "[catalog]") {
  auto conn = Connect();
  const std::string t = UniqueName("cat_bad");
  Query(*conn, "CREATE TABLE " + QuoteIdent(t) + " (id int8 PRIMARY KEY, where_at point)");
  auto e = EntityFromCatalog(*conn, t);
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(e.status().message(), Catch::Contains(t) && Catch::Contains("where_at") && Catch::Contains("point"));
  Query(*conn, "DROP TABLE " + QuoteIdent(t));
}

TEST_CASE("a missing table is NotFound and the name is data, not SQL", "[catalog]") {
  auto conn = Connect();
  auto e = EntityFromCatalog(*conn, "no_such_table_x\"; DROP TABLE y; --");
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().code() != StatusCode::kOk);
  auto m = EntityFromCatalog(*conn, UniqueName("cat_missing"));
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == StatusCode::kNotFound);
}

TEST_CASE("nomnom's own tables are refused", "[catalog]") {
  CHECK(IsNomnomOwnTable("nomnom_ledger"));
  CHECK(IsNomnomOwnTable("NOMNOM_dead_letters"));
  CHECK_FALSE(IsNomnomOwnTable("orders"));
  auto conn = Connect();
  Query(*conn, "CREATE TABLE IF NOT EXISTS nomnom_catalog_probe (id int8 PRIMARY KEY)");
  auto e = EntityFromCatalog(*conn, "nomnom_catalog_probe");
  REQUIRE_FALSE(e.ok());
  CHECK_THAT(e.status().message(), Catch::Contains("belongs to nomnom"));
  Query(*conn, "DROP TABLE nomnom_catalog_probe");
}

TEST_CASE("a nullable unique index is not the key; the primary key comes first", "[catalog]") {
  auto conn = Connect();
  const std::string t = UniqueName("cat_nk");
  Query(*conn, "CREATE TABLE " + QuoteIdent(t) + " (a text UNIQUE, b int8 NOT NULL UNIQUE)");
  auto e = EntityFromCatalog(*conn, t);
  REQUIRE(e.ok());
  REQUIRE(e->key_fields.size() == 1);
  CHECK(e->fields[e->key_fields[0]].name == "b");
  Query(*conn, "DROP TABLE " + QuoteIdent(t));
}

TEST_CASE("the YAML of a catalog entity parses back into the same entity", "[catalog]") {
  auto conn = Connect();
  const std::string t = UniqueName("cat_yaml");
  Query(*conn, "CREATE SCHEMA IF NOT EXISTS cat_s");
  Query(*conn, "CREATE TABLE cat_s." + QuoteIdent(t) +
                   " (\"we\"\"ird: name\" text NOT NULL, code varchar(7) NOT NULL, amount numeric(12,3),"
                   " seen timestamptz, doc jsonb, flag bool NOT NULL, d date, n int4, r float8,"
                   " small int2, ratio float4, raw json, id uuid, tags text[], codes varchar(3)[] NOT NULL,"
                   " anycodes varchar[], exact numeric(5,0), plain numeric, big int8,"
                   " PRIMARY KEY (code, \"we\"\"ird: name\"))");
  auto e = EntityFromCatalog(*conn, "cat_s." + t);
  REQUIRE(e.ok());
  const std::string yaml = EntityToYaml(*e);
  auto back = ParseEntity(yaml, "from-table");
  INFO(yaml);
  REQUIRE(back.ok());
  CHECK(back->name == e->name);
  CHECK(back->table_schema == "cat_s");
  CHECK(back->table == t);
  REQUIRE(back->fields.size() == e->fields.size());
  for (size_t i = 0; i < e->fields.size(); ++i) {
    CHECK(back->fields[i].name == e->fields[i].name);
    CHECK(back->fields[i].type == e->fields[i].type);
    CHECK(back->fields[i].nullable == e->fields[i].nullable);
    CHECK(back->fields[i].max_length == e->fields[i].max_length);
    CHECK(back->fields[i].precision == e->fields[i].precision);
    CHECK(back->fields[i].scale == e->fields[i].scale);
    CHECK(back->fields[i].array_element_oid == e->fields[i].array_element_oid);
    // The YAML entity has no pg_type: its own type name must be the column's.
    CHECK(back->fields[i].pg_type.empty());
    CHECK(back->fields[i].PgTypeName() == e->fields[i].pg_type);
  }
  CHECK(e->fields[e->FieldIndex("amount")].precision == 12);
  CHECK(e->fields[e->FieldIndex("amount")].scale == 3);
  CHECK(e->fields[e->FieldIndex("exact")].precision == 5);
  CHECK(e->fields[e->FieldIndex("plain")].precision == 0);
  CHECK(e->fields[e->FieldIndex("codes")].max_length == 3);
  CHECK(e->fields[e->FieldIndex("codes")].array_element_oid == kVarcharOid);
  CHECK(e->fields[e->FieldIndex("tags")].array_element_oid == kTextOid);
  CHECK(e->fields[e->FieldIndex("anycodes")].array_element_oid == kVarcharOid);
  CHECK(back->key_fields == e->key_fields);
  // The DDL of the parsed YAML makes a table with the same column types.
  Entity copy = *back;
  copy.table = t + "_copy";
  Query(*conn, copy.CreateTableSql());
  const std::string types_sql =
      "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NN' "
      "ELSE '' END, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT "
      "attisdropped";
  auto original = conn->ExecParams(types_sql, {"cat_s." + t});
  auto made = conn->ExecParams(types_sql, {"cat_s." + t + "_copy"});
  REQUIRE(original.ok());
  REQUIRE(made.ok());
  CHECK(made->rows.at(0).at(0).value_or("") == original->rows.at(0).at(0).value_or("-"));
  CHECK_THAT(original->rows.at(0).at(0).value_or(""),
             Catch::Contains("tags text[]") && Catch::Contains("codes character varying(3)[] NN") &&
                 Catch::Contains("amount numeric(12,3)") && Catch::Contains("small smallint") &&
                 Catch::Contains("ratio real") && Catch::Contains("raw json"));
  REQUIRE(e->key_fields.size() == 2);
  CHECK(e->fields[e->key_fields[0]].name == "code");
  CHECK(e->fields[e->key_fields[1]].name == "we\"ird: name");
  Query(*conn, "DROP SCHEMA cat_s CASCADE");
}

TEST_CASE("uuid, int2, float4, json and text arrays map to their types; int4[] is refused naming it", "[catalog]") {
  auto conn = Connect();
  const std::string t = UniqueName("cat_uuid");
  Query(*conn, "CREATE TABLE " + QuoteIdent(t) +
                   " (id uuid PRIMARY KEY, tags text[], codes varchar(4)[], s int2, r float4, j json, nums int4[])");
  auto e = EntityFromCatalog(*conn, t);
  REQUIRE_FALSE(e.ok());
  CHECK_THAT(e.status().message(), Catch::Contains("'nums'") && Catch::Contains("integer[]"));
  Query(*conn, "ALTER TABLE " + QuoteIdent(t) + " DROP COLUMN nums");
  auto ok = EntityFromCatalog(*conn, t);
  REQUIRE(ok.ok());
  REQUIRE(ok->fields.size() == 6);
  CHECK(ok->fields[0].type == FieldType::kUuid);
  CHECK(ok->fields[1].type == FieldType::kTextArray);
  CHECK(ok->fields[1].array_element_oid == kTextOid);
  CHECK(ok->fields[1].max_length == 0);
  CHECK(ok->fields[2].type == FieldType::kTextArray);
  CHECK(ok->fields[2].array_element_oid == kVarcharOid);
  CHECK(ok->fields[2].max_length == 4);
  CHECK(ok->fields[3].type == FieldType::kSmallInt);
  CHECK(ok->fields[4].type == FieldType::kReal);
  CHECK(ok->fields[5].type == FieldType::kJsonText);
  REQUIRE(ok->key_fields.size() == 1);
  Query(*conn, "DROP TABLE " + QuoteIdent(t));
}
