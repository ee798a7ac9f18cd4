// What build this is: the version (CMake's project version) and the git
// commit it was built from (core/base/git_commit.cmake; "unknown" outside
// a checkout). For --version and the health endpoints. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace nomnom {

std::string_view BuildVersion();  // "0.1.0"
std::string_view BuildCommit();   // "1a2b3c4d5e6f", "1a2b3c4d5e6f-dirty" or "unknown"
// "<program> <version> (commit <commit>)": what --version prints.
std::string VersionLine(std::string_view program);

}  // namespace nomnom
