#include "daemon/ingest_service.h"

#include "core/base/log.h"
#include "core/format/pgcopy_chunk.h"
#include "core/worker/ledger.h"

namespace nomnom {

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
      connections_(config_.database_url, config_.lookup_timeout_ms),
      lookups_("status look-ups", config_.lookup_threads, config_.max_queued_lookups),
      health_("health checks", 1, 64),
      workers_(
          js, config_.entities,
          [&] {
            WorkerOptions wo = config_.worker;
            wo.conninfo = config_.database_url;
            wo.worker_name = "worker";
            wo.process_role = "nomnomd";
            return wo;
          }(),
          config_.workers, &metrics),
      messages_accepted_(metrics.Counter("nomnom_api_messages_accepted_total", "Messages accepted by /ingest/message")),
      messages_rejected_(metrics.Counter("nomnom_api_messages_rejected_total", "Messages rejected by /ingest/message")),
      batches_accepted_(metrics.Counter("nomnom_api_batches_accepted_total", "Batches accepted by /ingest/batch")),
      rows_accepted_(metrics.Counter("nomnom_api_rows_accepted_total", "Rows accepted (stored in JetStream)")),
      rows_rejected_(metrics.Counter("nomnom_api_rows_rejected_total", "Rows rejected as invalid by the API")),
      duplicates_(
          metrics.Counter("nomnom_api_duplicates_total", "Idempotency-Key requests whose data JetStream already had")),
      idempotent_(idempotency_, js, lookups_, duplicates_),
      monitor_(js, workers_, rows_accepted_, config_.database_url, connections_.Session(), started_) {
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
  monitor_.Start();
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
  monitor_.Stop();
}

void IngestService::HandleStatus(http::Request&& req, http::Responder respond) {
  AnswerStatus(req.query["id"], respond, connections_, lookups_, pending_);
}

}  // namespace nomnom
