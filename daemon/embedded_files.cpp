#include "daemon/embedded_files.h"

#include <string>
#include <string_view>

#include "core/http/http_server.h"

namespace nomnom::http::embedded {

void ServeEmbeddedFiles(Server& server) {
  std::string_view index;
  for (size_t i = 0; i < kFileCount; ++i) {
    const File& f = kFiles[i];
    const std::string_view body(f.begin, static_cast<size_t>(f.end - f.begin));
    server.ServeStatic(f.url_path, body);
    if (std::string_view(f.url_path) == "/swagger-ui/index.html") index = body;
  }
  if (index.data() == nullptr) return;
  server.ServeStatic("/swagger-ui/", index, "text/html; charset=utf-8");
  server.Route("GET", "/swagger-ui", [](Request&&, Responder respond) {
    Response r;
    r.status = 303;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "See /swagger-ui/\n";
    r.headers.emplace_back("Location", "/swagger-ui/");
    respond(std::move(r));
  });
}

}  // namespace nomnom::http::embedded
