// ServiceMonitor: the two threads that keep nomnomd's probes answerable at
// once, whatever NATS and PostgreSQL are doing:
//   * NATS, every second: whether the stream exists, the consumer's lag, the
//     stream's size, and a (time, rows accepted, rows committed) sample for
//     /stats' rates (the last 61 kept);
//   * PostgreSQL, twice a second: reachable (or why not), every worker's
//     totals from the shared counters table, the newest dead letters, the
//     worker processes' heartbeats.
// Probes, /stats, /metrics and the dashboard read the last readings through
// Read(). Thread-safe; Start() once, Stop() joins (idempotent).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/base/metrics.h"
#include "core/pg/pg_connection.h"
#include "core/queue/nats_client.h"
#include "core/worker/ledger.h"
#include "core/worker/worker_pool.h"

namespace nomnom {

// What the monitor threads saw last.
struct MonitorSnapshot {
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

class ServiceMonitor {
 public:
  // Everything referenced must outlive the monitor. `rows_accepted` is the
  // API's counter; `started` the service's start (the samples' origin).
  ServiceMonitor(JetStreamClient& js, const WorkerPool& workers, const MetricCounter& rows_accepted,
                 std::string database_url, PgSessionOptions session, std::chrono::steady_clock::time_point started)
      : js_(js),
        workers_(workers),
        rows_accepted_(rows_accepted),
        database_url_(std::move(database_url)),
        session_(std::move(session)),
        started_(started) {}
  ~ServiceMonitor() { Stop(); }

  void Start();
  // Wakes and joins both threads. Idempotent.
  void Stop();

  // Calls read(snapshot) under the snapshot's lock and returns what it
  // returns: keep it short, and do not call back into the monitor.
  template <class F>
  auto Read(F&& read) const {
    std::lock_guard<std::mutex> lock(mu_);
    return read(static_cast<const MonitorSnapshot&>(snap_));
  }

 private:
  void NatsMain();
  void PgMain();
  // One PostgreSQL reading into the snapshot; (re)connects `conn` as needed.
  void ReadPostgres(std::unique_ptr<PgConnection>& conn);
  void SleepUnlessStopping(int64_t ms);

  JetStreamClient& js_;
  const WorkerPool& workers_;
  const MetricCounter& rows_accepted_;
  const std::string database_url_;
  const PgSessionOptions session_;
  const std::chrono::steady_clock::time_point started_;

  mutable std::mutex mu_;
  MonitorSnapshot snap_;  // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;  // wakes the threads at Stop()
  std::thread nats_;
  std::thread pg_;
};

}  // namespace nomnom
