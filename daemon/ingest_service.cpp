#include "daemon/ingest_service.h"

#include "daemon/ingest_request.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/base/log.h"
#include "core/base/utf8.h"
#include "core/format/pgcopy_chunk.h"
#include "core/queue/chunk_writer.h"
#include "core/queue/ingest_format.h"
#include "core/worker/ledger.h"

namespace nomnom {

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxIdempotencyKey = 256;
constexpr int64_t kPgMonitorPeriodMs = 500;  // PostgreSQL: reachable, totals, dead letters, heartbeats

// Invalid UTF-8 in a string (from a client's query, header or body) is
// replaced rather than thrown about: an answer is always valid JSON.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

http::Response Json(int status, const json& j) {
  http::Response r;
  r.status = status;
  r.body = Dump(j);
  return r;
}

http::Response Error(int status, const std::string& message) {
  json j;
  j["error"] = message;
  return Json(status, j);
}

// The 202 body of a /ingest/message row, without building a json object:
// the id (a UUID and a number) and the timestamp need no escaping.
// The timestamp is the time of the call.
std::string MessageAccepted(std::string_view batch_id, uint32_t row, std::string_view status) {
  std::string body;
  body.reserve(128);
  body += R"({"message_id":")";
  AppendMessageId(&body, batch_id, row);
  body += R"(","status":")";
  body += status;
  body += R"(","timestamp":")";
  AppendUtcTimestamp(&body);
  body += R"("})";
  return body;
}

http::Response Accepted(std::string body) {
  http::Response r;
  r.status = 202;
  r.body = std::move(body);
  return r;
}

// Line ranges [first, last] of chunks, merged where they touch.
json LineRanges(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  json out = json::array();
  for (const auto& [a, b] : ranges) {
    if (!out.empty() && out.back()[1].get<uint64_t>() + 1 >= a) {
      out.back()[1] = std::max(out.back()[1].get<uint64_t>(), b);
    } else {
      out.push_back(json::array({a, b}));
    }
  }
  return out;
}

}  // namespace

// What the monitor threads saw last (copied out under snap_mu_).
struct IngestService::Snapshot {
  bool stream_exists = false;
  bool nats_checked = false;
  std::optional<ConsumerLag> lag;
  std::optional<StreamStats> stream;
  bool db_ok = false;
  bool db_checked = false;
  std::string db_error;
  std::optional<LedgerTotals> db_totals;       // every worker's, from the counters table
  std::vector<RecentDeadLetter> dead_letters;  // the newest, from the dead-letter table
  std::vector<WorkerHeartbeat> processes;      // worker processes seen in the last 10 s
  double db_read_s = 0;                        // steady clock seconds of the last db_totals
  // (seconds since start, rows accepted, rows committed) once a second.
  std::deque<std::tuple<double, uint64_t, uint64_t>> samples;
};

struct IngestService::BatchState {
  http::Responder respond;
  std::string batch_id;
  const Entity* entity = nullptr;
  std::string key;        // cache key of an Idempotency-Key ("" without one)
  std::string body_hash;  // with an Idempotency-Key
  json response;          // the 202 body
  uint64_t accepted = 0;
  uint32_t chunks = 0;
  std::atomic<uint32_t> remaining{0};
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> stored;      // guarded by mu: line ranges of stored chunks
  std::vector<std::pair<uint64_t, uint64_t>> not_stored;  // guarded by mu
  uint64_t rows_stored = 0;                               // guarded by mu
  std::string error;                                      // guarded by mu: the first failure
  bool all_duplicates = true;                             // guarded by mu
  uint64_t first_duplicate_seq = 0;                       // guarded by mu
};

IngestService::IngestService(DaemonConfig config, JetStreamClient& js, MetricsRegistry& metrics)
    : config_(std::move(config)),
      derived_([this] {
        std::vector<std::vector<const Entity*>> d;
        for (const Entity& e : config_.entities) d.push_back(DerivedEntities(config_.entities, e));
        return d;
      }()),
      schemas_([this] {
        std::vector<std::string> f;
        for (const Entity& e : config_.entities) f.push_back(SchemaFingerprint(e));
        return f;
      }()),
      js_(js),
      metrics_(metrics),
      publisher_(
          js,
          [&] {
            ChunkPublisherOptions o;
            o.limits = ChunkLimits{config_.chunk_max_rows, config_.chunk_max_bytes};
            o.linger_ms = config_.linger_ms;
            o.max_queued_bytes = config_.max_queued_publish_bytes;
            o.stream_max_bytes = js.config().max_bytes;
            // /ingest/message rows: counted and remembered once per chunk.
            o.on_rows_stored = [this](const std::string& entity, const std::string& batch_id, uint32_t rows) {
              messages_accepted_.Inc(rows);
              AddAccepted(entity, rows);
              pending_.Remember(batch_id, rows, 1);
            };
            // A chunk's rows are answered with one hand-over per io thread.
            o.around_row_callbacks = [](const std::function<void()>& run) {
              http::ResponseBatch batch;
              run();
            };
            return o;
          }(),
          metrics),
      idempotency_(100000, config_.duplicate_window_ms),
      lookups_("status look-ups", config_.lookup_threads, config_.max_queued_lookups),
      health_("health checks", 1, 64),
      workers_(
          js, config_.entities,
          [&] {
            WorkerOptions wo = config_.worker;
            wo.conninfo = config_.database_url;
            wo.worker_name = "worker";
            return wo;
          }(),
          config_.workers, &metrics),
      snap_(std::make_unique<Snapshot>()),
      messages_accepted_(metrics.Counter("nomnom_api_messages_accepted_total", "Messages accepted by /ingest/message")),
      messages_rejected_(metrics.Counter("nomnom_api_messages_rejected_total", "Messages rejected by /ingest/message")),
      batches_accepted_(metrics.Counter("nomnom_api_batches_accepted_total", "Batches accepted by /ingest/batch")),
      rows_accepted_(metrics.Counter("nomnom_api_rows_accepted_total", "Rows accepted (stored in JetStream)")),
      rows_rejected_(metrics.Counter("nomnom_api_rows_rejected_total", "Rows rejected as invalid by the API")),
      duplicates_(
          metrics.Counter("nomnom_api_duplicates_total", "Idempotency-Key requests whose data JetStream already had")) {
  for (const auto& e : config_.entities) entity_counts_.emplace(e.name, std::make_unique<EntityCounts>());
}

void IngestService::AddAccepted(std::string_view entity, uint64_t rows) {
  rows_accepted_.Inc(rows);
  if (auto it = entity_counts_.find(entity); it != entity_counts_.end()) {
    it->second->accepted.fetch_add(rows, std::memory_order_relaxed);
  }
}

void IngestService::AddRejected(const Entity& e, uint64_t rows) {
  rows_rejected_.Inc(rows);
  if (auto it = entity_counts_.find(e.name); it != entity_counts_.end()) {
    it->second->rejected.fetch_add(rows, std::memory_order_relaxed);
  }
}

IngestService::~IngestService() { Shutdown(5000); }

void IngestService::Register(http::Server& server) {
  auto bind = [this](void (IngestService::*fn)(http::Request&&, http::Responder)) {
    return
        [this, fn](http::Request&& req, http::Responder respond) { (this->*fn)(std::move(req), std::move(respond)); };
  };
  server.Route("POST", "/ingest/message", bind(&IngestService::HandleMessage));
  server.Route("POST", "/ingest/batch", bind(&IngestService::HandleBatch));
  server.Route("GET", "/ingest/status/{id}", bind(&IngestService::HandleStatus));
  server.Route("GET", "/live", bind(&IngestService::HandleLive));
  server.Route("GET", "/health", bind(&IngestService::HandleHealth));
  server.Route("GET", "/ready", bind(&IngestService::HandleReady));
  server.Route("GET", "/stats", bind(&IngestService::HandleStats));
  server.Route("GET", "/metrics", bind(&IngestService::HandleMetrics));
  server.OnRequestDone([this](std::string_view method, std::string_view route, int status, double seconds) {
    // Called on the io threads for every request: each thread remembers the
    // series it has used, so that a request costs no label rendering and no
    // registry lookup under its lock. The serial tells this service's entries
    // from those of an earlier one (tests run several in one process). The
    // server passes bounded values: a known method or "other", a route
    // pattern or "", a status code.
    struct Series {
      uint64_t owner;
      std::string method, route;
      int status;
      MetricHistogram* latency;
      MetricCounter* requests;
    };
    if (!route.starts_with("/dashboard")) api_latency_.Observe(seconds);
    thread_local std::vector<Series> cache;
    for (const Series& c : cache) {
      if (c.owner == serial_ && c.status == status && c.route == route && c.method == method) {
        c.latency->Observe(seconds);
        c.requests->Inc();
        return;
      }
    }
    const std::string r = route.empty() ? "unmatched" : std::string(route);
    Series c{serial_,
             std::string(method),
             std::string(route),
             status,
             &metrics_.Histogram("nomnom_http_request_duration_seconds", "HTTP request latency", {{"route", r}}),
             &metrics_.Counter("nomnom_http_requests_total", "HTTP requests",
                               {{"method", std::string(method)}, {"route", r}, {"status", std::to_string(status)}})};
    c.latency->Observe(seconds);
    c.requests->Inc();
    if (cache.size() < 256) cache.push_back(std::move(c));
  });
}

void IngestService::Start() {
  workers_.SetLedgerRetention(config_.ledger_retention_ms);
  publisher_.Start();
  nats_monitor_ = std::thread([this] { NatsMonitorMain(); });
  pg_monitor_ = std::thread([this] { PgMonitorMain(); });
  workers_.Start();
}

void IngestService::BeginDrain() {
  draining_.store(true);
  ready_.store(false);
}

void IngestService::Shutdown(int64_t timeout_ms) {
  {
    std::lock_guard<std::mutex> lock(shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  BeginDrain();
  publisher_.Shutdown();
  if (Status s = js_.Drain(timeout_ms); !s.ok()) LogWarn("{}", s.message());
  workers_.Stop();
  workers_.Join();
  lookups_.Stop();
  health_.Stop();
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_.store(true);
  }
  stop_cv_.notify_all();
  if (nats_monitor_.joinable()) nats_monitor_.join();
  if (pg_monitor_.joinable()) pg_monitor_.join();
}

// ---- ingest -------------------------------------------------------------------

const Entity* IngestService::CheckIngest(const http::Request& req, const http::Responder& respond, bool batch) {
  if (draining_.load() || !ready_.load()) {
    respond(Error(503, draining_.load() ? "shutting down" : "not ready"));
    return nullptr;
  }
  if (!js_.IsConnected()) {
    respond(Error(503, "JetStream is unavailable"));
    return nullptr;
  }
  // The media type, without parameters, compared case-insensitively (no copy:
  // this runs for every request).
  std::string_view ct = req.header_view("Content-Type");
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  const auto is = [ct](std::string_view type) {
    return ct.size() == type.size() && std::equal(ct.begin(), ct.end(), type.begin(), [](char a, char b) {
             return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
           });
  };
  const bool ok_type =
      is("application/json") || (batch && (is("application/x-ndjson") || is("text/plain") || is("application/ndjson")));
  if (!ok_type) {
    respond(Error(415, "unsupported Content-Type '" + Excerpt(ct, 100) + "'; use " +
                           (batch ? "application/x-ndjson, application/json or text/plain" : "application/json")));
    return nullptr;
  }
  std::string name = config_.default_entity;
  if (auto it = req.query.find("entity"); it != req.query.end()) name = it->second;
  if (auto t = req.query.find("table"); t != req.query.end()) {
    if (req.query.count("entity") > 0) {
      respond(Error(400, "give either ?entity= or ?table=, not both"));
      return nullptr;
    }
    auto allowed = config_.allowed_tables.find(t->second);
    if (allowed == config_.allowed_tables.end()) {
      respond(Error(404, "table '" + Excerpt(t->second, 100) +
                             "' is not served here (nomnomd loads only the tables listed with --allow-table)"));
      return nullptr;
    }
    name = allowed->second;
  }
  const Entity* e = FindEntity(config_.entities, name);
  if (e == nullptr) {
    respond(Error(404, "unknown entity '" + Excerpt(name, 100) + "'"));
    return nullptr;
  }
  if (publisher_.Overloaded()) {
    http::Response r = Error(503, "overloaded: too much data waiting for JetStream; retry later");
    r.headers.emplace_back("Retry-After", "1");
    respond(std::move(r));
    return nullptr;
  }
  return e;
}

void IngestService::HandleMessage(http::Request&& req, http::Responder respond) {
  const Entity* e = CheckIngest(req, respond, false);
  if (e == nullptr) return;
  const std::string key = req.header("Idempotency-Key");
  if (key.size() > kMaxIdempotencyKey) {
    respond(Error(400, "Idempotency-Key is longer than " + std::to_string(kMaxIdempotencyKey) + " characters"));
    return;
  }
  // Binary unless told otherwise, nested, or with a key (its chunk's body
  // hash is the line's).
  const PublishFormat format = key.empty() && Derived(*e).empty() ? config_.publish_format : PublishFormat::kNdjson;
  MessageCheck checked = CheckMessage(*e, req.body, publisher_.BodyLimit(e->name, format), Derived(*e), format);
  if (checked.status != 200) {
    messages_rejected_.Inc();
    AddRejected(*e, 1);
    rejects_.Add(DashboardEvent{UtcTimestamp(), "", e->name, 0, Excerpt(checked.error, 300)});
    respond(Error(checked.status, checked.error));
    return;
  }
  const std::string_view line = checked.row();  // into req.body

  if (!key.empty()) {
    // A chunk of its own whose id derives from the key: JetStream's duplicate
    // window and the workers' ledger keep one copy. The body's hash tells a
    // repeat (answered as the first time) from a conflicting reuse (409).
    const std::string cache_key = e->name + "\nmessage\n" + key;
    const std::string batch_id = NameUuid(cache_key);
    const std::string body_hash = NameUuid(line);
    if (auto known = idempotency_.BodyHash(cache_key); known && *known != body_hash) {
      respond(Error(409, "Idempotency-Key was used with another body"));
      return;
    }
    OutgoingMessage m =
        MakeChunkMessage(js_.EntitySubject(e->name), e->name, batch_id, 0, 1, 1, std::string(line) + "\n",
                         ChunkEncoding{PublishFormat::kNdjson, {}, body_hash});
    publisher_.Publish(std::move(m), [this, e, respond, batch_id, body_hash, cache_key](const PublishResult& r) {
      if (!r.status.ok()) {
        respond(Error(503, "JetStream did not store the message: " + r.status.message()));
        return;
      }
      if (!r.duplicate) {
        idempotency_.Remember(cache_key, body_hash);
        messages_accepted_.Inc();
        AddAccepted(e->name, 1);
        pending_.Remember(batch_id, 1, 1);
        respond(Accepted(MessageAccepted(batch_id, 0, "accepted")));
        return;
      }
      duplicates_.Inc();
      if (auto known = idempotency_.BodyHash(cache_key)) {
        respond(*known == body_hash ? Accepted(MessageAccepted(batch_id, 0, "duplicate"))
                                    : Error(409, "Idempotency-Key was used with another body"));
        return;
      }
      // Stored by another process (or before a restart): the original's
      // hash is in the stream while no worker has consumed it.
      const uint64_t seq = r.stream_seq;
      auto check = [this, respond, batch_id, body_hash, cache_key, seq] {
        auto stored = js_.StoredHeader(seq, std::string(kHeaderBodyHash));
        if (stored.ok() && stored->has_value() && **stored != body_hash) {
          respond(Error(409, "Idempotency-Key was used with another body"));
          return;
        }
        if (stored.ok() && stored->has_value()) idempotency_.Remember(cache_key, body_hash);
        respond(Accepted(MessageAccepted(batch_id, 0, "duplicate")));
      };
      if (!lookups_.Submit(check)) respond(Accepted(MessageAccepted(batch_id, 0, "duplicate")));
    });
    return;
  }

  publisher_.AddRow(
      e->name, format == PublishFormat::kPgCopy1 ? checked.tuple : line,
      // Counted and remembered per chunk (on_rows_stored).
      [respond = std::move(respond)](const PublishResult& r, const std::string& batch_id, uint32_t row) {
        if (!r.status.ok()) {
          respond(Error(503, "JetStream did not store the message: " + r.status.message()));
          return;
        }
        respond(Accepted(MessageAccepted(batch_id, row, "accepted")));
      },
      format, Schema(*e));
}

void IngestService::HandleBatch(http::Request&& req, http::Responder respond) {
  const Entity* e = CheckIngest(req, respond, true);
  if (e == nullptr) return;
  const std::string key = req.header("Idempotency-Key");
  if (key.size() > kMaxIdempotencyKey) {
    respond(Error(400, "Idempotency-Key is longer than " + std::to_string(kMaxIdempotencyKey) + " characters"));
    return;
  }
  // With a key, the chunk split (and so each chunk's id) depends on the body
  // alone, not on this daemon's chunk settings: a retry sent to another
  // replica makes the same chunks.
  const std::vector<const Entity*>& derived = Derived(*e);
  const PublishFormat format = derived.empty() ? config_.publish_format : PublishFormat::kNdjson;
  // pgcopy1's two extra headers come off the body's room.
  const int64_t payload = js_.MaxPayload() - (format == PublishFormat::kPgCopy1 ? kPgCopyHeaderBytes : 0);
  ChunkLimits limits =
      key.empty() ? publisher_.LimitsFor(e->name) : ChunkLimits{1000, ChunkBodyLimit(payload, e->name, 512 << 10)};
  limits.max_bytes = ChunkBodyLimit(payload, e->name, limits.max_bytes);
  const std::string body_hash = key.empty() ? std::string() : NameUuid(req.body);
  BatchCheck batch = CheckBatch(*e, req.body, limits, config_.max_errors_reported, derived, format);
  const std::string& schema = Schema(*e);
  const uint64_t accepted = batch.accepted, rejected = batch.rejected;
  json errors = json::array();
  for (auto& [line, why] : batch.errors) errors.push_back({{"line", line}, {"error", std::move(why)}});
  AddRejected(*e, rejected);
  // The dashboard lists a few of a batch's rejects, with the batch's id when it has one.
  auto list_rejects = [&](const std::string& id) {
    const std::string now = UtcTimestamp();
    for (size_t i = 0; i < errors.size() && i < 5; ++i) {
      rejects_.Add(DashboardEvent{now, id, e->name, errors[i]["line"].get<uint64_t>(),
                                  Excerpt(errors[i]["error"].get<std::string>(), 300)});
    }
  };
  if (accepted == 0) {
    list_rejects("");
    json j;
    j["error"] = rejected == 0 ? "the body holds no rows" : "no valid line in the batch";
    j["accepted"] = 0;
    j["rejected"] = rejected;
    j["errors"] = errors;
    j["errors_truncated"] = rejected > errors.size();
    j["max_errors_reported"] = config_.max_errors_reported;
    respond(Json(400, j));
    return;
  }
  auto state = std::make_shared<BatchState>();
  state->respond = std::move(respond);
  if (key.empty()) {
    state->batch_id = NewUuid();
  } else {
    state->key = e->name + "\nbatch\n" + key;
    state->batch_id = NameUuid(state->key);
    state->body_hash = body_hash;
    if (auto known = idempotency_.BodyHash(state->key); known && *known != body_hash) {
      state->respond(Error(409, "Idempotency-Key was used with another body"));
      return;
    }
  }
  list_rejects(state->batch_id);
  state->entity = e;
  state->accepted = accepted;
  state->response["batch_id"] = state->batch_id;
  state->response["status"] = rejected == 0 ? "accepted" : "partial";
  state->response["accepted"] = accepted;
  state->response["rejected"] = rejected;
  state->response["errors"] = std::move(errors);
  state->response["errors_truncated"] = rejected > state->response["errors"].size();
  state->response["max_errors_reported"] = config_.max_errors_reported;
  std::vector<ChunkBody>& chunks = batch.chunks;
  const auto count = static_cast<uint32_t>(chunks.size());
  state->chunks = count;
  state->remaining.store(count);
  for (uint32_t k = 0; k < count; ++k) {
    ChunkBody& c = chunks[k];
    const std::pair<uint64_t, uint64_t> lines{c.first_line, c.last_line};
    const uint32_t rows = c.rows;
    OutgoingMessage m = MakeChunkMessage(js_.EntitySubject(e->name), e->name, state->batch_id, k, count, rows,
                                         std::move(c.body), ChunkEncoding{batch.format, schema, state->body_hash});
    publisher_.Publish(std::move(m), [this, state, lines, rows](const PublishResult& r) {
      {
        std::lock_guard<std::mutex> lock(state->mu);
        if (r.status.ok()) {
          state->stored.push_back(lines);
          state->rows_stored += rows;
          if (!r.duplicate) {
            state->all_duplicates = false;
          } else if (state->first_duplicate_seq == 0) {
            state->first_duplicate_seq = r.stream_seq;
          }
        } else {
          state->not_stored.push_back(lines);
          if (state->error.empty()) state->error = r.status.message();
        }
      }
      if (state->remaining.fetch_sub(1) != 1) return;
      // The last chunk's completion: answer. (Every other completion has
      // returned above, so state's fields are ours now.)
      std::lock_guard<std::mutex> lock(state->mu);
      if (!state->error.empty()) {
        // Say exactly which rows are stored, so a retry sends only the rest
        // (or the whole batch again with an Idempotency-Key).
        std::sort(state->stored.begin(), state->stored.end());
        std::sort(state->not_stored.begin(), state->not_stored.end());
        json j;
        j["error"] = "JetStream did not store the whole batch: " + state->error;
        j["batch_id"] = state->batch_id;
        j["rows_stored"] = state->rows_stored;
        j["stored_lines"] = LineRanges(state->stored);
        j["not_stored_lines"] = LineRanges(state->not_stored);
        if (state->rows_stored > 0) {
          AddAccepted(state->entity->name, state->rows_stored);
          pending_.Remember(state->batch_id, static_cast<uint32_t>(state->rows_stored), state->chunks);
        }
        state->respond(Json(503, j));
        return;
      }
      if (!state->key.empty() && state->all_duplicates) {
        // A repeat of a stored batch: the first answer, unless the key came
        // with another body.
        duplicates_.Inc();
        auto known = idempotency_.BodyHash(state->key);
        if (known) {
          state->respond(*known == state->body_hash ? Json(202, state->response)
                                                    : Error(409, "Idempotency-Key was used with another body"));
          return;
        }
        const uint64_t seq = state->first_duplicate_seq;
        auto check = [this, state, seq] {
          auto stored = js_.StoredHeader(seq, std::string(kHeaderBodyHash));
          if (stored.ok() && stored->has_value() && **stored != state->body_hash) {
            state->respond(Error(409, "Idempotency-Key was used with another body"));
            return;
          }
          state->respond(Json(202, state->response));
        };
        if (!lookups_.Submit(check)) state->respond(Json(202, state->response));
        return;
      }
      if (!state->key.empty()) idempotency_.Remember(state->key, state->body_hash);
      batches_accepted_.Inc();
      AddAccepted(state->entity->name, state->accepted);
      pending_.Remember(state->batch_id, static_cast<uint32_t>(state->accepted), state->chunks);
      state->respond(Json(202, state->response));
    });
  }
}

// ---- status, probes, stats ------------------------------------------------------

PgSessionOptions IngestService::LookupSession() const {
  // Look-ups and health checks answer quickly or not at all, also when the
  // server hangs or the connection is half-open.
  PgSessionOptions s;
  s.statement_timeout_ms = config_.lookup_timeout_ms;
  s.lock_timeout_ms = config_.lookup_timeout_ms;
  s.keepalives_idle_s = 5;
  s.keepalives_interval_s = 2;
  s.keepalives_count = 2;
  s.tcp_user_timeout_ms = config_.lookup_timeout_ms;
  // A stopped server (SIGSTOP) still acknowledges TCP: bounded in the client.
  s.client_timeout_ms = config_.lookup_timeout_ms + 1000;
  return s;
}

std::unique_ptr<PgConnection> IngestService::TakeConnection() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    while (!pool_.empty()) {
      auto c = std::move(pool_.back());
      pool_.pop_back();
      if (c->IsOk()) return c;
    }
  }
  auto c = PgConnection::Connect(config_.database_url, "nomnomd", LookupSession());
  if (!c.ok()) return nullptr;
  return std::move(c).value();
}

void IngestService::ReturnConnection(std::unique_ptr<PgConnection> conn) {
  if (!conn || !conn->IsOk()) return;
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (pool_.size() < 4) pool_.push_back(std::move(conn));
}

void IngestService::HandleStatus(http::Request&& req, http::Responder respond) {
  const std::string id = req.query["id"];
  auto key = ParseStatusId(id);
  if (!key) {
    respond(Error(404, "unknown id '" + Excerpt(id, 100) + "'"));
    return;
  }
  auto task = [this, id, key = *key, respond] {
    auto conn = TakeConnection();
    if (!conn) {
      respond(Error(503, "PostgreSQL is unavailable"));
      return;
    }
    auto st = LookupIngestStatus(*conn, id);
    ReturnConnection(std::move(conn));
    if (!st.ok()) {
      respond(Error(503, "status lookup failed: " + st.status().message()));
      return;
    }
    json j;
    j["id"] = id;
    j["kind"] = key.kind == StatusKey::Kind::kBatch ? "batch" : "message";
    switch (st->state) {
      case IngestStatus::State::kProcessed:
        j["status"] = "processed";
        j["committed_at"] = st->committed_at;
        j["rows"] = st->rows;
        if (key.kind == StatusKey::Kind::kBatch) j["rows_dead"] = st->rows_dead;
        break;
      case IngestStatus::State::kDead:
        j["status"] = "dead";
        j["error"] = st->error;
        break;
      case IngestStatus::State::kPending:
        j["status"] = "pending";
        j["chunks_committed"] = st->chunks_committed;
        j["chunks_total"] = st->chunks_total;
        break;
      case IngestStatus::State::kUnknown:
        if (!pending_.IsPending(key)) {
          respond(Error(404, "unknown id '" + id + "'"));
          return;
        }
        j["status"] = "pending";
        break;
    }
    respond(Json(200, j));
  };
  if (!lookups_.Submit(std::move(task))) {
    http::Response r = Error(503, "too many status look-ups waiting; retry later");
    r.headers.emplace_back("Retry-After", "1");
    respond(std::move(r));
  }
}

void IngestService::HandleLive(http::Request&&, http::Responder respond) {
  json j;
  j["status"] = "alive";
  j["uptime_seconds"] = std::chrono::duration<double>(Clock::now() - started_).count();
  respond(Json(200, j));
}

std::string IngestService::NotReadyReason() const {
  if (draining_.load()) return "draining";
  if (!ready_.load()) return "starting";
  if (!js_.IsConnected()) return "NATS disconnected";
  std::lock_guard<std::mutex> lock(snap_mu_);
  if (!snap_->nats_checked) return "starting";
  if (!snap_->stream_exists) return "stream " + js_.config().stream + " missing";
  return "";
}

static json WorkerStates(const WorkerPool& pool) {
  json states = json::object();
  for (const auto& [st, n] : pool.StateCounts()) states[std::string(WorkerStateName(st))] = n;
  return states;
}

void IngestService::HandleReady(http::Request&&, http::Responder respond) {
  // Readiness is the API's: a worker that cannot reach PostgreSQL does not
  // stop the API from storing rows in JetStream. The workers' states are
  // shown alongside (and in /metrics as nomnom_worker_state).
  const std::string why = NotReadyReason();
  json j;
  j["status"] = why.empty() ? "ready" : "not ready";
  if (!why.empty()) j["reason"] = why;
  if (workers_.size() > 0) {
    j["workers"] = WorkerStates(workers_);
    if (const std::string err = workers_.BackingOffError(); !err.empty()) j["worker_error"] = err;
  }
  respond(Json(why.empty() ? 200 : 503, j));
}

void IngestService::HandleHealth(http::Request&&, http::Responder respond) {
  // A fresh check on /health's own thread (bounded by the look-up timeout),
  // so it reports PostgreSQL going away at once and never waits behind status
  // look-ups; when checks pile up, the monitor's last reading answers.
  auto answer = [this, respond](bool db_ok, const std::string& db_error) {
    const bool nats_ok = js_.IsConnected();
    json j;
    j["status"] = db_ok && nats_ok ? "healthy" : "unhealthy";
    j["database"] = db_ok ? "connected" : "unreachable";
    if (!db_ok && !db_error.empty()) j["database_error"] = db_error;
    j["nats"] = nats_ok ? "connected" : "unreachable";
    json names = json::array();
    for (const auto& e : config_.entities) names.push_back(e.name);
    j["entities"] = names;
    j["version"] = NOMNOM_VERSION;
    respond(Json(db_ok && nats_ok ? 200 : 503, j));
  };
  auto check = [this, answer] {
    auto conn = TakeConnection();
    if (!conn) {
      answer(false, "cannot connect");
      return;
    }
    auto err = conn->TryExec("SELECT 1");
    ReturnConnection(std::move(conn));
    answer(!err, err ? err->message : std::string());
  };
  if (!health_.Submit(check)) {
    bool db_ok;
    std::string db_error;
    {
      std::lock_guard<std::mutex> lock(snap_mu_);
      db_ok = snap_->db_ok;
      db_error = snap_->db_error;
    }
    answer(db_ok, db_error);
  }
}

void IngestService::SleepUnlessStopping(int64_t ms) {
  std::unique_lock<std::mutex> lock(stop_mu_);
  stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
}

void IngestService::NatsMonitorMain() {
  while (!stopping_.load()) {
    const bool exists = js_.IsConnected() && js_.StreamExists();
    auto lag = js_.Lag();
    auto stream = js_.MainStreamStats();
    const uint64_t committed = workers_.Totals().rows_committed;
    const double t = std::chrono::duration<double>(Clock::now() - started_).count();
    {
      std::lock_guard<std::mutex> lock(snap_mu_);
      snap_->nats_checked = true;
      snap_->stream_exists = exists;
      snap_->lag = lag.ok() ? std::optional<ConsumerLag>(*lag) : std::nullopt;
      snap_->stream = stream.ok() ? std::optional<StreamStats>(*stream) : std::nullopt;
      snap_->samples.emplace_back(t, rows_accepted_.Value(), committed);
      while (snap_->samples.size() > 61) snap_->samples.pop_front();
    }
    SleepUnlessStopping(1000);
  }
}

void IngestService::PgMonitorMain() {
  std::unique_ptr<PgConnection> conn;
  while (!stopping_.load()) {
    // Twice a second from the start of one reading to the next, so that the
    // dashboard's one-second snapshots show a commit by the second one after it.
    const auto started = Clock::now();
    bool ok = false;
    std::string error;
    std::optional<LedgerTotals> totals;
    std::optional<std::vector<RecentDeadLetter>> dead_letters;
    std::optional<std::vector<WorkerHeartbeat>> processes;
    if (!conn || !conn->IsOk()) {
      auto c = PgConnection::Connect(config_.database_url, "nomnomd-monitor", LookupSession());
      if (c.ok()) {
        conn = std::move(c).value();
      } else {
        conn.reset();
        error = c.status().message();
      }
    }
    if (conn) {
      if (auto err = conn->TryExec("SELECT 1")) {
        error = err->message;
      } else {
        ok = true;
        // Every worker's totals (a few counter rows, however long the ledger).
        if (auto t = ReadLedgerTotals(*conn); t.ok()) totals = *t;
        // The newest dead letters, for the dashboard (an index scan of a few rows).
        if (auto d = ReadRecentDeadLetters(*conn, 20); d.ok()) dead_letters = std::move(d).value();
        // Every worker process's heartbeat (this one's embedded workers included).
        if (auto h = ReadWorkerHeartbeats(*conn, 10); h.ok()) processes = std::move(h).value();
      }
    }
    {
      std::lock_guard<std::mutex> lock(snap_mu_);
      snap_->db_checked = true;
      snap_->db_ok = ok;
      snap_->db_error = error;
      if (totals) {
        snap_->db_totals = totals;
        snap_->db_read_s = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
      }
      if (dead_letters) snap_->dead_letters = std::move(*dead_letters);
      if (processes) snap_->processes = std::move(*processes);
    }
    const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    SleepUnlessStopping(std::max<int64_t>(0, kPgMonitorPeriodMs - spent));
  }
}

void IngestService::HandleStats(http::Request&&, http::Responder respond) {
  // The database totals are read fresh (a few counter rows: cheap) on the
  // look-up pool; if that is full or PostgreSQL does not answer, the monitor's
  // last reading is used.
  auto task = [this, respond] {
    std::optional<LedgerTotals> fresh;
    if (auto conn = TakeConnection()) {
      if (auto t = ReadLedgerTotals(*conn); t.ok()) fresh = *t;
      ReturnConnection(std::move(conn));
    }
    RespondStats(respond, fresh);
  };
  if (!lookups_.Submit(task)) RespondStats(respond, std::nullopt);
}

void IngestService::RespondStats(const http::Responder& respond, const std::optional<LedgerTotals>& fresh) {
  json j;
  j["version"] = NOMNOM_VERSION;
  j["uptime_seconds"] = std::chrono::duration<double>(Clock::now() - started_).count();
  json api;
  api["messages_accepted"] = messages_accepted_.Value();
  api["messages_rejected"] = messages_rejected_.Value();
  api["batches_accepted"] = batches_accepted_.Value();
  api["rows_accepted"] = rows_accepted_.Value();
  api["rows_rejected"] = rows_rejected_.Value();
  api["chunks_published"] = metrics_.Counter("nomnom_jetstream_chunks_published_total", "").Value();
  api["publish_errors"] = metrics_.Counter("nomnom_jetstream_publish_errors_total", "").Value();
  api["duplicates"] = duplicates_.Value();
  j["api"] = api;
  const WorkerTotals t = workers_.Totals();
  json w;
  w["count"] = workers_.size();
  w["states"] = WorkerStates(workers_);
  w["messages_committed"] = t.messages_committed;
  w["rows_committed"] = t.rows_committed;
  w["rows_dead"] = t.rows_dead;
  w["messages_dead"] = t.messages_dead;
  w["redeliveries_skipped"] = t.duplicates_skipped;
  j["workers"] = w;
  std::lock_guard<std::mutex> lock(snap_mu_);
  json js;
  js["connected"] = js_.IsConnected();
  js["stream"] = js_.config().stream;
  js["consumer"] = js_.config().consumer;
  if (snap_->lag) {
    js["num_pending"] = snap_->lag->num_pending;
    js["num_ack_pending"] = snap_->lag->num_ack_pending;
    js["num_redelivered"] = snap_->lag->num_redelivered;
    js["consumer_lag"] = snap_->lag->Backlog();
  }
  if (snap_->stream) {
    js["stream_messages"] = snap_->stream->messages;
    js["stream_bytes"] = snap_->stream->bytes;
  }
  j["jetstream"] = js;
  if (const std::optional<LedgerTotals>& totals = fresh ? fresh : snap_->db_totals) {
    json db;
    db["rows_committed"] = totals->rows_committed;
    db["chunks_committed"] = totals->chunks_committed;
    db["rows_dead"] = totals->rows_dead;
    db["chunks_dead"] = totals->chunks_dead;
    db["dead_letters"] = totals->rows_dead + totals->chunks_dead;
    json by_entity = json::object();
    for (const auto& [name, e] : totals->by_entity) {
      json x;
      x["rows_committed"] = e.rows_committed;
      x["chunks_committed"] = e.chunks_committed;
      x["dead_letters"] = e.rows_dead + e.chunks_dead;
      if (!e.derived_rows.empty()) {
        // Nested: rows per table (the root's are the entity's rows).
        json tables = json::object();
        const auto root = std::find_if(config_.entities.begin(), config_.entities.end(),
                                       [&n = name](const Entity& c) { return c.name == n; });
        if (root != config_.entities.end()) tables[root->TableName()] = e.rows_committed;
        for (const auto& [table, rows] : e.derived_rows) tables[table] = rows;
        x["tables"] = std::move(tables);
      }
      by_entity[name] = std::move(x);
    }
    db["entities"] = std::move(by_entity);
    j["total_messages_processed"] = db["chunks_committed"];  // the seed's field
    j["database"] = db;
  }
  const auto& samples = snap_->samples;
  auto rate = [&](size_t window, int which) -> double {
    if (samples.size() < 2) return 0;
    const auto& last = samples.back();
    const auto& first = samples.size() > window ? samples[samples.size() - 1 - window] : samples.front();
    const double dt = std::get<0>(last) - std::get<0>(first);
    if (dt <= 0) return 0;
    const double dv = which == 1 ? static_cast<double>(std::get<1>(last) - std::get<1>(first))
                                 : static_cast<double>(std::get<2>(last) - std::get<2>(first));
    return dv / dt;
  };
  json rates;
  rates["rows_accepted_per_second_10s"] = rate(10, 1);
  rates["rows_accepted_per_second_60s"] = rate(60, 1);
  rates["rows_committed_per_second_10s"] = rate(10, 2);
  rates["rows_committed_per_second_60s"] = rate(60, 2);
  j["rates"] = rates;
  respond(Json(200, j));
}

DashboardInputs IngestService::CollectDashboardInputs() const {
  DashboardInputs in;
  in.monotonic_s = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  in.unix_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  in.time = UtcTimestamp();
  in.accepted = rows_accepted_.Value();
  in.rejected = rows_rejected_.Value();
  in.nats_connected = js_.IsConnected();
  in.stream = js_.config().stream;
  in.consumer = js_.config().consumer;
  std::optional<LedgerTotals> totals;
  std::vector<RecentDeadLetter> dead;
  {
    std::lock_guard<std::mutex> lock(snap_mu_);
    in.postgres_connected = snap_->db_ok;
    in.postgres_error = snap_->db_error;
    if (snap_->lag) {
      in.consumer_pending = snap_->lag->num_pending;
      in.consumer_ack_pending = snap_->lag->num_ack_pending;
      in.consumer_redelivered = snap_->lag->num_redelivered;
    }
    if (snap_->stream) {
      in.stream_messages = snap_->stream->messages;
      in.stream_bytes = snap_->stream->bytes;
    }
    totals = snap_->db_totals;
    in.db_read_s = snap_->db_read_s;
    dead = snap_->dead_letters;
    for (const auto& p : snap_->processes) {
      in.processes.push_back(DashboardProcess{p.process, p.workers, p.states, p.error, p.rows_committed, p.age_s});
    }
  }
  // Configured entities first (in their order), then any other entity the
  // shared counters know (committed by another instance's workers).
  for (const auto& e : config_.entities) {
    DashboardEntityInput x;
    x.name = e.name;
    const EntityCounts& c = *entity_counts_.at(e.name);
    x.accepted = c.accepted.load(std::memory_order_relaxed);
    x.rejected = c.rejected.load(std::memory_order_relaxed);
    x.table = e.TableName();
    for (const Entity* d : DerivedEntities(config_.entities, e)) x.derived.emplace_back(d->TableName(), 0);
    in.entities.push_back(std::move(x));
  }
  if (totals) {
    in.committed_known = true;
    in.committed = totals->rows_committed;
    in.dead = totals->rows_dead + totals->chunks_dead;
    for (const auto& [entity_name, t] : totals->by_entity) {
      const std::string& name = entity_name;  // (a structured binding cannot be captured before C++20 in clang 14)
      auto it = std::find_if(in.entities.begin(), in.entities.end(), [&](const auto& x) { return x.name == name; });
      if (it == in.entities.end()) {
        DashboardEntityInput x;
        x.name = name;
        in.entities.push_back(std::move(x));
        it = std::prev(in.entities.end());
      }
      it->committed = t.rows_committed;
      it->dead = t.rows_dead + t.chunks_dead;
      for (const auto& [table, rows] : t.derived_rows) {
        auto d =
            std::find_if(it->derived.begin(), it->derived.end(), [&n = table](const auto& x) { return x.first == n; });
        if (d == it->derived.end()) {
          it->derived.emplace_back(table, rows);
        } else {
          d->second = rows;
        }
      }
    }
  }
  for (const auto& [st, n] : workers_.StateCounts()) in.worker_states.emplace_back(WorkerStateName(st), n);
  for (int i = 0; i < workers_.size(); ++i) {
    const IngestWorker& w = workers_.worker(i);
    const WorkerState st = w.state();
    in.workers.push_back(DashboardWorker{"worker-" + std::to_string(i), std::string(WorkerStateName(st)),
                                         st == WorkerState::kBackingOff ? w.last_error() : std::string()});
  }
  in.api_latency.bounds = api_latency_.bounds();
  in.api_latency.cumulative = api_latency_.CumulativeCounts();
  for (auto& d : dead) {
    // The id /ingest/status knows: the batch (a message's chunk is its batch).
    in.dead_letters.push_back(DashboardEvent{std::move(d.failed_at), d.batch_id.empty() ? d.msg_id : d.batch_id,
                                             std::move(d.entity), d.line, std::move(d.error)});
  }
  in.rejects = rejects_.Newest();
  return in;
}

void IngestService::HandleMetrics(http::Request&&, http::Responder respond) {
  {
    std::lock_guard<std::mutex> lock(snap_mu_);
    if (snap_->lag) {
      metrics_.Gauge("nomnom_jetstream_consumer_pending", "Messages not yet delivered to a worker")
          .Set(static_cast<double>(snap_->lag->num_pending));
      metrics_.Gauge("nomnom_jetstream_consumer_ack_pending", "Messages delivered, not yet acknowledged")
          .Set(static_cast<double>(snap_->lag->num_ack_pending));
    }
    metrics_.Gauge("nomnom_database_up", "1 while PostgreSQL answered the last health check").Set(snap_->db_ok ? 1 : 0);
  }
  metrics_.Gauge("nomnom_up_seconds", "Seconds since this process started")
      .Set(std::chrono::duration<double>(Clock::now() - started_).count());
  metrics_.Gauge("nomnom_ready", "1 while ready to accept ingest").Set(NotReadyReason().empty() ? 1 : 0);
  workers_.ExportMetrics();
  http::Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.Render();
  respond(std::move(r));
}

}  // namespace nomnom
