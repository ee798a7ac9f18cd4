#include "core/worker/worker_pool.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "core/base/log.h"
#include "core/pg/pg_connection.h"
#include "core/worker/ledger.h"

namespace nomnom {

WorkerPool::WorkerPool(JetStreamClient& js, std::vector<Entity> entities, WorkerOptions options, int threads,
                       MetricsRegistry* metrics)
    : js_(js), metrics_(metrics), conninfo_(options.conninfo), process_role_(options.process_role) {
  for (int i = 0; i < threads; ++i) {
    WorkerOptions o = options;
    o.worker_name = options.worker_name + "-" + std::to_string(i);
    workers_.push_back(std::make_unique<IngestWorker>(js_, entities, o, metrics));
  }
}

WorkerPool::~WorkerPool() {
  Stop();
  Join();
}

void WorkerPool::Start(std::function<void()> on_all_exited) {
  on_all_exited_ = std::move(on_all_exited);
  running_.store(size());
  for (int i = 0; i < size(); ++i) {
    IngestWorker* w = workers_[static_cast<size_t>(i)].get();
    threads_.emplace_back([this, w, i] { ThreadMain(*w, "worker-" + std::to_string(i)); });
  }
  if (ledger_retention_ms_ > 0 && size() > 0) janitor_ = std::thread([this] { JanitorMain(); });
  if (size() > 0) heartbeat_ = std::thread([this] { HeartbeatMain(); });
}

void WorkerPool::HeartbeatMain() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
  const std::string process = process_role_ + "@" + host + ":" + std::to_string(getpid());
  std::unique_ptr<PgConnection> conn;
  bool warned = false;
  for (;;) {
    // A thread's top level: nothing may escape.
    try {
      WorkerHeartbeat hb;
      hb.process = process;
      hb.workers = size();
      for (const auto& [st, n] : StateCounts()) {
        if (n == 0) continue;
        if (!hb.states.empty()) hb.states += ", ";
        hb.states += std::string(WorkerStateName(st)) + " " + std::to_string(n);
      }
      hb.error = BackingOffError();
      const WorkerTotals t = Totals();
      hb.rows_committed = t.rows_committed;
      hb.rows_dead = t.rows_dead;
      if (!conn || !conn->IsOk()) {
        conn.reset();
        // Bounded like nomnomd's monitors: a lock, a server that does not
        // answer or a dead network costs seconds, not the heartbeat thread.
        PgSessionOptions bounds;
        bounds.statement_timeout_ms = 5000;
        bounds.lock_timeout_ms = 5000;
        bounds.keepalives_idle_s = 5;
        bounds.keepalives_interval_s = 2;
        bounds.keepalives_count = 2;
        bounds.tcp_user_timeout_ms = 5000;
        bounds.client_timeout_ms = 6000;  // a stopped server still acknowledges TCP
        auto c = PgConnection::Connect(conninfo_, "nomnom-heartbeat", bounds);
        if (c.ok()) conn = std::move(c).value();
      }
      if (conn) {
        if (Status s = WriteWorkerHeartbeat(*conn, hb); !s.ok() && !warned) {
          LogWarn("worker heartbeat: {}", s.message());
          warned = true;  // once: the workers report an unreachable database themselves
        } else if (s.ok()) {
          warned = false;
        }
      }
    } catch (const std::exception& e) {
      LogWarn("worker heartbeat: {}", e.what());
    }
    std::unique_lock<std::mutex> lock(stop_mu_);
    if (stop_cv_.wait_for(lock, std::chrono::seconds(2), [this] { return stop_.load(); })) return;
  }
}

void WorkerPool::JanitorMain() {
  std::unique_ptr<PgConnection> conn;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(stop_mu_);
      if (stop_cv_.wait_for(lock, std::chrono::seconds(60), [this] { return stop_.load(); })) return;
    }
    if (!conn || !conn->IsOk()) {
      // Bounded, so that a stopped server cannot hold up Stop().
      PgSessionOptions bounds;
      bounds.statement_timeout_ms = 20000;
      bounds.keepalives_idle_s = 5;
      bounds.client_timeout_ms = 25000;
      auto c = PgConnection::Connect(conninfo_, "nomnom-ledger-janitor", bounds);
      if (!c.ok()) continue;  // the workers report an unreachable database
      conn = std::move(c).value();
    }
    uint64_t total = 0;
    for (;;) {
      auto n = PruneLedger(*conn, ledger_retention_ms_, 10000);
      if (!n.ok()) {
        if (n.status().message().find("does not exist") == std::string::npos) {
          LogWarn("ledger pruning failed: {}", n.status().message());
        }
        break;
      }
      total += *n;
      if (*n < 10000 || stop_.load()) break;
    }
    if (total > 0) LogInfo("pruned {} ledger rows older than {} s", total, ledger_retention_ms_ / 1000);
  }
}

void WorkerPool::ThreadMain(IngestWorker& w, const std::string& name) {
  for (int attempt = 0; !stop_.load(); ++attempt) {
    Status s;
    try {
      s = w.Run();
    } catch (const std::exception& ex) {
      s = Status::Internal(std::string("worker failed: ") + ex.what());
    } catch (...) {
      s = Status::Internal("worker failed");
    }
    if (s.ok()) break;  // stopped, or idle exit
    const int64_t backoff_ms = std::min<int64_t>(10000, int64_t{500} << std::min(attempt, 5));
    LogError("{}: {} (starting again in {} ms)", name, s.message(), backoff_ms);
    for (int64_t waited = 0; waited < backoff_ms && !stop_.load(); waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (running_.fetch_sub(1) == 1 && on_all_exited_) {
    try {
      on_all_exited_();
    } catch (...) {
      LogError("worker pool: exit callback failed");
    }
  }
}

void WorkerPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_.store(true);
  }
  stop_cv_.notify_all();
  for (auto& w : workers_) w->Stop();
}

void WorkerPool::Join() {
  if (janitor_.joinable()) janitor_.join();
  if (heartbeat_.joinable()) heartbeat_.join();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

WorkerTotals WorkerPool::Totals() const {
  WorkerTotals t;
  for (const auto& w : workers_) {
    const WorkerCounters& c = w->counters();
    t.messages_committed += c.messages_committed.load();
    t.rows_committed += c.rows_committed.load();
    t.rows_inserted += c.rows_inserted.load();
    t.rows_dead += c.rows_dead.load();
    t.messages_dead += c.messages_dead.load();
    t.duplicates_skipped += c.duplicates_skipped.load();
    t.transient_errors += c.transient_errors.load();
    t.fetches += c.fetches.load();
    t.last_commit_unix_us = std::max(t.last_commit_unix_us, c.last_commit_unix_us.load());
  }
  return t;
}

std::vector<std::pair<WorkerState, int>> WorkerPool::StateCounts() const {
  std::vector<std::pair<WorkerState, int>> out;
  for (WorkerState st : {WorkerState::kStarting, WorkerState::kFetching, WorkerState::kCommitting,
                         WorkerState::kBackingOff, WorkerState::kStopped}) {
    int n = 0;
    for (const auto& w : workers_) n += w->state() == st ? 1 : 0;
    out.emplace_back(st, n);
  }
  return out;
}

std::string WorkerPool::BackingOffError() const {
  for (const auto& w : workers_) {
    if (w->state() == WorkerState::kBackingOff) return w->last_error();
  }
  return "";
}

bool WorkerPool::AnyWorking() const {
  for (const auto& w : workers_) {
    const WorkerState st = w->state();
    if (st == WorkerState::kFetching || st == WorkerState::kCommitting) return true;
  }
  return false;
}

void WorkerPool::ExportMetrics() {
  if (metrics_ == nullptr) return;
  for (const auto& [st, n] : StateCounts()) {
    metrics_
        ->Gauge("nomnom_worker_state", "Workers of this process in each state",
                {{"state", std::string(WorkerStateName(st))}})
        .Set(n);
  }
  const WorkerTotals now = Totals();
  std::lock_guard<std::mutex> lock(export_mu_);
  struct Series {
    const char* name;
    const char* help;
    uint64_t WorkerTotals::*field;
  };
  static constexpr Series kSeries[] = {
      {"nomnom_worker_messages_committed_total", "Chunk messages committed by this process's workers",
       &WorkerTotals::messages_committed},
      {"nomnom_worker_rows_committed_total", "Rows committed by this process's workers", &WorkerTotals::rows_committed},
      {"nomnom_worker_rows_dead_total", "Rows sent to the dead-letter queue by this process's workers",
       &WorkerTotals::rows_dead},
      {"nomnom_worker_messages_dead_total", "Whole chunks sent to the dead-letter queue", &WorkerTotals::messages_dead},
      {"nomnom_worker_redeliveries_skipped_total", "Redelivered chunks found in the ledger and acked",
       &WorkerTotals::duplicates_skipped},
      {"nomnom_worker_retries_total", "Batch commits retried after a transient failure",
       &WorkerTotals::transient_errors},
      {"nomnom_worker_fetches_total", "Fetch requests made by this process's workers", &WorkerTotals::fetches},
  };
  for (const Series& s : kSeries) {
    const uint64_t delta = now.*(s.field) - exported_.*(s.field);
    metrics_->Counter(s.name, s.help).Inc(delta);
  }
  exported_ = now;
}

}  // namespace nomnom
