// The files nomnomd serves from memory (daemon/assets/, daemon/openapi.json).
// kFiles and kFileCount are defined by the .cpp that daemon/CMakeLists.txt
// generates, which embeds each file with .incbin.
#pragma once

#include <cstddef>

namespace nomnom::http {
class Server;
}  // namespace nomnom::http

namespace nomnom::http::embedded {

struct File {
  const char* url_path;  // e.g. "/swagger-ui/index.html"
  const char* begin;     // the file's bytes, [begin, end)
  const char* end;
};
extern const File kFiles[];
extern const std::size_t kFileCount;

// Serves every embedded file on GET at its URL path (Server::ServeStatic:
// from memory, without a copy), the Swagger UI's index also at /swagger-ui/,
// and /swagger-ui redirecting there (303). Call before the routes that replace
// some of them (the dashboard's) and before server.Start().
void ServeEmbeddedFiles(Server& server);

}  // namespace nomnom::http::embedded
