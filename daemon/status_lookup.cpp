#include "daemon/status_lookup.h"

#include <nlohmann/json.hpp>

#include "core/base/utf8.h"
#include "core/queue/ingest_format.h"
#include "core/worker/ledger.h"
#include "daemon/json_reply.h"

namespace nomnom {

namespace {

using json = nlohmann::ordered_json;

// The 200 answer for a look-up's result, or a 404 when neither the ledger nor
// `pending` knows the id.
http::Response StatusAnswer(const std::string& id, const StatusKey& key, const IngestStatus& st,
                            const PendingIds& pending) {
  json j;
  j["id"] = id;
  j["kind"] = key.kind == StatusKey::Kind::kBatch ? "batch" : "message";
  switch (st.state) {
    case IngestStatus::State::kProcessed:
      j["status"] = "processed";
      j["committed_at"] = st.committed_at;
      j["rows"] = st.rows;
      if (key.kind == StatusKey::Kind::kBatch) j["rows_dead"] = st.rows_dead;
      break;
    case IngestStatus::State::kDead:
      j["status"] = "dead";
      j["error"] = st.error;
      break;
    case IngestStatus::State::kPending:
      j["status"] = "pending";
      j["chunks_committed"] = st.chunks_committed;
      j["chunks_total"] = st.chunks_total;
      break;
    case IngestStatus::State::kUnknown:
      if (!pending.IsPending(key)) return ErrorResponse(404, "unknown id '" + id + "'");
      j["status"] = "pending";
      break;
  }
  return JsonResponse(200, j);
}

}  // namespace

PgSessionOptions LookupConnections::Session() const {
  PgSessionOptions s;
  s.statement_timeout_ms = timeout_ms_;
  s.lock_timeout_ms = timeout_ms_;
  s.keepalives_idle_s = 5;
  s.keepalives_interval_s = 2;
  s.keepalives_count = 2;
  s.tcp_user_timeout_ms = timeout_ms_;
  // A stopped server (SIGSTOP) still acknowledges TCP: bounded in the client.
  s.client_timeout_ms = timeout_ms_ + 1000;
  return s;
}

std::unique_ptr<PgConnection> LookupConnections::Take() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (c->IsOk()) return c;
    }
  }
  auto c = PgConnection::Connect(database_url_, "nomnomd", Session());
  if (!c.ok()) return nullptr;
  return std::move(c).value();
}

void LookupConnections::Return(std::unique_ptr<PgConnection> conn) {
  if (!conn || !conn->IsOk()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < 4) idle_.push_back(std::move(conn));
}

void AnswerStatus(const std::string& id, const http::Responder& respond, LookupConnections& connections,
                  BlockingTaskPool& lookups, const PendingIds& pending) {
  auto key = ParseStatusId(id);
  if (!key) {
    respond(ErrorResponse(404, "unknown id '" + Excerpt(id, 100) + "'"));
    return;
  }
  auto task = [id, key = *key, respond, &connections, &pending] {
    auto conn = connections.Take();
    if (!conn) {
      respond(ErrorResponse(503, "PostgreSQL is unavailable"));
      return;
    }
    auto st = LookupIngestStatus(*conn, id);
    connections.Return(std::move(conn));
    if (!st.ok()) {
      respond(ErrorResponse(503, "status lookup failed: " + st.status().message()));
      return;
    }
    respond(StatusAnswer(id, key, *st, pending));
  };
  if (!lookups.Submit(std::move(task))) {
    http::Response r = ErrorResponse(503, "too many status look-ups waiting; retry later");
    r.headers.emplace_back("Retry-After", "1");
    respond(std::move(r));
  }
}

}  // namespace nomnom
