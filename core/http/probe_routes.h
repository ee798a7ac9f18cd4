// The probe and metrics routes a service process serves to Kubernetes and
// Prometheus: GET /live, GET /ready and GET /metrics (HEAD too), installed on
// an http::Server from callbacks, so that nomnomd and `nomnom worker
// --metrics-listen` answer them through the same code.
//
//   /live     200 {"status":"alive","uptime_seconds":S}: the process runs.
//   /ready    200 {"status":"ready",...} or 503 {"status":"not ready",
//             "reason":R,...}: ProbeRoutes::ready says why not (or "") and
//             which members follow.
//   /metrics  200, Prometheus text exposition (version 0.0.4) as rendered by
//             ProbeRoutes::metrics.
//
// Strings are JSON-quoted with invalid UTF-8 replaced (U+FFFD), so a body is
// always valid JSON. The callbacks run on the server's io threads, once per
// request, concurrently if the server has several: they must be thread-safe
// and must not block. They are held by the server's handlers: whatever they
// refer to must outlive the server's Stop().
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/http/http_server.h"

namespace nomnom::http {

// What /ready answers.
struct Readiness {
  std::string reason;  // why the process is not ready; "" when it is (200, else 503)
  // Members after "status" and "reason": name and value as JSON text (an
  // object, a quoted string, a number), e.g. {"workers", "{\"fetching\":2}"}.
  std::vector<std::pair<std::string, std::string>> fields;
};

// How the bodies are laid out. The two programs wrote theirs differently
// before they shared this code, and their answers stay byte for byte the same.
enum class ProbeJson {
  // nomnomd's: members ordered by name (as nlohmann::json orders them), the
  // uptime as the shortest decimal that reads back as the same double.
  kMembersByName,
  // `nomnom worker`'s: "status", then "reason", then the fields in their
  // order; the uptime with six decimals.
  kInOrder,
};

struct ProbeRoutes {
  // /live's uptime counts from here.
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // /ready's answer. Empty: always ready, no fields.
  std::function<Readiness()> ready;
  // /metrics' body (e.g. MetricsRegistry::Render after refreshing the
  // gauges). Empty: no /metrics route.
  std::function<std::string()> metrics;
  ProbeJson json = ProbeJson::kMembersByName;
};

// Registers GET /live, /ready and (if routes.metrics) /metrics on server;
// call before server.Start(). Replaces handlers registered there before.
void InstallProbeRoutes(Server& server, ProbeRoutes routes);

// The bodies InstallProbeRoutes answers with (for handlers that answer probes
// themselves, and tests).
std::string LiveBody(double uptime_seconds, ProbeJson json);
std::string ReadyBody(const Readiness& readiness, ProbeJson json);
// /ready's answer: 200 or 503 with ReadyBody.
Response ReadyResponse(const Readiness& readiness, ProbeJson json);
// /metrics' answer: 200, text/plain; version=0.0.4; charset=utf-8.
Response MetricsResponse(std::string text);

}  // namespace nomnom::http
