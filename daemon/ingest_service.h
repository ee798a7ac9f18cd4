// IngestService: nomnomd's HTTP API on top of core.
//
//   POST /ingest/message   one JSON object -> validated, grouped with other
//                          messages into a chunk, published; 202 once
//                          JetStream acknowledged storing that chunk
//   POST /ingest/batch     NDJSON -> valid lines published in chunks, invalid
//                          ones reported; 202 once all its chunks are stored
//   GET  /ingest/status/{id}, /health, /ready, /stats, /metrics
//
// Threads: handlers run on the HTTP io threads and never block: validation is
// done there, publishing happens on the publisher thread (which owns the
// linger timer of open chunks and may block on JetStream's in-flight limit),
// and database look-ups (status, health, stats) run on a small blocking-task
// pool. Responders are called from whichever thread completes the work.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/ingest_format.h"
#include "core/ingest_worker.h"
#include "core/metrics.h"
#include "core/nats_client.h"
#include "core/pg_connection.h"
#include "core/schema.h"
#include "daemon/http_server.h"

namespace nomnom {

struct DaemonConfig {
  std::string database_url;
  std::vector<Entity> entities;
  std::string default_entity;                   // used when ?entity= is absent
  size_t chunk_max_rows = 1000;                 // rows per published chunk
  size_t chunk_max_bytes = 512 << 10;           // bytes per chunk (JetStream's default max payload is 1 MB)
  int linger_ms = 2;                            // how long /ingest/message rows wait for company
  size_t max_errors_reported = 100;             // per /ingest/batch response
  size_t max_queued_publish_bytes = 256 << 20;  // beyond this, ingest answers 503 (overloaded)
  int workers = 1;                              // embedded workers
  WorkerOptions worker;
};

class IngestService {
 public:
  IngestService(DaemonConfig config, JetStreamClient& js, MetricsRegistry& metrics);
  ~IngestService();

  // Adds every route to the server (call before server.Start()).
  void Register(http::Server& server);
  // Starts the publisher, the task pool and the embedded workers.
  void Start();
  // Readiness on/off; while draining, ingest answers 503.
  void SetReady(bool ready) { ready_.store(ready); }
  void BeginDrain();
  // After the HTTP server stopped: publishes what is left, waits for the acks,
  // stops the workers after their batch in hand. Idempotent.
  void Shutdown(int64_t timeout_ms);

 private:
  struct BatchState;
  struct Waiter {
    http::Responder respond;
    uint32_t row;  // the message id is "<chunk's batch id>.<row>"
  };
  struct OpenChunk {
    std::string batch_id;
    std::string body;
    uint32_t rows = 0;
    std::vector<Waiter> waiters;
    std::chrono::steady_clock::time_point deadline;
  };
  struct QueuedPublish {
    OutgoingMessage msg;
    std::function<void(const PublishResult&)> done;
  };

  void HandleMessage(http::Request&& req, http::Responder respond);
  void HandleBatch(http::Request&& req, http::Responder respond);
  void HandleStatus(http::Request&& req, http::Responder respond);
  void HandleHealth(http::Request&& req, http::Responder respond);
  void HandleReady(http::Request&& req, http::Responder respond);
  void HandleStats(http::Request&& req, http::Responder respond);
  void HandleMetrics(http::Request&& req, http::Responder respond);

  // Shared request checks; on failure responds and returns nullptr.
  const Entity* CheckIngest(const http::Request& req, const http::Responder& respond, bool batch);
  OutgoingMessage MakeChunk(const Entity& e, const std::string& batch_id, uint32_t index, uint32_t count, uint32_t rows,
                            std::string body) const;
  void Enqueue(QueuedPublish p);
  void SealLocked(const std::string& entity);  // open chunk -> publish queue; mu_ held
  void PublisherMain();
  void RunBlocking(std::function<void()> task);
  void TaskMain();
  void SamplerMain();
  void RememberPending(const std::string& batch_id, uint32_t rows, uint32_t chunks);
  bool IsPending(const StatusKey& key);
  std::unique_ptr<PgConnection> TakeConnection();
  void ReturnConnection(std::unique_ptr<PgConnection> conn);
  std::string WorkerMetricsText();

  DaemonConfig config_;
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
  std::atomic<bool> stopping_{false};

  // Open chunks and the publish queue.
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, OpenChunk> open_;  // by entity; guarded by mu_
  std::deque<QueuedPublish> queue_;        // guarded by mu_
  size_t queued_bytes_ = 0;                // guarded by mu_
  std::thread publisher_;

  // Blocking tasks (database look-ups).
  std::mutex task_mu_;
  std::condition_variable task_cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by task_mu_
  std::vector<std::thread> task_threads_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<PgConnection>> pool_;  // guarded by pool_mu_

  // Ids accepted by this process and not yet known to be committed.
  std::mutex pending_mu_;
  struct PendingBatch {
    uint32_t rows;
    uint32_t chunks;
  };
  std::unordered_map<std::string, PendingBatch> pending_;  // guarded by pending_mu_
  std::deque<std::string> pending_order_;                  // guarded by pending_mu_

  // Embedded workers.
  std::vector<std::unique_ptr<IngestWorker>> workers_;
  std::vector<std::thread> worker_threads_;

  // Rates: (seconds since start, rows accepted, rows committed) once a second.
  std::thread sampler_;
  std::mutex sample_mu_;
  std::deque<std::tuple<double, uint64_t, uint64_t>> samples_;  // guarded by sample_mu_

  // Counters (also exported as metrics).
  MetricCounter& messages_accepted_;
  MetricCounter& messages_rejected_;
  MetricCounter& batches_accepted_;
  MetricCounter& rows_accepted_;
  MetricCounter& rows_rejected_;
  MetricCounter& chunks_published_;
  MetricCounter& publish_errors_;
  MetricCounter& duplicates_;
  MetricHistogram& publish_ack_seconds_;
  std::mutex shutdown_mu_;
  bool shut_down_ = false;  // guarded by shutdown_mu_
};

}  // namespace nomnom
