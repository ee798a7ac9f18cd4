// ConflictMode: what a load does with a row whose key is already in the
// target table (`--on-conflict`). Shared by the PostgreSQL sink, table setup,
// the workers and the command lines. Plain values; thread-safe.
#pragma once

#include <string_view>

#include "core/base/status.h"

namespace nomnom {

enum class ConflictMode {
  kError,    // COPY straight into the target; a duplicate key is a rejected row
  kNothing,  // staging + INSERT ... ON CONFLICT DO NOTHING (first row wins)
  kUpdate,   // staging + INSERT ... ON CONFLICT DO UPDATE (last row wins)
};
std::string_view ConflictModeName(ConflictMode m);
Result<ConflictMode> ParseConflictMode(std::string_view s);

}  // namespace nomnom
