// IngestWorker: drains the JetStream consumer into PostgreSQL.
//
// Each fetch (up to fetch_messages messages / fetch_max_bytes) becomes, per
// entity, one transaction: the chunks' rows are COPYed into the staging table
// and merged into the target (CopySink), each chunk's id is inserted into the
// ledger table, and rows that cannot be stored (rejected by the encoder or by
// PostgreSQL) are inserted into the dead-letter table; then COMMIT, and only
// then the messages are acknowledged and the dead letters published to the
// dead-letter stream. A chunk already in the ledger (a redelivery after a
// commit whose ack was lost) is acknowledged without being written again, so
// every row has exactly one effect.
//
// Failures: PostgreSQL unreachable, restarting, deadlocks and serialization
// failures are retried with backoff for as long as it takes, while the held
// messages' ack deadlines are extended (InProgress); nothing is dropped. A
// chunk delivered more than max_deliver times without being committed, or one
// that cannot be understood (no id, unknown entity), goes to the dead-letter
// stream and table whole.
//
// Thread-safety: Run() blocks its thread; Stop() may be called from any
// thread. Counters are atomics that other threads may read.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/conflict_mode.h"
#include "core/metrics.h"
#include "core/nats_client.h"
#include "core/pg_connection.h"
#include "core/schema.h"
#include "core/status.h"
#include "core/table_setup.h"

namespace nomnom {

struct WorkerOptions {
  std::string conninfo;  // PostgreSQL
  ConflictMode mode = ConflictMode::kNothing;
  int fetch_messages = 100;             // messages per fetch (the seed hard-coded 10)
  int64_t fetch_max_bytes = 16 << 20;   // bytes per fetch (0: no limit; keep it under nats-server's 64 MiB max_pending)
  int64_t fetch_wait_ms = 1000;         // how long a fetch waits for messages
  int max_deliver = 3;                  // deliveries before a chunk is dead-lettered
  int64_t retry_max_backoff_ms = 5000;  // between PostgreSQL retries
  std::string worker_name = "worker";   // for logs
  int64_t idle_exit_ms = 0;             // > 0: Run() returns after this long without messages
};

struct WorkerCounters {
  std::atomic<uint64_t> messages_committed{0};
  std::atomic<uint64_t> rows_committed{0};  // inserted + updated + skipped
  std::atomic<uint64_t> rows_inserted{0};
  std::atomic<uint64_t> rows_dead{0};
  std::atomic<uint64_t> messages_dead{0};
  std::atomic<uint64_t> duplicates_skipped{0};  // redelivered chunks found in the ledger
  std::atomic<uint64_t> transient_errors{0};
  std::atomic<uint64_t> fetches{0};
};

// The bookkeeping tables (ledger, dead letters), created when missing.
Status EnsureBookkeepingTables(PgConnection& conn);

// Where an id given to /ingest/status stands, from the ledger and the
// dead-letter table (which survive restarts).
struct IngestStatus {
  enum class State { kUnknown, kPending, kProcessed, kDead } state = State::kUnknown;
  std::string committed_at;  // ISO 8601, when processed
  uint64_t rows = 0;         // rows committed
  uint64_t chunks_committed = 0;
  uint64_t chunks_total = 0;  // 0 when unknown
  uint64_t rows_dead = 0;
  std::string error;  // the first dead-letter error
};
Result<IngestStatus> LookupIngestStatus(PgConnection& conn, std::string_view id);

class IngestWorker {
 public:
  // entities: those the worker may receive (by name). js must outlive the worker.
  IngestWorker(JetStreamClient& js, std::vector<Entity> entities, WorkerOptions options,
               MetricsRegistry* metrics = nullptr);
  ~IngestWorker();

  // Connects to PostgreSQL, creates the bookkeeping and entity tables, then
  // fetches and commits until Stop(). Returns when stopped (after finishing
  // the fetch in hand) or on a configuration error.
  Status Run();
  void Stop() { stop_.store(true); }
  const WorkerCounters& counters() const { return counters_; }

 private:
  struct EntityState;
  struct Held;  // a fetched message and what we learned about it
  Status ProcessFetch(std::vector<std::unique_ptr<FetchedMessage>> msgs);
  Status CommitEntity(EntityState& es, std::vector<Held*>& held);
  Status DeadLetterWhole(Held& h, const std::string& error);
  void PublishDeadLetters(const std::vector<std::pair<Held*, std::pair<uint64_t, std::string>>>& rows);
  Result<EntityState*> StateFor(const std::string& entity);
  void Sleep(int64_t ms);

  JetStreamClient& js_;
  std::vector<Entity> entities_;
  WorkerOptions options_;
  MetricsRegistry* metrics_;
  std::unique_ptr<PgConnection> meta_conn_;  // ledger lookups, dead letters outside a batch
  std::map<std::string, std::unique_ptr<EntityState>> states_;
  std::atomic<bool> stop_{false};
  WorkerCounters counters_;
};

}  // namespace nomnom
