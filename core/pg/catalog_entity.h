// Builds an Entity from an existing table's definition in the PostgreSQL
// catalog, so that a table created by hand can be loaded without an entity
// YAML file (issue 8, "An existing table needs no YAML").
//
// The table is resolved with to_regclass() (a bound parameter, so the name is
// data, never SQL; unquoted names are folded as PostgreSQL does and the
// search_path applies to an unqualified name). Its columns become fields in
// table order, NOT NULL becomes nullable: false, and the conflict key is the
// primary key or, without one, the first plain unique index (no predicate, no
// expressions). A table without either gets no key fields (only conflict mode
// "error" is then meaningful).
//
// Column types and the FieldType each maps to:
//   text, varchar(n), char(n)          String (max_length n)
//   int2                               SmallInt
//   int4                               Integer
//   int8                               BigInt
//   float4                             Real
//   float8                             Float
//   numeric, numeric(p,s)              Decimal (precision p, scale s)
//   bool                               Boolean
//   date                               Date
//   timestamptz, timestamp             DateTime (same binary format: microseconds
//                                      since 2000-01-01; for timestamp the value
//                                      is stored as its UTC wall-clock time)
//   jsonb                              Json
//   json                               JsonText (the JSON text as sent)
//   uuid                               Uuid
//   text[], varchar[], varchar(n)[]    TextArray (element oid 25 or 1043, max_length n)
// Any other type (point, int4[], ...) is an InvalidArgument error naming the
// table, the column and the type. Generated columns and identity columns are
// skipped (the server fills them).
//
// nomnom's own tables (nomnom_ledger, nomnom_dead_letters, nomnom_counters,
// nomnom_fresh_loads, and any table whose name starts with "nomnom_") are
// refused.
#pragma once

#include <string>
#include <string_view>

#include "core/base/status.h"
#include "core/format/schema.h"
#include "core/pg/pg_connection.h"

namespace nomnom {

// True for a table name (without schema) that belongs to nomnom itself.
bool IsNomnomOwnTable(std::string_view table_name);

// Reads `table` ("table" or "schema.table", as PostgreSQL parses a regclass)
// from the catalog through `conn` and returns the matching Entity (name: the
// table's name; source_file: "catalog:<schema>.<table>").
Result<Entity> EntityFromCatalog(PgConnection& conn, std::string_view table);

// Entities of tables served by nomnomd (`--allow-table`) travel in chunks
// under the name "table.<schema>.<table>"; the worker resolves such a name
// from the catalog. TableEntityFromCatalog() is EntityFromCatalog() with that
// name, and refuses schema or table names other than [a-z0-9_] (they become
// NATS subject tokens and must read back unchanged as a regclass).
inline constexpr std::string_view kTableEntityPrefix = "table.";
bool IsTableEntityName(std::string_view entity_name);
Result<Entity> TableEntityFromCatalog(PgConnection& conn, std::string_view table);

// The entity file (the original YAML format, core/format/schema.h) that describes
// `entity`: name, fields (type; args for a sized String or TextArray and for
// a Decimal's precision and scale; nullable), conformant_table and
// unicity_fields. ParseEntity() of the text gives back the same fields,
// types, lengths, precision and scale, nullability, table and key, and the
// same PgTypeName() for every column type except those the format cannot
// spell: timestamp without time zone (read back as timestamptz), char(n) (as
// varchar(n)) and numeric with a negative scale (as numeric).
std::string EntityToYaml(const Entity& entity);

}  // namespace nomnom
