// The files nomnomd serves from memory (daemon/assets/, daemon/openapi.json).
// kFiles and kFileCount are defined by the .cpp that daemon/CMakeLists.txt
// generates, which embeds each file with .incbin.
#pragma once

#include <cstddef>

namespace nomnom::http::embedded {

struct File {
  const char* url_path;  // e.g. "/swagger-ui/index.html"
  const char* begin;     // the file's bytes, [begin, end)
  const char* end;
};
extern const File kFiles[];
extern const std::size_t kFileCount;

}  // namespace nomnom::http::embedded
