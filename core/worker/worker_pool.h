// WorkerPool: a number of IngestWorker threads draining one JetStream
// consumer into PostgreSQL; nomnomd's embedded workers and `nomnom worker`
// are both one WorkerPool.
//
// A worker whose Run() returns with an error (which it should not: workers
// retry on their own) is logged and started again after a backoff, so a pool
// never silently loses a consumer; only Stop() ends the threads.
//
// Heartbeat: while it has workers, the pool writes a row to nomnom_workers
// every two seconds (core/worker/ledger.h, WriteWorkerHeartbeat: "<host>:<pid>", its
// workers' states, last error and totals), so a dashboard of any nomnomd sees
// every worker process of the pipeline.
//
// Metrics: the summed counters are exported to the registry given (if any)
// as nomnom_worker_*_total counters by ExportMetrics(), which callers run
// before rendering /metrics.
//
// Thread-safety: Start, Stop, Join once each, from one thread; Totals and
// ExportMetrics from any thread. The JetStreamClient and MetricsRegistry must
// outlive the pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/base/metrics.h"
#include "core/format/schema.h"
#include "core/queue/nats_client.h"
#include "core/worker/ingest_worker.h"

namespace nomnom {

struct WorkerTotals {
  uint64_t messages_committed = 0;
  uint64_t rows_committed = 0;
  uint64_t rows_inserted = 0;
  uint64_t rows_dead = 0;
  uint64_t messages_dead = 0;
  uint64_t duplicates_skipped = 0;
  uint64_t transient_errors = 0;
  uint64_t fetches = 0;
  uint64_t last_commit_unix_us = 0;  // the latest of the workers' (WorkerCounters)
};

class WorkerPool {
 public:
  // threads >= 0 workers named "<options.worker_name>-<i>".
  WorkerPool(JetStreamClient& js, std::vector<Entity> entities, WorkerOptions options, int threads,
             MetricsRegistry* metrics = nullptr);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Ledger rows older than this are deleted (core/worker/ledger.h, PruneLedger) by a
  // janitor thread, once a minute; 0 (the default) keeps them. Call before Start.
  void SetLedgerRetention(int64_t ms) { ledger_retention_ms_ = ms; }

  // on_all_exited (optional) runs on the last worker thread to finish (after
  // Stop(), or when every worker returned by itself, e.g. idle_exit_ms).
  void Start(std::function<void()> on_all_exited = nullptr);
  // Each worker commits and acks the batch in hand, then returns.
  void Stop();
  void Join();

  int size() const { return static_cast<int>(workers_.size()); }
  WorkerTotals Totals() const;
  // How many workers are in each state (every state named, zeros included),
  // and the last error of a worker that is backing off ("" when none is).
  std::vector<std::pair<WorkerState, int>> StateCounts() const;
  std::string BackingOffError() const;
  // At least one worker fetches or commits (false with no workers).
  bool AnyWorking() const;
  const IngestWorker& worker(int i) const { return *workers_[static_cast<size_t>(i)]; }
  void ExportMetrics();

 private:
  void ThreadMain(IngestWorker& w, const std::string& name);
  void JanitorMain();
  void HeartbeatMain();

  JetStreamClient& js_;
  MetricsRegistry* metrics_;
  std::string conninfo_;
  std::string process_role_;  // the heartbeat's "<role>@<host>:<pid>"
  int64_t ledger_retention_ms_ = 0;
  std::thread janitor_;
  std::thread heartbeat_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;  // wakes the janitor on Stop()
  std::vector<std::unique_ptr<IngestWorker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int> running_{0};
  std::function<void()> on_all_exited_;
  std::mutex export_mu_;
  WorkerTotals exported_;  // guarded by export_mu_: what the registry has
};

}  // namespace nomnom
