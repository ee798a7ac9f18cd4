// JSON answers of nomnomd's HTTP API, shared by its handlers (the ingest API,
// status look-ups, probes). Invalid UTF-8 in a string (from a client's query,
// header or body) is replaced rather than thrown about: an answer is always
// valid JSON. Stateless; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "core/http/http_server.h"

namespace nomnom {

inline std::string DumpJson(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// An answer with status `status` and body `j`.
inline http::Response JsonResponse(int status, const nlohmann::ordered_json& j) {
  http::Response r;
  r.status = status;
  r.body = DumpJson(j);
  return r;
}

// An answer {"error": message}.
inline http::Response ErrorResponse(int status, const std::string& message) {
  nlohmann::ordered_json j;
  j["error"] = message;
  return JsonResponse(status, j);
}

}  // namespace nomnom
