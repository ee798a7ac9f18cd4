// Target table setup: create the entity's table when it is missing, or check
// that an existing one matches the entity (column types, nullability, and the
// unique index ON CONFLICT needs).
#pragma once

#include "core/base/status.h"
#include "core/format/schema.h"
#include "core/pg/conflict_mode.h"
#include "core/pg/pg_connection.h"

namespace nomnom {

// Creates the table (and its schema) when missing; otherwise verifies it.
// Returns a kSchemaMismatch Status listing every difference found.
Status EnsureTable(PgConnection& conn, const Entity& entity, ConflictMode mode);

}  // namespace nomnom
