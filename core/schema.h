// Entity definitions: the YAML files that say what a row looks like and which
// table it lands in, in the seed system's format:
//
//   entity:
//     name: Order
//     fields:
//       - name: order_key
//         type: String          # String Integer BigInt Float Decimal Boolean Date DateTime Json
//         args: [255]           # String: VARCHAR(255); without it TEXT
//         nullable: false       # default false, as in the seed
//         doc: Unique order identifier
//     persistence:
//       database:
//         conformant_table: orders       # may be schema-qualified: "sales.orders"
//         unicity_fields: [order_key]    # the conflict key (PRIMARY KEY when we create the table)
//
// Entities are immutable once loaded and safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace nomnom {

enum class FieldType { kString, kInteger, kBigInt, kFloat, kDecimal, kBoolean, kDate, kDateTime, kJson };

// The entity-file spelling of a type ("String", ...), and its parser (case-insensitive;
// also accepts a few aliases such as "Int", "Double", "Timestamp").
std::string_view FieldTypeName(FieldType t);
Result<FieldType> ParseFieldType(std::string_view name);

struct Field {
  std::string name;
  FieldType type = FieldType::kString;
  bool nullable = false;
  uint32_t max_length = 0;  // String only: VARCHAR(max_length); 0 means TEXT
  std::string doc;

  // The PostgreSQL type as format_type() prints it, e.g. "character varying(255)".
  std::string PgTypeName() const;
};

struct Entity {
  std::string name;
  std::string table_schema;  // empty: the connection's search_path
  std::string table;
  std::vector<Field> fields;
  std::vector<size_t> key_fields;  // indexes into fields: the unicity fields, in order
  std::string source_file;

  // Index of the field named name, or -1.
  int FieldIndex(std::string_view field_name) const;
  // "schema"."table" or "table", quoted.
  std::string QualifiedTable() const;
  // CREATE TABLE IF NOT EXISTS ... with the key as PRIMARY KEY.
  std::string CreateTableSql() const;
};

// Parses one entity YAML document. `origin` names the source in error messages.
Result<Entity> ParseEntity(std::string_view yaml_text, std::string_view origin);
Result<Entity> LoadEntityFile(const std::string& path);

// Loads every *.yaml / *.yml file in dir. Fails on the first invalid file or on
// two entities with the same name.
Result<std::vector<Entity>> LoadEntityDir(const std::string& dir);

// The directory to load entities from: `explicit_dir` if non-empty, else
// $NOMNOM_ENTITIES, else the bundled definitions (the source tree's
// data/tpch/entities when it exists, else the installed share/nomnom/entities).
Result<std::string> ResolveEntityDir(const std::string& explicit_dir);

// Finds an entity by name (case-insensitive).
const Entity* FindEntity(const std::vector<Entity>& entities, std::string_view name);

}  // namespace nomnom
