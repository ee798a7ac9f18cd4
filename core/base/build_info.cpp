#include "core/base/build_info.h"

#include "nomnom_commit.h"  // generated into the build tree: NOMNOM_COMMIT

namespace nomnom {

std::string_view BuildVersion() { return NOMNOM_VERSION; }

std::string_view BuildCommit() { return NOMNOM_COMMIT; }

std::string VersionLine(std::string_view program) {
  std::string line(program);
  line += ' ';
  line += BuildVersion();
  line += " (commit ";
  line += BuildCommit();
  line += ')';
  return line;
}

}  // namespace nomnom
