// core/http/probe_routes.h: the probe bodies are the ones nomnomd and
// `nomnom worker` wrote before they shared the code (nlohmann::json's and
// nlohmann::ordered_json's dumps).
#include "core/http/probe_routes.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace {

using nomnom::http::LiveBody;
using nomnom::http::ProbeJson;
using nomnom::http::Readiness;
using nomnom::http::ReadyBody;
using nomnom::http::ReadyResponse;

template <class Json>
std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

TEST_CASE("probe routes: /live as nomnomd and the worker wrote it", "[http][probes]") {
  nlohmann::json j;
  j["status"] = "alive";
  j["uptime_seconds"] = 12.3456789012;
  CHECK(LiveBody(12.3456789012, ProbeJson::kMembersByName) == Dump(j));
  CHECK(LiveBody(12.3456789012, ProbeJson::kInOrder) == "{\"status\":\"alive\",\"uptime_seconds\":12.345679}");
}

TEST_CASE("probe routes: /ready as nomnomd wrote it (members by name)", "[http][probes]") {
  nlohmann::json workers = nlohmann::json::object();
  workers["fetching"] = 2;
  workers["backing_off"] = 1;
  Readiness r;
  r.reason = "NATS disconnected \xff";
  r.fields.emplace_back("workers", Dump(workers));
  r.fields.emplace_back("worker_error", Dump(nlohmann::json("no database")));
  nlohmann::json j;
  j["status"] = "not ready";
  j["reason"] = r.reason;
  j["workers"] = workers;
  j["worker_error"] = "no database";
  CHECK(ReadyBody(r, ProbeJson::kMembersByName) == Dump(j));
  CHECK(ReadyResponse(r, ProbeJson::kMembersByName).status == 503);
  CHECK(ReadyResponse(r, ProbeJson::kMembersByName).content_type.empty());  // application/json

  Readiness ok;
  CHECK(ReadyBody(ok, ProbeJson::kMembersByName) == "{\"status\":\"ready\"}");
  CHECK(ReadyResponse(ok, ProbeJson::kMembersByName).status == 200);
}

TEST_CASE("probe routes: /ready as the worker wrote it (in order)", "[http][probes]") {
  nlohmann::ordered_json workers = nlohmann::ordered_json::object();
  workers["starting"] = 1;
  workers["fetching"] = 0;
  Readiness r;
  r.reason = "no worker is fetching: connection refused";
  r.fields.emplace_back("workers", Dump(workers));
  nlohmann::ordered_json j;
  j["status"] = "not ready";
  j["reason"] = r.reason;
  j["workers"] = workers;
  CHECK(ReadyBody(r, ProbeJson::kInOrder) == Dump(j));
  r.reason.clear();
  nlohmann::ordered_json ready;
  ready["status"] = "ready";
  ready["workers"] = workers;
  CHECK(ReadyBody(r, ProbeJson::kInOrder) == Dump(ready));
}

TEST_CASE("probe routes: /metrics is Prometheus text", "[http][probes]") {
  auto r = nomnom::http::MetricsResponse("up 1\n");
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r.body == "up 1\n");
}
