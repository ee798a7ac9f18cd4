// Target table setup: create the entity's table when it is missing, or check
// that an existing one matches the entity (column types, nullability, and the
// unique index ON CONFLICT needs).
#pragma once

#include "core/pg_connection.h"
#include "core/schema.h"
#include "core/status.h"

namespace nomnom {

enum class ConflictMode {
  kError,    // COPY straight into the target; a duplicate key is a rejected row
  kNothing,  // staging + INSERT ... ON CONFLICT DO NOTHING (first row wins)
  kUpdate,   // staging + INSERT ... ON CONFLICT DO UPDATE (last row wins)
};
std::string_view ConflictModeName(ConflictMode m);
Result<ConflictMode> ParseConflictMode(std::string_view s);

// Creates the table (and its schema) when missing; otherwise verifies it.
// Returns a kSchemaMismatch Status listing every difference found.
Status EnsureTable(PgConnection& conn, const Entity& entity, ConflictMode mode);

}  // namespace nomnom
