// Entity definitions: parsing, validation, SQL text and lookup. Pure unit tests.
#include "core/format/schema.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/test_env.h"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using nomnom::Entity;
using nomnom::FieldType;
using nomnom::StatusCode;
using nomnom::testing::SourcePath;
using nomnom::testing::TempDir;

namespace {

Entity MustParse(std::string_view yaml, std::string_view origin = "test.yaml") {
  auto e = nomnom::ParseEntity(yaml, origin);
  INFO((e.ok() ? std::string() : e.status().message()));
  REQUIRE(e.ok());
  return std::move(e).value();
}

// The error message of a definition that must be rejected as InvalidArgument.
std::string ParseError(std::string_view yaml, std::string_view origin = "bad.yaml") {
  auto e = nomnom::ParseEntity(yaml, origin);
  INFO("yaml:\n" << yaml);
  CHECK_FALSE(e.ok());
  if (e.ok()) return "<accepted>";
  CHECK(e.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(e.status().message(), StartsWith(std::string(origin)));
  return e.status().message();
}

// Sets or unsets an environment variable for the scope, restoring it after.
class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) saved_ = std::string(v);
  }
  ~EnvGuard() {
    if (saved_) {
      ::setenv(name_, saved_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
  void Set(const std::string& value) const { REQUIRE(::setenv(name_, value.c_str(), 1) == 0); }
  void Unset() const { REQUIRE(::unsetenv(name_) == 0); }

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

std::string EntityYaml(std::string_view name, std::string_view table = {}) {
  std::string y = "entity:\n  name: " + std::string(name) + "\n  fields:\n    - {name: id, type: Integer}\n";
  if (!table.empty()) y += "  persistence:\n    database:\n      conformant_table: " + std::string(table) + "\n";
  return y;
}

}  // namespace

TEST_CASE("the bundled order.yaml is the seed's orders table", "[schema]") {
  const std::string path = SourcePath("data/tpch/entities/order.yaml");
  auto loaded = nomnom::LoadEntityFile(path);
  INFO((loaded.ok() ? std::string() : loaded.status().message()));
  REQUIRE(loaded.ok());
  const Entity& e = *loaded;
  CHECK(e.name == "Order");
  CHECK(e.table == "orders");
  CHECK(e.table_schema.empty());
  CHECK(e.source_file == path);

  struct Expected {
    const char* name;
    FieldType type;
    uint32_t max_length;
    bool nullable;
    const char* pg_type;
  };
  const Expected expected[] = {
      {"order_key", FieldType::kString, 255, false, "character varying(255)"},
      {"customer_key", FieldType::kString, 255, false, "character varying(255)"},
      {"order_status", FieldType::kString, 1, false, "character varying(1)"},
      {"total_price", FieldType::kFloat, 0, false, "double precision"},
      {"order_date", FieldType::kString, 255, false, "character varying(255)"},
      {"order_priority", FieldType::kString, 255, true, "character varying(255)"},
      {"clerk", FieldType::kString, 255, true, "character varying(255)"},
      {"ship_priority", FieldType::kInteger, 0, true, "integer"},
      {"comment", FieldType::kString, 0, true, "text"},
  };
  REQUIRE(e.fields.size() == 9);
  for (size_t i = 0; i < 9; ++i) {
    const nomnom::Field& f = e.fields[i];
    INFO("field " << i << " " << f.name);
    CHECK(f.name == expected[i].name);
    CHECK(f.type == expected[i].type);
    CHECK(f.max_length == expected[i].max_length);
    CHECK(f.nullable == expected[i].nullable);
    CHECK(f.PgTypeName() == expected[i].pg_type);
    CHECK(e.FieldIndex(expected[i].name) == static_cast<int>(i));
  }
  CHECK(e.fields[0].doc == "Unique order identifier (O_ORDERKEY).");
  REQUIRE(e.key_fields.size() == 1);
  CHECK(e.key_fields[0] == 0);
  CHECK(e.FieldIndex("nope") == -1);
  CHECK(e.FieldIndex("ORDER_KEY") == -1);  // field names are exact

  CHECK(e.QualifiedTable() == "\"orders\"");
  CHECK(e.CreateTableSql() ==
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
        ")");
}

TEST_CASE("every type maps to its PostgreSQL type", "[schema]") {
  const Entity e = MustParse(R"(
entity:
  name: AllTypes
  fields:
    - {name: s, type: String}
    - {name: v, type: String, args: [40]}
    - {name: i, type: Integer}
    - {name: b, type: BigInt}
    - {name: f, type: Float}
    - {name: d, type: Decimal}
    - {name: o, type: Boolean}
    - {name: day, type: Date}
    - {name: ts, type: DateTime}
    - {name: j, type: Json}
)");
  const std::pair<FieldType, const char*> want[] = {
      {FieldType::kString, "text"},
      {FieldType::kString, "character varying(40)"},
      {FieldType::kInteger, "integer"},
      {FieldType::kBigInt, "bigint"},
      {FieldType::kFloat, "double precision"},
      {FieldType::kDecimal, "numeric"},
      {FieldType::kBoolean, "boolean"},
      {FieldType::kDate, "date"},
      {FieldType::kDateTime, "timestamp with time zone"},
      {FieldType::kJson, "jsonb"},
  };
  REQUIRE(e.fields.size() == 10);
  for (size_t i = 0; i < 10; ++i) {
    INFO("field " << e.fields[i].name);
    CHECK(e.fields[i].type == want[i].first);
    CHECK(e.fields[i].PgTypeName() == want[i].second);
    CHECK_FALSE(e.fields[i].nullable);  // the default
  }
  // No persistence section: the table is the lower-cased entity name, no key.
  CHECK(e.table == "alltypes");
  CHECK(e.table_schema.empty());
  CHECK(e.key_fields.empty());
  // Without a key there is no PRIMARY KEY and no dangling comma.
  const std::string sql = e.CreateTableSql();
  CHECK_THAT(sql, StartsWith("CREATE TABLE IF NOT EXISTS \"alltypes\" (\n"));
  CHECK_THAT(sql, Contains("  \"ts\" timestamp with time zone NOT NULL,\n"));
  CHECK_THAT(sql, Contains("  \"j\" jsonb NOT NULL\n)"));
  CHECK(sql.find("PRIMARY KEY") == std::string::npos);
  CHECK(sql.find(",\n)") == std::string::npos);

  // A Field built by hand.
  nomnom::Field f;
  f.type = FieldType::kString;
  CHECK(f.PgTypeName() == "text");
  f.max_length = 10485760;
  CHECK(f.PgTypeName() == "character varying(10485760)");
}

TEST_CASE("SmallInt, Real, JsonText, TextArray, VarcharArray and Decimal args", "[schema]") {
  const Entity e = MustParse(R"(
entity:
  name: More
  fields:
    - {name: s, type: SmallInt}
    - {name: r, type: Real}
    - {name: j, type: JsonText}
    - {name: t, type: TextArray, nullable: true}
    - {name: v, type: VarcharArray}
    - {name: v3, type: VarcharArray, args: [3]}
    - {name: t5, type: TextArray, args: [5]}
    - {name: n, type: Decimal, args: [12, 3]}
    - {name: tags, type: "List[String]", nullable: true}
    - {name: labels, type: "List[String]"}
  persistence:
    field_overrides:
      - {name: tags, type: TextArray}
      - {name: labels, type: VarcharArray, args: [8]}
      - {name: s, type: Decimal, args: [4, 1]}
)");
  REQUIRE(e.fields.size() == 10);
  const std::pair<const char*, const char*> want[] = {
      {"s", "numeric(4,1)"},
      {"r", "real"},
      {"j", "json"},
      {"t", "text[]"},
      {"v", "character varying[]"},
      {"v3", "character varying(3)[]"},
      {"t5", "character varying(5)[]"},
      {"n", "numeric(12,3)"},
      {"tags", "text[]"},
      {"labels", "character varying(8)[]"},
  };
  for (size_t i = 0; i < e.fields.size(); ++i) {
    INFO("field " << e.fields[i].name);
    CHECK(e.fields[i].name == want[i].first);
    CHECK(e.fields[i].PgTypeName() == want[i].second);
  }
  CHECK(e.fields[1].type == FieldType::kReal);
  CHECK(e.fields[2].type == FieldType::kJsonText);
  CHECK(e.fields[3].array_element_oid == nomnom::kTextOid);
  CHECK(e.fields[4].array_element_oid == nomnom::kVarcharOid);
  CHECK(e.fields[4].TypeSpelling() == "VarcharArray");
  CHECK(e.fields[3].TypeSpelling() == "TextArray");
  CHECK(e.fields[8].type == FieldType::kTextArray);
  CHECK(e.fields[8].nullable);
  const auto small = MustParse("entity:\n  name: S\n  fields:\n    - {name: a, type: SmallInt}\n");
  CHECK(small.fields[0].PgTypeName() == "smallint");
  CHECK(small.fields[0].type == FieldType::kSmallInt);
  for (const char* name :
       {"SmallInt", "int2", "Short", "Real", "float4", "JsonText", "TextArray", "text[]", "VarcharArray"}) {
    INFO(name);
    CHECK(nomnom::ParseFieldType(name).ok());
  }
}

TEST_CASE("field type names and aliases", "[schema]") {
  const std::pair<const char*, FieldType> cases[] = {
      {"String", FieldType::kString},     {"string", FieldType::kString},      {"TEXT", FieldType::kString},
      {"Integer", FieldType::kInteger},   {"int", FieldType::kInteger},        {"BigInt", FieldType::kBigInt},
      {"bigint", FieldType::kBigInt},     {"Long", FieldType::kBigInt},        {"Float", FieldType::kFloat},
      {"double", FieldType::kFloat},      {"Decimal", FieldType::kDecimal},    {"numeric", FieldType::kDecimal},
      {"Boolean", FieldType::kBoolean},   {"bool", FieldType::kBoolean},       {"Date", FieldType::kDate},
      {"DateTime", FieldType::kDateTime}, {"timestamp", FieldType::kDateTime}, {"Json", FieldType::kJson},
      {"JSON", FieldType::kJson},
  };
  for (const auto& [name, type] : cases) {
    auto t = nomnom::ParseFieldType(name);
    INFO(name);
    REQUIRE(t.ok());
    CHECK(*t == type);
  }
  for (FieldType t :
       {FieldType::kString, FieldType::kInteger, FieldType::kBigInt, FieldType::kFloat, FieldType::kDecimal,
        FieldType::kBoolean, FieldType::kDate, FieldType::kDateTime, FieldType::kJson, FieldType::kUuid,
        FieldType::kSmallInt, FieldType::kReal, FieldType::kJsonText, FieldType::kTextArray}) {
    auto back = nomnom::ParseFieldType(nomnom::FieldTypeName(t));
    REQUIRE(back.ok());
    CHECK(*back == t);
  }
  CHECK(nomnom::FieldTypeName(FieldType::kDateTime) == "DateTime");
  for (const char* bad : {"", "Strng", "varchar", "Integer ", "Date Time"}) {
    auto t = nomnom::ParseFieldType(bad);
    INFO("'" << bad << "'");
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(t.status().message(), Contains("unknown field type '" + std::string(bad) + "'"));
  }
}

TEST_CASE("entity options: lengths, nullability, docs, keys", "[schema]") {
  const Entity e = MustParse(R"(
entity:
  name: Opts
  fields:
    - name: a
      type: String
      max_length: 12
    - name: b
      type: String
      length: 7
      nullable: true
      doc: the b field
    - name: c
      type: Integer
      args: [10]
    - name: d
      type: String
      args: []
    - name: e
      type: BigInt
      nullable: false
  persistence:
    database:
      conformant_table: opts_table
      unicity_fields: [e, a]
)");
  REQUIRE(e.fields.size() == 5);
  CHECK(e.fields[0].max_length == 12);
  CHECK(e.fields[1].max_length == 7);
  CHECK(e.fields[1].nullable);
  CHECK(e.fields[1].doc == "the b field");
  CHECK(e.fields[2].max_length == 0);  // a length means nothing for an Integer
  CHECK(e.fields[2].PgTypeName() == "integer");
  CHECK(e.fields[3].max_length == 0);  // empty args: TEXT
  CHECK(e.fields[3].PgTypeName() == "text");
  CHECK_FALSE(e.fields[4].nullable);
  CHECK(e.table == "opts_table");
  CHECK(e.key_fields == std::vector<size_t>{4, 0});  // in the order given
  CHECK_THAT(e.CreateTableSql(), Contains("  PRIMARY KEY (\"e\", \"a\")\n)"));
  CHECK_THAT(e.CreateTableSql(), Contains("  \"b\" character varying(7),\n"));
  CHECK(e.source_file == "test.yaml");
}

TEST_CASE("invalid entity definitions are rejected with clear messages", "[schema]") {
  SECTION("invalid YAML") {
    const std::string err = ParseError("entity: [unclosed\n  name: x", "broken.yaml");
    CHECK_THAT(err, StartsWith("broken.yaml: invalid YAML"));
    CHECK_THAT(ParseError("entity:\n  name: x\n   bad: indent\n  - y"), Contains("invalid YAML"));
  }
  SECTION("missing entity") {
    CHECK_THAT(ParseError("foo:\n  name: x\n"), Contains("expected a top-level 'entity:' mapping"));
    CHECK_THAT(ParseError(""), Contains("expected a top-level 'entity:' mapping"));
    CHECK_THAT(ParseError("entity: Order\n"), Contains("expected a top-level 'entity:' mapping"));
  }
  SECTION("missing or empty name") {
    CHECK_THAT(ParseError("entity:\n  fields:\n    - {name: a, type: String}\n"), Contains("entity has no 'name'"));
    CHECK_THAT(ParseError("entity:\n  name: ''\n  fields:\n    - {name: a, type: String}\n"),
               Contains("entity has no 'name'"));
  }
  SECTION("missing or empty fields") {
    CHECK_THAT(ParseError("entity:\n  name: E\n"), Contains("entity 'E' has no 'fields' list"));
    CHECK_THAT(ParseError("entity:\n  name: E\n  fields: []\n"), Contains("entity 'E' has no 'fields' list"));
    CHECK_THAT(ParseError("entity:\n  name: E\n  fields: a\n"), Contains("entity 'E' has no 'fields' list"));
  }
  SECTION("field without name or type") {
    CHECK_THAT(ParseError("entity:\n  name: E\n  fields:\n    - {type: String}\n"), Contains("a field has no 'name'"));
    CHECK_THAT(ParseError("entity:\n  name: E\n  fields:\n    - {name: '', type: String}\n"),
               Contains("a field has an empty 'name'"));
    CHECK_THAT(ParseError("entity:\n  name: E\n  fields:\n    - {name: a}\n"), Contains("field 'a' has no 'type'"));
  }
  SECTION("unknown type, with the line") {
    const std::string err = ParseError(
        "entity:\n"
        "  name: E\n"
        "  fields:\n"
        "    - {name: a, type: String}\n"
        "    - {name: b, type: Strng}\n",
        "e.yaml");
    CHECK_THAT(err, StartsWith("e.yaml:5: "));
    CHECK_THAT(err, Contains("field 'b': unknown field type 'Strng'"));
  }
  SECTION("duplicate field, with the line") {
    const std::string err = ParseError(
        "entity:\n"
        "  name: E\n"
        "  fields:\n"
        "    - {name: a, type: String}\n"
        "    - {name: b, type: Integer}\n"
        "    - {name: a, type: Integer}\n",
        "dup.yaml");
    CHECK_THAT(err, StartsWith("dup.yaml:6: "));
    CHECK_THAT(err, Contains("field 'a' is defined twice"));
  }
  SECTION("unicity field that is not a field") {
    const std::string err = ParseError(
        "entity:\n  name: E\n  fields:\n    - {name: a, type: String}\n"
        "  persistence:\n    database:\n      unicity_fields: [a, nope]\n");
    CHECK_THAT(err, Contains("unicity field 'nope' is not a field of 'E'"));
  }
  SECTION("nullable unicity field") {
    const std::string err = ParseError(
        "entity:\n  name: E\n  fields:\n    - {name: a, type: String, nullable: true}\n"
        "  persistence:\n    database:\n      unicity_fields: [a]\n");
    CHECK_THAT(err, Contains("unicity field 'a' must not be nullable"));
  }
  SECTION("bad length") {
    for (const char* len : {"0", "-5", "10485761", "4294967297"}) {
      INFO("length " << len);
      const std::string err = ParseError(
          std::string("entity:\n  name: E\n  fields:\n    - {name: a, type: String, args: [") + len + "]}\n");
      CHECK_THAT(err, Contains("field 'a': length must be between 1 and 10485760"));
    }
    // Not a number at all: still a clean error naming the file and the line.
    const std::string err = ParseError("entity:\n  name: E\n  fields:\n    - {name: a, type: String, args: [big]}\n");
    CHECK_THAT(err, Contains("line 4"));
    // The limits themselves are fine.
    CHECK(MustParse("entity:\n  name: E\n  fields:\n    - {name: a, type: String, args: [1]}\n").fields[0].max_length ==
          1);
    CHECK(MustParse("entity:\n  name: E\n  fields:\n    - {name: a, type: String, length: 10485760}\n")
              .fields[0]
              .max_length == 10485760);
  }
  SECTION("nullable that is not a boolean") {
    const std::string err =
        ParseError("entity:\n  name: E\n  fields:\n    - {name: a, type: String, nullable: maybe}\n");
    CHECK_THAT(err, Contains("line 4"));
  }
}

TEST_CASE("schema-qualified tables and identifier quoting", "[schema]") {
  const Entity e = MustParse(EntityYaml("Sale", "sales.orders"));
  CHECK(e.table_schema == "sales");
  CHECK(e.table == "orders");
  CHECK(e.QualifiedTable() == "\"sales\".\"orders\"");
  CHECK_THAT(e.CreateTableSql(), StartsWith("CREATE TABLE IF NOT EXISTS \"sales\".\"orders\" (\n"));

  const Entity upper = MustParse(EntityYaml("Up", "Sales.Orders"));  // case is kept as written
  CHECK(upper.QualifiedTable() == "\"Sales\".\"Orders\"");

  // Embedded double quotes are doubled, part by part.
  const Entity odd = MustParse(EntityYaml("Odd", "'we\"ird.ta\"\"ble'"));
  CHECK(odd.table_schema == "we\"ird");
  CHECK(odd.table == "ta\"\"ble");
  CHECK(odd.QualifiedTable() == "\"we\"\"ird\".\"ta\"\"\"\"ble\"");

  Entity manual;
  manual.table = "my \"table\"";
  CHECK(manual.QualifiedTable() == "\"my \"\"table\"\"\"");
  manual.table_schema = "s";
  CHECK(manual.QualifiedTable() == "\"s\".\"my \"\"table\"\"\"");
  manual.table = "plain";
  manual.table_schema.clear();
  CHECK(manual.QualifiedTable() == "\"plain\"");

  // Field names are quoted the same way in CREATE TABLE.
  const Entity quoted_field = MustParse(
      "entity:\n  name: Q\n  fields:\n    - {name: 'say \"hi\"', type: Integer}\n"
      "  persistence:\n    database:\n      unicity_fields: ['say \"hi\"']\n");
  CHECK_THAT(quoted_field.CreateTableSql(), Contains("  \"say \"\"hi\"\"\" integer NOT NULL,\n"));
  CHECK_THAT(quoted_field.CreateTableSql(), Contains("PRIMARY KEY (\"say \"\"hi\"\"\")"));
}

TEST_CASE("LoadEntityFile", "[schema]") {
  TempDir dir;
  const std::string path = dir.Write("thing.yaml", EntityYaml("Thing"));
  auto e = nomnom::LoadEntityFile(path);
  REQUIRE(e.ok());
  CHECK(e->name == "Thing");
  CHECK(e->source_file == path);

  const std::string missing = dir.path() + "/missing.yaml";
  auto m = nomnom::LoadEntityFile(missing);
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == StatusCode::kNotFound);
  CHECK_THAT(m.status().message(), Contains(missing));

  const std::string bad = dir.Write("bad.yaml", "entity:\n  name: B\n");
  auto b = nomnom::LoadEntityFile(bad);
  REQUIRE_FALSE(b.ok());
  CHECK_THAT(b.status().message(), StartsWith(bad));
}

TEST_CASE("LoadEntityDir", "[schema]") {
  SECTION("loads every .yaml and .yml file, sorted by path, and nothing else") {
    TempDir dir;
    dir.Write("b.yaml", EntityYaml("Beta"));
    dir.Write("a.yml", EntityYaml("Alpha"));
    dir.Write("notes.txt", "not an entity");
    dir.Write("c.yaml.bak", "entity: [broken");
    std::filesystem::create_directory(dir.path() + "/sub.yaml");  // a directory, not a file
    auto all = nomnom::LoadEntityDir(dir.path());
    INFO((all.ok() ? std::string() : all.status().message()));
    REQUIRE(all.ok());
    REQUIRE(all->size() == 2);
    CHECK((*all)[0].name == "Alpha");
    CHECK((*all)[1].name == "Beta");
    CHECK((*all)[0].source_file == dir.path() + "/a.yml");
  }
  SECTION("the same entity name in two files fails") {
    TempDir dir;
    const std::string first = dir.Write("1.yaml", EntityYaml("Order", "orders"));
    const std::string second = dir.Write("2.yaml", EntityYaml("Order", "orders_copy"));
    auto all = nomnom::LoadEntityDir(dir.path());
    REQUIRE_FALSE(all.ok());
    CHECK(all.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(all.status().message(), Contains("entity 'Order' is already defined in " + first));
    CHECK_THAT(all.status().message(), StartsWith(second));
  }
  SECTION("names differing only in case are the same entity") {
    TempDir dir;
    dir.Write("1.yaml", EntityYaml("Order"));
    dir.Write("2.yaml", EntityYaml("ORDER"));
    auto all = nomnom::LoadEntityDir(dir.path());
    REQUIRE_FALSE(all.ok());
    CHECK_THAT(all.status().message(), Contains("already defined"));
  }
  SECTION("an invalid file fails the whole directory, naming the file") {
    TempDir dir;
    dir.Write("good.yaml", EntityYaml("Good"));
    const std::string bad = dir.Write("zbad.yaml", "entity:\n  name: Bad\n  fields:\n    - {name: a, type: Nope}\n");
    auto all = nomnom::LoadEntityDir(dir.path());
    REQUIRE_FALSE(all.ok());
    CHECK_THAT(all.status().message(), StartsWith(bad));
    CHECK_THAT(all.status().message(), Contains("unknown field type 'Nope'"));
  }
  SECTION("an empty or missing directory is NotFound") {
    TempDir dir;
    auto empty = nomnom::LoadEntityDir(dir.path());
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.status().code() == StatusCode::kNotFound);
    CHECK_THAT(empty.status().message(), Contains("no entity definitions"));
    CHECK_THAT(empty.status().message(), Contains(dir.path()));

    const std::string gone = dir.path() + "/does-not-exist";
    auto missing = nomnom::LoadEntityDir(gone);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.status().code() == StatusCode::kNotFound);
    CHECK_THAT(missing.status().message(), Contains("cannot read entity directory " + gone));
  }
  SECTION("the bundled directory loads") {
    auto all = nomnom::LoadEntityDir(SourcePath("data/tpch/entities"));
    INFO((all.ok() ? std::string() : all.status().message()));
    REQUIRE(all.ok());
    CHECK(nomnom::FindEntity(*all, "Order") != nullptr);
  }
}

TEST_CASE("ResolveEntityDir: explicit dir, then $NOMNOM_ENTITIES, then bundled", "[schema]") {
  EnvGuard env("NOMNOM_ENTITIES");
  TempDir from_env;
  TempDir explicit_dir;

  env.Set(from_env.path());
  auto r = nomnom::ResolveEntityDir(explicit_dir.path());
  REQUIRE(r.ok());
  CHECK(*r == explicit_dir.path());

  r = nomnom::ResolveEntityDir("");
  REQUIRE(r.ok());
  CHECK(*r == from_env.path());

  env.Unset();
  r = nomnom::ResolveEntityDir("");
  REQUIRE(r.ok());
  std::error_code ec;
  CHECK(std::filesystem::equivalent(*r, SourcePath("data/tpch/entities"), ec));
  CHECK_FALSE(ec);

  env.Set("");  // empty counts as unset
  r = nomnom::ResolveEntityDir("");
  REQUIRE(r.ok());
  CHECK(std::filesystem::equivalent(*r, SourcePath("data/tpch/entities"), ec));

  // The explicit dir is returned as given, even when it does not exist (loading reports it).
  r = nomnom::ResolveEntityDir("/no/such/dir");
  REQUIRE(r.ok());
  CHECK(*r == "/no/such/dir");
}

TEST_CASE("FindEntity is case-insensitive", "[schema]") {
  std::vector<Entity> entities;
  entities.push_back(MustParse(EntityYaml("Order")));
  entities.push_back(MustParse(EntityYaml("LineItem")));
  for (const char* name : {"Order", "order", "ORDER", "oRdEr"}) {
    INFO(name);
    CHECK(nomnom::FindEntity(entities, name) == &entities[0]);
  }
  CHECK(nomnom::FindEntity(entities, "lineitem") == &entities[1]);
  CHECK(nomnom::FindEntity(entities, "LINEITEM") == &entities[1]);
  CHECK(nomnom::FindEntity(entities, "Orders") == nullptr);
  CHECK(nomnom::FindEntity(entities, "Orde") == nullptr);
  CHECK(nomnom::FindEntity(entities, "") == nullptr);
  CHECK(nomnom::FindEntity({}, "Order") == nullptr);
}
