// Entity definitions: the YAML files that say what a row looks like and which
// table it lands in, in the seed system's format:
//
//   entity:
//     name: Order
//     fields:
//       - name: order_key
//         type: String          # String Integer BigInt Float Decimal Boolean Date DateTime Json Uuid
//                               # SmallInt Real JsonText TextArray VarcharArray
//         args: [255]           # String: VARCHAR(255); without it TEXT
//                               # Decimal: [15, 2] is NUMERIC(15,2); without it NUMERIC
//                               # TextArray/VarcharArray: [20] is VARCHAR(20)[]
//         nullable: false       # default false, as in the seed
//         doc: Unique order identifier
//     persistence:
//       database:
//         conformant_table: orders       # may be schema-qualified: "sales.orders"
//         unicity_fields: [order_key]    # the conflict key (PRIMARY KEY when we create the table)
//
// The original system's format is accepted as it is (see core/README.md,
// "Entity files"): `source_type: root | derived` (and `type: reference`),
// `repeated_for` (a derived entity gets one row per element of a parent's
// List[Object] field; the parent may be derived too, any depth),
// `computed_from` (`copy_field` from the parent or an ancestor,
// `json_get_{int,float,string,bool}` and `json_get_optional_*` from the
// element), the types List[Object], List[String] and Object (jsonb),
// `persistence.primary_key` (with `autogenerate`: an identity column, and the
// unicity fields become a UNIQUE constraint), `conformant_id_column`,
// `field_overrides` (decide which List fields are jsonb columns, and override a
// column's type or nullability), `prefix` and `doc`. A key nomnom does not
// know is a warning naming it (Entity::warnings); an error names the file, the
// entity, the field and the key.
//
// Entities are immutable once loaded and safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace nomnom {

// Column types and their PostgreSQL types: kString text/varchar(n),
// kInteger integer, kBigInt bigint, kSmallInt smallint (int2), kFloat double
// precision, kReal real (float4), kDecimal numeric, kBoolean boolean, kDate
// date, kDateTime timestamptz, kJson jsonb, kJsonText json (the text kept as
// written), kUuid uuid, kTextArray text[] or varchar(n)[] (a JSON array of
// strings and nulls; see Field::array_element_oid).
enum class FieldType {
  kString,
  kInteger,
  kBigInt,
  kFloat,
  kDecimal,
  kBoolean,
  kDate,
  kDateTime,
  kJson,
  kUuid,
  kSmallInt,
  kReal,
  kJsonText,
  kTextArray,
};

// PostgreSQL type oids of the array elements nomnom writes (pg_type.oid).
inline constexpr uint32_t kTextOid = 25;
inline constexpr uint32_t kVarcharOid = 1043;

// The entity-file spelling of a type ("String", ...), and its parser (case-insensitive;
// also accepts a few aliases such as "Int", "Double", "Timestamp"; "VarcharArray"
// and "Text[]" are kTextArray too: ParseEntity sets the element type).
std::string_view FieldTypeName(FieldType t);
Result<FieldType> ParseFieldType(std::string_view name);
// Whether two names from entity files (types, entities, source types) are the
// same: they compare with ASCII case ignored.
bool NamesEqualIgnoreCase(std::string_view a, std::string_view b);

// How a field's value is computed (`computed_from`). kNone: the input's key of
// the same name (or `input_name`).
enum class Transform { kNone, kCopyField, kJsonGet };

struct Computed {
  Transform transform = Transform::kNone;
  std::string source_entity;  // kCopyField: the entity the value comes from (the parent)
  // kCopyField: the parent's field; kJsonGet: the element's (or, in a root
  // entity, the input object's) key.
  std::string source_field;
  FieldType get_type = FieldType::kString;  // kJsonGet: Integer, Float, String or Boolean
  bool optional = false;                    // json_get_optional_*: a missing key is NULL
};

struct Field {
  std::string name;
  FieldType type = FieldType::kString;
  bool nullable = false;
  // String: VARCHAR(max_length); TextArray: each element VARCHAR(max_length). 0 means no limit.
  uint32_t max_length = 0;
  // TextArray only: the element type, kTextOid (text[]) or kVarcharOid
  // (varchar[] and varchar(n)[]); PostgreSQL's array_recv refuses any other.
  uint32_t array_element_oid = kTextOid;
  // Decimal only (`args: [precision, scale]`): NUMERIC(precision, scale); 0 means NUMERIC.
  uint16_t precision = 0;
  uint16_t scale = 0;
  std::string doc;
  // The key of the input object that holds the value, when not `name` (a root
  // entity's json_get from another key); empty: `name`.
  std::string input_name;
  std::string declared_type;  // as written in the file, e.g. "List[Object]"
  bool is_list = false;       // List[...]
  Computed computed;
  // The column's exact type as format_type() prints it, for entities read from
  // the catalog (core/pg/catalog_entity.h), e.g. "numeric(12,3)"; empty otherwise.
  std::string pg_type;

  const std::string& InputName() const { return input_name.empty() ? name : input_name; }
  // The PostgreSQL type as format_type() prints it, e.g. "character varying(255)".
  std::string PgTypeName() const;
  // The entity-file spelling of the type: FieldTypeName(type), except
  // "VarcharArray" for a TextArray of varchar elements.
  std::string_view TypeSpelling() const;
};

enum class SourceType { kRoot, kDerived, kReference };
std::string_view SourceTypeName(SourceType t);

// `repeated_for`: one row of this (derived) entity per element of
// `entity`.`field` (a List[Object]); json_get sources name the element
// `each_known_as`.
struct RepeatedFor {
  std::string entity;
  std::string field;
  std::string each_known_as;
};

// `persistence.primary_key`. With autogenerate the table gets an identity
// column of this name that is not an input field.
struct PrimaryKey {
  std::string name;  // empty: none declared (the unicity fields are the primary key)
  FieldType type = FieldType::kBigInt;
  bool autogenerate = false;
};

struct Entity {
  std::string name;
  std::string table_schema;  // empty: the connection's search_path
  std::string table;
  // The table's columns that the input fills, in table order (an
  // autogenerated primary key is not among them).
  std::vector<Field> fields;
  std::vector<size_t> key_fields;  // indexes into fields: the unicity fields, in order
  std::string source_file;
  SourceType source_type = SourceType::kRoot;
  std::string prefix;
  std::string doc;
  std::string id_column;  // conformant_id_column
  PrimaryKey primary_key;
  RepeatedFor repeated_for;  // set (entity non-empty) for derived entities
  // Input fields that are not columns: List[...] fields that only feed
  // derived entities (not named in field_overrides).
  std::vector<Field> inputs;
  // Keys of the file nomnom does not use, and similar notes, one per entry,
  // each naming the file, entity and key.
  std::vector<std::string> warnings;

  bool IsDerived() const { return !repeated_for.entity.empty(); }
  // The input field (column or not) named name, or null.
  const Field* FindInput(std::string_view field_name) const;

  // Index of the field named name, or -1.
  int FieldIndex(std::string_view field_name) const;
  // "schema"."table" or "table", quoted.
  std::string QualifiedTable() const;
  // schema.table or table, unquoted: for people (counters, pages).
  std::string TableName() const { return table_schema.empty() ? table : table_schema + "." + table; }
  // CREATE TABLE IF NOT EXISTS ... with the key as PRIMARY KEY.
  std::string CreateTableSql() const;
};

// Parses one entity YAML document. `origin` names the source in error messages.
Result<Entity> ParseEntity(std::string_view yaml_text, std::string_view origin);
Result<Entity> LoadEntityFile(const std::string& path);

// Loads every *.yaml / *.yml file in dir. Fails on the first invalid file, on
// two entities with the same name, or on a derived entity whose parent,
// list field or copied fields do not exist (ValidateEntitySet).
Result<std::vector<Entity>> LoadEntityDir(const std::string& dir);

// Checks the references between entities: repeated_for names an entity of the
// set (root or derived: any depth) and one of its List fields; copy_field
// sources name the parent or an ancestor and one of its columns; no cycles
// (the error names the entities of the cycle: "A -> B -> A").
Status ValidateEntitySet(const std::vector<Entity>& entities);

// The entities derived from `root` (repeated_for naming it), in the order of
// `entities`, parents before their children: the tables a nested load of root
// fills after root's.
std::vector<const Entity*> DerivedEntities(const std::vector<Entity>& entities, const Entity& root);

// The directory to load entities from: `explicit_dir` if non-empty, else
// $NOMNOM_ENTITIES, else the bundled definitions (the source tree's
// data/tpch/entities when it exists, else the installed share/nomnom/entities).
Result<std::string> ResolveEntityDir(const std::string& explicit_dir);

// Finds an entity by name (case-insensitive).
const Entity* FindEntity(const std::vector<Entity>& entities, std::string_view name);

}  // namespace nomnom
