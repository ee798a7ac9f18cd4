#include "core/http/probe_routes.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

namespace nomnom::http {
namespace {

// A JSON string literal; invalid UTF-8 becomes U+FFFD (what both programs'
// nlohmann::json dumps did).
std::string Quote(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

double SecondsSince(std::chrono::steady_clock::time_point started) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

}  // namespace

std::string LiveBody(double uptime_seconds, ProbeJson json) {
  const std::string uptime =
      json == ProbeJson::kInOrder ? std::to_string(uptime_seconds) : nlohmann::json(uptime_seconds).dump();
  return "{\"status\":\"alive\",\"uptime_seconds\":" + uptime + "}";
}

std::string ReadyBody(const Readiness& readiness, ProbeJson json) {
  std::vector<std::pair<std::string_view, std::string>> members;
  members.reserve(readiness.fields.size() + 2);
  members.emplace_back("status", Quote(readiness.reason.empty() ? "ready" : "not ready"));
  if (!readiness.reason.empty()) members.emplace_back("reason", Quote(readiness.reason));
  for (const auto& [name, value] : readiness.fields) members.emplace_back(name, value);
  if (json == ProbeJson::kMembersByName) {
    std::stable_sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  std::string body = "{";
  for (const auto& [name, value] : members) {
    if (body.size() > 1) body += ',';
    body += Quote(name);
    body += ':';
    body += value;
  }
  body += '}';
  return body;
}

Response ReadyResponse(const Readiness& readiness, ProbeJson json) {
  Response r;
  r.status = readiness.reason.empty() ? 200 : 503;
  r.body = ReadyBody(readiness, json);
  return r;
}

Response MetricsResponse(std::string text) {
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = std::move(text);
  return r;
}

void InstallProbeRoutes(Server& server, ProbeRoutes routes) {
  const auto started = routes.started;
  const ProbeJson json = routes.json;
  server.Route("GET", "/live", [started, json](Request&&, Responder respond) {
    Response r;
    r.body = LiveBody(SecondsSince(started), json);
    respond(std::move(r));
  });
  server.Route("GET", "/ready", [ready = std::move(routes.ready), json](Request&&, Responder respond) {
    respond(ReadyResponse(ready ? ready() : Readiness{}, json));
  });
  if (routes.metrics) {
    server.Route("GET", "/metrics", [metrics = std::move(routes.metrics)](Request&&, Responder respond) {
      respond(MetricsResponse(metrics()));
    });
  }
}

}  // namespace nomnom::http
