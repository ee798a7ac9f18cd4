// IngestService: nomnomd's HTTP API, a thin layer over the units that do the
// work. It owns them, registers the routes, and its handlers live in one
// file per part:
//   daemon/ingest_api.cpp      /ingest/message, /ingest/batch (with the named
//                              steps of daemon/ingest_api.h)
//   daemon/ingest_service.cpp  construction, routes, start and shutdown,
//                              /ingest/status/{id} (daemon/status_lookup.h)
//   daemon/ingest_probes.cpp   /live, /ready, /health, /stats, /metrics and
//                              the dashboard's inputs, from ServiceMonitor's
//                              readings (daemon/service_monitor.h)
//
//
//   POST /ingest/message   one JSON object -> validated -> ChunkPublisher
//                          (shares a chunk with concurrent messages); 202 once
//                          JetStream acknowledged storing that chunk
//   POST /ingest/batch     NDJSON -> valid lines in chunks (ChunkWriter) ->
//                          ChunkPublisher; invalid lines reported; 202 once
//                          every chunk is stored, else 503 naming the stored lines
//   GET  /ingest/status/{id}  ledger look-up on the BlockingTaskPool, or
//                          "pending" from PendingIds
//   GET  /live, /ready, /health, /stats, /metrics: answered at once from the
//                          state that two monitor threads refresh (NATS every
//                          second: stream, consumer lag; PostgreSQL twice a
//                          second: reachable, totals, the last dead letters,
//                          worker heartbeats), so probes never wait on each other or on a
//                          database that is away
//
// Embedded workers are a WorkerPool (core/worker/worker_pool.h).
//
// Threads: handlers run on the HTTP io threads and never block; publishing
// runs on the ChunkPublisher's thread and completions on cnats threads;
// look-ups on the task pool. Responders may be called from any of them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/base/metrics.h"
#include "core/format/schema.h"
#include "core/http/http_server.h"
#include "core/pg/pg_connection.h"
#include "core/queue/nats_client.h"
#include "core/worker/ingest_worker.h"
#include "core/worker/ledger.h"
#include "core/worker/worker_pool.h"
#include "daemon/chunk_publisher.h"
#include "daemon/dashboard_snapshot.h"
#include "daemon/idempotency_cache.h"
#include "daemon/ingest_api.h"
#include "daemon/pending_ids.h"
#include "daemon/service_monitor.h"
#include "daemon/status_lookup.h"
#include "daemon/task_pool.h"

namespace nomnom {

struct DaemonConfig {
  std::string database_url;
  std::vector<Entity> entities;
  std::string default_entity;  // used when ?entity= is absent
  // ?table= values accepted (as given to --allow-table, and schema.table) ->
  // the name of their entity in `entities` (core/pg/catalog_entity.h).
  std::map<std::string, std::string, std::less<>> allowed_tables;
  size_t chunk_max_rows = 1000;        // rows per published chunk
  size_t chunk_max_bytes = 512 << 10;  // body bytes per chunk (also capped by NATS max_payload)
  int linger_ms = 1;                   // how long /ingest/message rows wait for company (1: see bench/README.md §5)
  // /ingest/batch and /ingest/message rows of entities without derived
  // entities: published as their binary COPY tuples (pgcopy1, which workers
  // COPY without parsing again), or as NDJSON (for workers older than pgcopy1
  // during an upgrade). Idempotency-Key messages are always NDJSON.
  PublishFormat publish_format = PublishFormat::kPgCopy1;
  size_t max_errors_reported = 100;             // per /ingest/batch response
  size_t max_queued_publish_bytes = 256 << 20;  // beyond this, ingest answers 503 (overloaded)
  int64_t duplicate_window_ms = 120000;         // JetStream's; how long Idempotency-Keys are remembered here
  int lookup_threads = 2;                       // status look-ups
  size_t max_queued_lookups = 256;              // beyond this, status look-ups answer 503
  int64_t lookup_timeout_ms = 5000;             // statement timeout of look-ups and health checks
  int workers = 1;                              // embedded workers
  int64_t ledger_retention_ms = 0;              // the embedded workers prune older ledger rows (0: never)
  WorkerOptions worker;
};

class IngestService {
 public:
  IngestService(DaemonConfig config, JetStreamClient& js, MetricsRegistry& metrics);
  ~IngestService();

  // Adds every route to the server (call before server.Start()).
  void Register(http::Server& server);
  // Starts the publisher, the monitors and the embedded workers.
  void Start();
  // Readiness on/off; while draining, ingest answers 503.
  void SetReady(bool ready) { ready_.store(ready); }
  void BeginDrain();
  // After the HTTP server stopped: publishes what is left, waits for the acks,
  // stops the workers after their batch in hand. Idempotent.
  void Shutdown(int64_t timeout_ms);

  // What the dashboard shows (daemon/dashboard.h), read now: this process's
  // counters, the monitors' last readings (committed totals from the shared
  // counters table, the last dead letters), worker states, the API's latency
  // histogram. Does not block on I/O. Thread-safe.
  DashboardInputs CollectDashboardInputs() const;
  // GET /ingest/status/{id} (req.query["id"]); public for the dashboard's
  // /dashboard/status/{id}, which authorizes the request itself.
  void HandleStatus(http::Request&& req, http::Responder respond);

 private:
  void HandleMessage(http::Request&& req, http::Responder respond);
  void HandleBatch(http::Request&& req, http::Responder respond);
  void HandleLive(http::Request&& req, http::Responder respond);
  void HandleHealth(http::Request&& req, http::Responder respond);
  void HandleReady(http::Request&& req, http::Responder respond);
  void HandleStats(http::Request&& req, http::Responder respond);
  void HandleMetrics(http::Request&& req, http::Responder respond);
  // Rows accepted / rejected by this process's API, in total and per entity.
  void AddAccepted(std::string_view entity, uint64_t rows);
  void AddRejected(const Entity& e, uint64_t rows);
  void RespondStats(const http::Responder& respond, const std::optional<LedgerTotals>& fresh);

  // Shared request checks; on failure responds and returns nullptr.
  const Entity* CheckIngest(const http::Request& req, const http::Responder& respond, bool batch);
  // The steps of HandleMessage and HandleBatch (daemon/ingest_api.cpp).
  void PublishKeyedMessage(const Entity& e, IdempotentRequest idem, std::string_view line, http::Responder respond);
  void PublishBatch(const Entity& e, const std::shared_ptr<BatchReply>& reply, std::vector<ChunkBody>& chunks,
                    PublishFormat format);
  // The last chunk's completion: counts, remembers and answers.
  void FinishBatch(const Entity& e, BatchReply& reply);
  // Lists a few of a batch's rejects on the dashboard, with the batch's id when it has one.
  void ListRejects(const Entity& e, const nlohmann::ordered_json& errors, const std::string& batch_id);
  // Why the service is not ready ("" when it is).
  std::string NotReadyReason() const;

  DaemonConfig config_;
  // DerivedEntities of each of config_.entities, by index (made once: the
  // request path asks for every message).
  const std::vector<std::vector<const Entity*>> derived_;
  const std::vector<const Entity*>& Derived(const Entity& e) const {
    return derived_[static_cast<size_t>(&e - config_.entities.data())];
  }
  // SchemaFingerprint of each of config_.entities, by index.
  const std::vector<std::string> schemas_;
  const std::string& Schema(const Entity& e) const {
    return schemas_[static_cast<size_t>(&e - config_.entities.data())];
  }
  JetStreamClient& js_;
  MetricsRegistry& metrics_;
  // Unique to this instance, never reused: tags per-thread caches.
  const uint64_t serial_ = [] {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1);
  }();
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};

  ChunkPublisher publisher_;
  PendingIds pending_;
  IdempotencyCache idempotency_;
  LookupConnections connections_;  // look-ups', /health's and /stats' PostgreSQL connections
  BlockingTaskPool lookups_;
  BlockingTaskPool health_;  // /health's own database check, apart from look-ups
  WorkerPool workers_;

  // Counters (also exported as metrics).
  MetricCounter& messages_accepted_;
  MetricCounter& messages_rejected_;
  MetricCounter& batches_accepted_;
  MetricCounter& rows_accepted_;
  MetricCounter& rows_rejected_;
  MetricCounter& duplicates_;
  IdempotencyResolver idempotent_;
  ServiceMonitor monitor_;  // last, so that it stops before what it reads goes
  struct EntityCounts {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> rejected{0};
  };
  // One per configured entity, made in the constructor and never changed after.
  std::map<std::string, std::unique_ptr<EntityCounts>, std::less<>> entity_counts_;
  RecentEvents rejects_{20};  // the last rows the API refused
  // Every request's latency but the dashboard's own (its event streams last
  // for minutes), for the dashboard's request rate and percentiles.
  MetricHistogram api_latency_{LatencyBuckets()};
  std::mutex shutdown_mu_;
  bool shut_down_ = false;  // guarded by shutdown_mu_
};

}  // namespace nomnom
