#include "core/pg/conflict_mode.h"

#include <string>

namespace nomnom {

std::string_view ConflictModeName(ConflictMode m) {
  switch (m) {
    case ConflictMode::kError:
      return "error";
    case ConflictMode::kNothing:
      return "nothing";
    case ConflictMode::kUpdate:
      return "update";
  }
  return "?";
}

Result<ConflictMode> ParseConflictMode(std::string_view s) {
  if (s == "error") return ConflictMode::kError;
  if (s == "nothing") return ConflictMode::kNothing;
  if (s == "update") return ConflictMode::kUpdate;
  return Status::InvalidArgument("the conflict mode must be error, nothing or update (got '" + std::string(s) + "')");
}

}  // namespace nomnom
