#include "daemon/ingest_service.h"

#include <simdjson.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "core/ingest_format.h"
#include "core/ndjson_reader.h"
#include "core/row_encoder.h"

namespace nomnom {

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// Invalid UTF-8 in a string (from a client's query, header or body) is
// replaced rather than thrown about: an answer is always valid JSON.
http::Response Json(int status, const json& j) {
  http::Response r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

http::Response Error(int status, const std::string& message) {
  json j;
  j["error"] = message;
  return Json(status, j);
}

std::string IsoNow() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// One RowEncoder per io thread and entity: they own simdjson parsers.
RowEncoder& EncoderFor(const Entity& e) {
  thread_local std::map<const Entity*, std::unique_ptr<RowEncoder>> encoders;
  auto& slot = encoders[&e];
  if (!slot) slot = std::make_unique<RowEncoder>(e, RowEncoderOptions{});
  return *slot;
}

std::string_view TrimLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  return line;
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

struct IngestService::BatchState {
  http::Responder respond;
  std::string batch_id;
  json response;
  std::atomic<int> remaining{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string error;  // guarded by mu
  Clock::time_point started;
};

IngestService::IngestService(DaemonConfig config, JetStreamClient& js, MetricsRegistry& metrics)
    : config_(std::move(config)),
      js_(js),
      metrics_(metrics),
      messages_accepted_(metrics.Counter("nomnom_api_messages_accepted_total", "Messages accepted by /ingest/message")),
      messages_rejected_(metrics.Counter("nomnom_api_messages_rejected_total", "Messages rejected by /ingest/message")),
      batches_accepted_(metrics.Counter("nomnom_api_batches_accepted_total", "Batches accepted by /ingest/batch")),
      rows_accepted_(metrics.Counter("nomnom_api_rows_accepted_total", "Rows accepted (stored in JetStream)")),
      rows_rejected_(metrics.Counter("nomnom_api_rows_rejected_total", "Rows rejected as invalid by the API")),
      chunks_published_(
          metrics.Counter("nomnom_jetstream_chunks_published_total", "Chunk messages acknowledged by JetStream")),
      publish_errors_(metrics.Counter("nomnom_jetstream_publish_errors_total", "Chunk publishes that failed")),
      duplicates_(metrics.Counter("nomnom_api_duplicates_total", "Idempotency-Key messages JetStream already had")),
      publish_ack_seconds_(metrics.Histogram("nomnom_jetstream_publish_ack_seconds",
                                             "Time from handing a chunk to JetStream to its acknowledgement")) {}

IngestService::~IngestService() { Shutdown(5000); }

void IngestService::Register(http::Server& server) {
  auto bind = [this](void (IngestService::*fn)(http::Request&&, http::Responder)) {
    return
        [this, fn](http::Request&& req, http::Responder respond) { (this->*fn)(std::move(req), std::move(respond)); };
  };
  server.Route("POST", "/ingest/message", bind(&IngestService::HandleMessage));
  server.Route("POST", "/ingest/batch", bind(&IngestService::HandleBatch));
  server.Route("GET", "/ingest/status/{id}", bind(&IngestService::HandleStatus));
  server.Route("GET", "/health", bind(&IngestService::HandleHealth));
  server.Route("GET", "/ready", bind(&IngestService::HandleReady));
  server.Route("GET", "/stats", bind(&IngestService::HandleStats));
  server.Route("GET", "/metrics", bind(&IngestService::HandleMetrics));
  server.OnRequestDone([this](std::string_view method, std::string_view route, int status, double seconds) {
    // Called on the io threads for every request: each thread remembers the
    // series it has used, so that a request costs no label rendering and no
    // registry lookup under its lock. The serial tells this service's entries
    // from those of an earlier one (tests run several in one process).
    struct Series {
      uint64_t owner;
      std::string method, route;
      int status;
      MetricHistogram* latency;
      MetricCounter* requests;
    };
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
    if (cache.size() < 256) cache.push_back(std::move(c));  // bounded: methods and statuses come from clients
  });
}

void IngestService::Start() {
  publisher_ = std::thread([this] { PublisherMain(); });
  for (int i = 0; i < 2; ++i) task_threads_.emplace_back([this] { TaskMain(); });
  sampler_ = std::thread([this] { SamplerMain(); });
  for (int i = 0; i < config_.workers; ++i) {
    WorkerOptions wo = config_.worker;
    wo.conninfo = config_.database_url;
    wo.worker_name = "worker-" + std::to_string(i);
    workers_.push_back(std::make_unique<IngestWorker>(js_, config_.entities, wo, &metrics_));
    worker_threads_.emplace_back([w = workers_.back().get()] {
      if (Status s = w->Run(); !s.ok()) std::fprintf(stderr, "nomnomd: worker stopped: %s\n", s.message().c_str());
    });
  }
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> names;
    for (const auto& [name, _] : open_) names.push_back(name);
    for (const auto& n : names) SealLocked(n);
    stopping_.store(true);
  }
  cv_.notify_all();
  if (publisher_.joinable()) publisher_.join();
  if (Status s = js_.Drain(timeout_ms); !s.ok()) std::fprintf(stderr, "nomnomd: %s\n", s.message().c_str());
  for (auto& w : workers_) w->Stop();
  for (auto& t : worker_threads_) t.join();
  worker_threads_.clear();
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    tasks_.emplace_back(nullptr);  // one stop marker per task thread
    tasks_.emplace_back(nullptr);
  }
  task_cv_.notify_all();
  for (auto& t : task_threads_) t.join();
  task_threads_.clear();
  if (sampler_.joinable()) sampler_.join();
}

// ---- publishing -------------------------------------------------------------

OutgoingMessage IngestService::MakeChunk(const Entity& e, const std::string& batch_id, uint32_t index, uint32_t count,
                                         uint32_t rows, std::string body) const {
  OutgoingMessage m;
  m.subject = js_.EntitySubject(e.name);
  m.msg_id = ChunkId(batch_id, index);
  m.headers = {{std::string(kHeaderEntity), e.name},
               {std::string(kHeaderBatch), batch_id},
               {std::string(kHeaderChunk), FormatChunkHeader(index, count)},
               {std::string(kHeaderRows), std::to_string(rows)}};
  m.body = std::move(body);
  return m;
}

void IngestService::Enqueue(QueuedPublish p) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued_bytes_ += p.msg.body.size();
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

void IngestService::SealLocked(const std::string& entity) {
  auto it = open_.find(entity);
  if (it == open_.end()) return;
  OpenChunk chunk = std::move(it->second);
  open_.erase(it);
  const Entity* e = FindEntity(config_.entities, entity);
  QueuedPublish p;
  p.msg = MakeChunk(*e, chunk.batch_id, 0, 1, chunk.rows, std::move(chunk.body));
  const auto handed = Clock::now();
  auto waiters = std::make_shared<std::vector<Waiter>>(std::move(chunk.waiters));
  const std::string batch_id = chunk.batch_id;
  p.done = [this, waiters, handed, batch_id](const PublishResult& r) {
    publish_ack_seconds_.Observe(std::chrono::duration<double>(Clock::now() - handed).count());
    if (!r.status.ok()) {
      publish_errors_.Inc();
      for (auto& w : *waiters) {
        w.respond(Error(503, "JetStream did not store the message: " + r.status.message()));
      }
      return;
    }
    chunks_published_.Inc();
    RememberPending(batch_id, static_cast<uint32_t>(waiters->size()), 1);
    messages_accepted_.Inc(waiters->size());
    rows_accepted_.Inc(waiters->size());
    // The same body as Json() would render, without building a json object
    // per message: the id (a UUID and a number) and the timestamp need no
    // escaping.
    const std::string ts = IsoNow();
    for (auto& w : *waiters) {
      http::Response resp;
      resp.status = 202;
      resp.body.reserve(128);
      resp.body += R"({"message_id":")";
      AppendMessageId(&resp.body, batch_id, w.row);
      resp.body += R"(","status":"accepted","timestamp":")";
      resp.body += ts;
      resp.body += R"("})";
      w.respond(std::move(resp));
    }
  };
  queued_bytes_ += p.msg.body.size();
  queue_.push_back(std::move(p));
}

void IngestService::PublisherMain() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Seal chunks whose linger time is over.
    const auto now = Clock::now();
    auto next_deadline = Clock::time_point::max();
    std::vector<std::string> due;
    for (const auto& [name, chunk] : open_) {
      if (chunk.deadline <= now) {
        due.push_back(name);
      } else {
        next_deadline = std::min(next_deadline, chunk.deadline);
      }
    }
    for (const auto& n : due) SealLocked(n);
    if (!queue_.empty()) {
      QueuedPublish p = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= p.msg.body.size();
      lock.unlock();
      // May block while too many publishes are in flight: back-pressure.
      js_.PublishAsync(std::move(p.msg), std::move(p.done));
      lock.lock();
      continue;
    }
    if (stopping_.load() && open_.empty()) return;
    if (next_deadline == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next_deadline);
    }
  }
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
  std::string ct = req.header("Content-Type");
  if (auto semi = ct.find(';'); semi != std::string::npos) ct.resize(semi);
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  for (auto& c : ct) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool ok_type = ct == "application/json" ||
                       (batch && (ct == "application/x-ndjson" || ct == "text/plain" || ct == "application/ndjson"));
  if (!ok_type) {
    respond(Error(415, "unsupported Content-Type '" + ct + "'; use " +
                           (batch ? "application/x-ndjson, application/json or text/plain" : "application/json")));
    return nullptr;
  }
  std::string name = config_.default_entity;
  if (auto it = req.query.find("entity"); it != req.query.end()) name = it->second;
  const Entity* e = FindEntity(config_.entities, name);
  if (e == nullptr) {
    respond(Error(404, "unknown entity '" + name + "'"));
    return nullptr;
  }
  bool overloaded;
  {
    std::lock_guard<std::mutex> lock(mu_);
    overloaded = queued_bytes_ > config_.max_queued_publish_bytes;
  }
  if (overloaded) {
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
  // Validate in place (simdjson needs readable padding after the text).
  // A per-thread copy with the padding: appending it to the body itself
  // would reallocate the body on every request.
  thread_local std::string body;
  const size_t size = req.body.size();
  if (body.capacity() > (1u << 20) && size < (64u << 10)) std::string().swap(body);  // do not keep a big one
  body.assign(req.body);
  body.append(kChunkPadding, ' ');
  std::string_view text(body.data(), size);
  thread_local ByteBuffer scratch;  // the encoded tuple is not kept: validation only
  scratch.clear();
  std::string error;
  if (!EncoderFor(*e).Encode(text, body.size(), &scratch, nullptr, &error)) {
    messages_rejected_.Inc();
    rows_rejected_.Inc();
    respond(Error(400, error));
    return;
  }
  // A chunk body holds one row per line: minify a multi-line document.
  std::string minified;
  std::string_view line;  // without its newline
  if (std::memchr(text.data(), '\n', size) != nullptr || std::memchr(text.data(), '\r', size) != nullptr) {
    minified.resize(size + simdjson::SIMDJSON_PADDING);
    size_t out_len = 0;
    if (simdjson::minify(text.data(), size, minified.data(), out_len) != simdjson::SUCCESS) {
      respond(Error(400, "malformed JSON"));
      return;
    }
    minified.resize(out_len);
    if (minified.find_first_of("\r\n") != std::string::npos) {
      messages_rejected_.Inc();
      respond(Error(400, "a string contains a raw line break (JSON requires \\n)"));
      return;
    }
    line = minified;
  } else {
    line = TrimLine(text);
  }

  const std::string key = req.header("Idempotency-Key");
  if (!key.empty()) {
    if (key.size() > 256) {
      respond(Error(400, "Idempotency-Key is longer than 256 characters"));
      return;
    }
    // A chunk of its own whose id derives from the key: JetStream's duplicate
    // window and the workers' ledger keep one copy.
    const std::string batch_id = NameUuid(e->name + "\n" + key);
    QueuedPublish p;
    p.msg = MakeChunk(*e, batch_id, 0, 1, 1, std::string(line) + "\n");
    const auto handed = Clock::now();
    p.done = [this, respond, batch_id, handed](const PublishResult& r) {
      publish_ack_seconds_.Observe(std::chrono::duration<double>(Clock::now() - handed).count());
      if (!r.status.ok()) {
        publish_errors_.Inc();
        respond(Error(503, "JetStream did not store the message: " + r.status.message()));
        return;
      }
      json j;
      j["message_id"] = MessageId(batch_id, 0);
      j["status"] = r.duplicate ? "duplicate" : "accepted";
      j["timestamp"] = IsoNow();
      if (r.duplicate) {
        duplicates_.Inc();
      } else {
        chunks_published_.Inc();
        messages_accepted_.Inc();
        rows_accepted_.Inc();
        RememberPending(batch_id, 1, 1);
      }
      respond(Json(202, j));
    };
    Enqueue(std::move(p));
    return;
  }

  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = open_.try_emplace(e->name);
    OpenChunk& chunk = it->second;
    if (inserted) {
      chunk.batch_id = NewUuid();
      chunk.deadline = Clock::now() + std::chrono::milliseconds(config_.linger_ms);
      notify = true;
    }
    chunk.body += line;
    chunk.body += '\n';
    chunk.waiters.push_back(Waiter{std::move(respond), chunk.rows});
    ++chunk.rows;
    if (chunk.rows >= config_.chunk_max_rows || chunk.body.size() >= config_.chunk_max_bytes) {
      SealLocked(e->name);
      notify = true;
    }
  }
  if (notify) cv_.notify_one();
}

void IngestService::HandleBatch(http::Request&& req, http::Responder respond) {
  const Entity* e = CheckIngest(req, respond, true);
  if (e == nullptr) return;
  std::string& body = req.body;
  const size_t size = body.size();
  body.append(kChunkPadding, ' ');
  RowEncoder& encoder = EncoderFor(*e);
  ByteBuffer scratch;
  std::string error;
  std::vector<std::string> chunk_bodies(1);
  std::vector<uint32_t> chunk_rows(1, 0);
  json errors = json::array();
  uint64_t accepted = 0, rejected = 0, line_no = 0;
  const char* p = body.data();
  const char* end = p + size;
  size_t skip = 0;
  if (size >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) skip = 3;  // UTF-8 BOM
  p += skip;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (nl == nullptr) nl = end;
    std::string_view raw(p, static_cast<size_t>(nl - p));
    const size_t readable = static_cast<size_t>(body.data() + body.size() - p);
    p = nl + 1;
    ++line_no;
    if (raw.empty() || IsBlank(raw)) continue;
    scratch.clear();
    if (!encoder.Encode(raw, readable, &scratch, nullptr, &error)) {
      ++rejected;
      if (errors.size() < config_.max_errors_reported) errors.push_back({{"line", line_no}, {"error", error}});
      continue;
    }
    ++accepted;
    std::string_view line = TrimLine(raw);
    if (chunk_rows.back() >= config_.chunk_max_rows ||
        (chunk_rows.back() > 0 && chunk_bodies.back().size() + line.size() + 1 > config_.chunk_max_bytes)) {
      chunk_bodies.emplace_back();
      chunk_rows.push_back(0);
    }
    chunk_bodies.back().append(line);
    chunk_bodies.back().push_back('\n');
    ++chunk_rows.back();
  }
  rows_rejected_.Inc(rejected);
  if (accepted == 0) {
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
  state->batch_id = NewUuid();
  state->started = Clock::now();
  state->response["batch_id"] = state->batch_id;
  state->response["status"] = rejected == 0 ? "accepted" : "partial";
  state->response["accepted"] = accepted;
  state->response["rejected"] = rejected;
  state->response["errors"] = std::move(errors);
  state->response["errors_truncated"] = rejected > state->response["errors"].size();
  state->response["max_errors_reported"] = config_.max_errors_reported;
  const auto count = static_cast<uint32_t>(chunk_bodies.size());
  state->remaining.store(static_cast<int>(count));
  for (uint32_t k = 0; k < count; ++k) {
    QueuedPublish qp;
    qp.msg = MakeChunk(*e, state->batch_id, k, count, chunk_rows[k], std::move(chunk_bodies[k]));
    const auto handed = Clock::now();
    qp.done = [this, state, handed, accepted, count](const PublishResult& r) {
      publish_ack_seconds_.Observe(std::chrono::duration<double>(Clock::now() - handed).count());
      if (!r.status.ok()) {
        publish_errors_.Inc();
        std::lock_guard<std::mutex> lock(state->mu);
        if (!state->failed.exchange(true)) state->error = r.status.message();
      } else {
        chunks_published_.Inc();
      }
      if (state->remaining.fetch_sub(1) != 1) return;
      if (state->failed.load()) {
        // Some chunks may be stored: the status endpoint tells which rows
        // arrive; the client should retry the batch (Nats-Msg-Id dedups chunks
        // only within this batch id, so a retry is a new batch).
        std::lock_guard<std::mutex> lock(state->mu);
        json j;
        j["error"] = "JetStream did not store the whole batch: " + state->error;
        j["batch_id"] = state->batch_id;
        state->respond(Json(503, j));
        return;
      }
      batches_accepted_.Inc();
      rows_accepted_.Inc(accepted);
      RememberPending(state->batch_id, static_cast<uint32_t>(accepted), count);
      state->respond(Json(202, state->response));
    };
    Enqueue(std::move(qp));
  }
}

// ---- status, health, stats ------------------------------------------------------

void IngestService::RememberPending(const std::string& batch_id, uint32_t rows, uint32_t chunks) {
  constexpr size_t kMaxRemembered = 1000000;
  std::lock_guard<std::mutex> lock(pending_mu_);
  if (pending_.emplace(batch_id, PendingBatch{rows, chunks}).second) pending_order_.push_back(batch_id);
  while (pending_order_.size() > kMaxRemembered) {
    pending_.erase(pending_order_.front());
    pending_order_.pop_front();
  }
}

bool IngestService::IsPending(const StatusKey& key) {
  std::lock_guard<std::mutex> lock(pending_mu_);
  auto it = pending_.find(key.batch_id);
  if (it == pending_.end()) return false;
  // A message id names row i of a one-chunk batch.
  return key.kind == StatusKey::Kind::kBatch || (it->second.chunks == 1 && key.row < it->second.rows);
}

void IngestService::RunBlocking(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    tasks_.push_back(std::move(task));
  }
  task_cv_.notify_one();
}

void IngestService::TaskMain() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(task_mu_);
      task_cv_.wait(lock, [this] { return !tasks_.empty(); });
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    if (!task) return;
    try {
      task();
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "nomnomd: task failed: %s\n", ex.what());
    }
  }
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
  auto c = PgConnection::Connect(config_.database_url, "nomnomd");
  if (!c.ok()) return nullptr;
  // Look-ups must answer quickly or not at all.
  (*c)->TryExec("SET statement_timeout = '5s'");
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
    respond(Error(404, "unknown id '" + id + "'"));
    return;
  }
  RunBlocking([this, id, key = *key, respond = std::move(respond)] {
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
        if (!IsPending(key)) {
          respond(Error(404, "unknown id '" + id + "'"));
          return;
        }
        j["status"] = "pending";
        break;
    }
    respond(Json(200, j));
  });
}

void IngestService::HandleHealth(http::Request&&, http::Responder respond) {
  RunBlocking([this, respond = std::move(respond)] {
    json j;
    auto conn = TakeConnection();
    bool db_ok = false;
    if (conn) {
      db_ok = !conn->TryExec("SELECT 1");
      ReturnConnection(std::move(conn));
    }
    const bool nats_ok = js_.IsConnected();
    j["status"] = db_ok && nats_ok ? "healthy" : "unhealthy";
    j["database"] = db_ok ? "connected" : "unreachable";
    j["nats"] = nats_ok ? "connected" : "unreachable";
    json names = json::array();
    for (const auto& e : config_.entities) names.push_back(e.name);
    j["entities"] = names;
    j["version"] = NOMNOM_VERSION;
    respond(Json(db_ok && nats_ok ? 200 : 503, j));
  });
}

void IngestService::HandleReady(http::Request&&, http::Responder respond) {
  RunBlocking([this, respond = std::move(respond)] {
    json j;
    std::string why;
    if (draining_.load()) {
      why = "draining";
    } else if (!ready_.load()) {
      why = "starting";
    } else if (!js_.IsConnected()) {
      why = "NATS disconnected";
    } else if (!js_.StreamExists()) {
      why = "stream " + js_.config().stream + " missing";
    }
    j["status"] = why.empty() ? "ready" : "not ready";
    if (!why.empty()) j["reason"] = why;
    respond(Json(why.empty() ? 200 : 503, j));
  });
}

void IngestService::SamplerMain() {
  while (!stopping_.load()) {
    uint64_t committed = 0;
    for (const auto& w : workers_) committed += w->counters().rows_committed.load();
    const double t = std::chrono::duration<double>(Clock::now() - started_).count();
    {
      std::lock_guard<std::mutex> lock(sample_mu_);
      samples_.emplace_back(t, rows_accepted_.Value(), committed);
      while (samples_.size() > 61) samples_.pop_front();
    }
    for (int i = 0; i < 10 && !stopping_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void IngestService::HandleStats(http::Request&&, http::Responder respond) {
  RunBlocking([this, respond = std::move(respond)] {
    json j;
    j["version"] = NOMNOM_VERSION;
    j["uptime_seconds"] = std::chrono::duration<double>(Clock::now() - started_).count();
    json api;
    api["messages_accepted"] = messages_accepted_.Value();
    api["messages_rejected"] = messages_rejected_.Value();
    api["batches_accepted"] = batches_accepted_.Value();
    api["rows_accepted"] = rows_accepted_.Value();
    api["rows_rejected"] = rows_rejected_.Value();
    api["chunks_published"] = chunks_published_.Value();
    api["publish_errors"] = publish_errors_.Value();
    api["duplicates"] = duplicates_.Value();
    j["api"] = api;
    json w;
    uint64_t committed = 0, msgs = 0, dead_rows = 0, dead_msgs = 0, dups = 0;
    for (const auto& wk : workers_) {
      committed += wk->counters().rows_committed.load();
      msgs += wk->counters().messages_committed.load();
      dead_rows += wk->counters().rows_dead.load();
      dead_msgs += wk->counters().messages_dead.load();
      dups += wk->counters().duplicates_skipped.load();
    }
    w["count"] = workers_.size();
    w["messages_committed"] = msgs;
    w["rows_committed"] = committed;
    w["rows_dead"] = dead_rows;
    w["messages_dead"] = dead_msgs;
    w["redeliveries_skipped"] = dups;
    j["workers"] = w;
    json js;
    js["connected"] = js_.IsConnected();
    js["stream"] = js_.config().stream;
    js["consumer"] = js_.config().consumer;
    if (auto lag = js_.Lag(); lag.ok()) {
      js["num_pending"] = lag->num_pending;
      js["num_ack_pending"] = lag->num_ack_pending;
      js["num_redelivered"] = lag->num_redelivered;
      js["consumer_lag"] = lag->Backlog();
    }
    if (auto ss = js_.MainStreamStats(); ss.ok()) {
      js["stream_messages"] = ss->messages;
      js["stream_bytes"] = ss->bytes;
    }
    j["jetstream"] = js;
    // The database's totals cover every worker, not just this process.
    if (auto conn = TakeConnection()) {
      PgRows rows;
      if (!conn->TryExec("SELECT (SELECT coalesce(sum(rows_committed), 0) FROM nomnom_ledger), "
                         "(SELECT count(*) FROM nomnom_ledger WHERE NOT dead), "
                         "(SELECT count(*) FROM nomnom_dead_letters)",
                         &rows)) {
        json db;
        db["rows_committed"] = std::stoull(rows.rows.at(0).at(0).value_or("0"));
        db["chunks_committed"] = std::stoull(rows.rows.at(0).at(1).value_or("0"));
        db["dead_letters"] = std::stoull(rows.rows.at(0).at(2).value_or("0"));
        j["database"] = db;
        j["total_messages_processed"] = db["chunks_committed"];  // the seed's field
      }
      ReturnConnection(std::move(conn));
    }
    json rates;
    {
      std::lock_guard<std::mutex> lock(sample_mu_);
      auto rate = [&](size_t window, int which) -> double {
        if (samples_.size() < 2) return 0;
        const auto& last = samples_.back();
        const auto& first = samples_.size() > window ? samples_[samples_.size() - 1 - window] : samples_.front();
        const double dt = std::get<0>(last) - std::get<0>(first);
        if (dt <= 0) return 0;
        const double dv = which == 1 ? static_cast<double>(std::get<1>(last) - std::get<1>(first))
                                     : static_cast<double>(std::get<2>(last) - std::get<2>(first));
        return dv / dt;
      };
      rates["rows_accepted_per_second_10s"] = rate(10, 1);
      rates["rows_accepted_per_second_60s"] = rate(60, 1);
      rates["rows_committed_per_second_10s"] = rate(10, 2);
      rates["rows_committed_per_second_60s"] = rate(60, 2);
    }
    j["rates"] = rates;
    respond(Json(200, j));
  });
}

std::string IngestService::WorkerMetricsText() {
  uint64_t v[6] = {0, 0, 0, 0, 0, 0};
  for (const auto& w : workers_) {
    const auto& c = w->counters();
    v[0] += c.messages_committed.load();
    v[1] += c.rows_committed.load();
    v[2] += c.rows_dead.load();
    v[3] += c.messages_dead.load();
    v[4] += c.duplicates_skipped.load();
    v[5] += c.transient_errors.load();
  }
  static constexpr const char* kNames[6][2] = {
      {"nomnom_worker_messages_committed_total", "Chunk messages committed by this process's workers"},
      {"nomnom_worker_rows_committed_total", "Rows committed by this process's workers"},
      {"nomnom_worker_rows_dead_total", "Rows sent to the dead-letter queue by this process's workers"},
      {"nomnom_worker_messages_dead_total", "Whole chunks sent to the dead-letter queue"},
      {"nomnom_worker_redeliveries_skipped_total", "Redelivered chunks found in the ledger and acked"},
      {"nomnom_worker_retries_total", "Batch commits retried after a transient failure"}};
  std::string out;
  for (int i = 0; i < 6; ++i) {
    out += std::string("# HELP ") + kNames[i][0] + " " + kNames[i][1] + "\n# TYPE " + kNames[i][0] + " counter\n" +
           kNames[i][0] + " " + std::to_string(v[i]) + "\n";
  }
  return out;
}

void IngestService::HandleMetrics(http::Request&&, http::Responder respond) {
  RunBlocking([this, respond = std::move(respond)] {
    if (auto lag = js_.Lag(); lag.ok()) {
      metrics_.Gauge("nomnom_jetstream_consumer_pending", "Messages not yet delivered to a worker")
          .Set(static_cast<double>(lag->num_pending));
      metrics_.Gauge("nomnom_jetstream_consumer_ack_pending", "Messages delivered, not yet acknowledged")
          .Set(static_cast<double>(lag->num_ack_pending));
    }
    metrics_.Gauge("nomnom_up_seconds", "Seconds since this process started")
        .Set(std::chrono::duration<double>(Clock::now() - started_).count());
    metrics_.Gauge("nomnom_ready", "1 while ready to accept ingest").Set(ready_.load() && !draining_.load() ? 1 : 0);
    http::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_.Render() + WorkerMetricsText();
    respond(std::move(r));
  });
}

}  // namespace nomnom
