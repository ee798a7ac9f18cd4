#include "daemon/service_monitor.h"

#include <algorithm>

namespace nomnom {

namespace {
using Clock = std::chrono::steady_clock;
constexpr int64_t kNatsPeriodMs = 1000;
constexpr int64_t kPgPeriodMs = 500;  // PostgreSQL: reachable, totals, dead letters, heartbeats
}  // namespace

void ServiceMonitor::Start() {
  nats_ = std::thread([this] { NatsMain(); });
  pg_ = std::thread([this] { PgMain(); });
}

void ServiceMonitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_.store(true);
  }
  stop_cv_.notify_all();
  if (nats_.joinable()) nats_.join();
  if (pg_.joinable()) pg_.join();
}

void ServiceMonitor::SleepUnlessStopping(int64_t ms) {
  std::unique_lock<std::mutex> lock(stop_mu_);
  stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
}

void ServiceMonitor::NatsMain() {
  while (!stopping_.load()) {
    const bool exists = js_.IsConnected() && js_.StreamExists();
    auto lag = js_.Lag();
    auto stream = js_.MainStreamStats();
    const uint64_t committed = workers_.Totals().rows_committed;
    const double t = std::chrono::duration<double>(Clock::now() - started_).count();
    {
      std::lock_guard<std::mutex> lock(mu_);
      snap_.nats_checked = true;
      snap_.stream_exists = exists;
      snap_.lag = lag.ok() ? std::optional<ConsumerLag>(*lag) : std::nullopt;
      snap_.stream = stream.ok() ? std::optional<StreamStats>(*stream) : std::nullopt;
      snap_.samples.emplace_back(t, rows_accepted_.Value(), committed);
      while (snap_.samples.size() > 61) snap_.samples.pop_front();
    }
    SleepUnlessStopping(kNatsPeriodMs);
  }
}

void ServiceMonitor::PgMain() {
  std::unique_ptr<PgConnection> conn;
  while (!stopping_.load()) {
    // Twice a second from the start of one reading to the next, so that the
    // dashboard's one-second snapshots show a commit by the second one after it.
    const auto started = Clock::now();
    ReadPostgres(conn);
    const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    SleepUnlessStopping(std::max<int64_t>(0, kPgPeriodMs - spent));
  }
}

void ServiceMonitor::ReadPostgres(std::unique_ptr<PgConnection>& conn) {
  bool ok = false;
  std::string error;
  std::optional<LedgerTotals> totals;
  std::optional<std::vector<RecentDeadLetter>> dead_letters;
  std::optional<std::vector<WorkerHeartbeat>> processes;
  if (!conn || !conn->IsOk()) {
    auto c = PgConnection::Connect(database_url_, "nomnomd-monitor", session_);
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
  std::lock_guard<std::mutex> lock(mu_);
  snap_.db_checked = true;
  snap_.db_ok = ok;
  snap_.db_error = error;
  if (totals) {
    snap_.db_totals = totals;
    snap_.db_read_s = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  }
  if (dead_letters) snap_.dead_letters = std::move(*dead_letters);
  if (processes) snap_.processes = std::move(*processes);
}

}  // namespace nomnom
