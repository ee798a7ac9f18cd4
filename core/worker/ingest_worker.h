// IngestWorker: drains the JetStream consumer into PostgreSQL.
//
// Each fetch (up to fetch_messages messages / fetch_max_bytes) becomes, per
// entity, one transaction: the chunks' rows are COPYed into the staging table
// and merged into the target (the entity's PgRowSink: a CopySink, or a
// NestedSink for an entity with derived entities), and in the same
// transaction (its bookkeeping) each chunk's id is inserted into the
// ledger table, and rows that cannot be stored (rejected by the encoder or by
// PostgreSQL) are inserted into the dead-letter table (core/worker/ledger.h); then
// COMMIT, and only then the messages are acknowledged and the dead letters
// published to the dead-letter stream. A chunk already in the ledger (a
// redelivery after a commit whose ack was lost) is acknowledged without being
// written again, and of two copies of one chunk id in one fetch only the first
// is written, so every row has exactly one effect.
//
// Failures. A message is dead-lettered only for its own content, never
// because the database was slow or away:
//   * infrastructure failures (connection loss, timeouts, lock and
//     serialization failures, exhausted resources, a server shutting down:
//     PgError::IsInfrastructure) are retried with backoff for as long as it
//     takes; the messages stay held and do not count toward max_deliver;
//   * rows the encoder or PostgreSQL reject (classes 22/23, pinned by
//     bisection) are dead-lettered at once, one by one;
//   * any other failure of a commit hands the fetch's messages of that entity
//     back (Nak with a delay), which counts a delivery. A message delivered
//     more than max_deliver times is committed alone; only a failure of that
//     attempt that is not an infrastructure failure dead-letters it whole.
//   * a chunk that cannot be understood (unknown entity, unknown
//     Nomnom-Format, a pgcopy1 chunk whose Nomnom-Schema is not this worker's
//     fingerprint of the entity or whose tuple framing is broken) is
//     dead-lettered whole at once.
// pgcopy1 chunks (core/format/pgcopy_chunk.h) are COPYed as they are, after the
// framing check; their rows rejected by PostgreSQL are dead-lettered with a
// JSON rendering of the tuple (core/format/tuple_json.h) as raw.
// While a worker holds messages (including while one libpq call blocks), a
// heartbeat thread extends their ack deadline (InProgress) every ack_wait / 3,
// so JetStream does not hand them to another worker. Every database call is
// bounded (statement and lock timeouts, TCP keepalives and user timeout).
//
// Start-up errors (PostgreSQL away, restarting, or refusing to create the
// tables) are retried forever with backoff: only Stop() ends Run().
//
// Thread-safety: Run() blocks its thread; Stop(), state(), last_error() and
// counters() may be called from any thread. The JetStreamClient must outlive
// the worker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/metrics.h"
#include "core/base/status.h"
#include "core/format/encoded_part_builder.h"
#include "core/format/encoded_rows.h"
#include "core/format/schema.h"
#include "core/pg/conflict_mode.h"
#include "core/pg/pg_connection.h"
#include "core/pg/table_setup.h"
#include "core/queue/ingest_format.h"
#include "core/queue/nats_client.h"
#include "core/worker/ledger.h"

namespace nomnom {

struct WorkerOptions {
  std::string conninfo;  // PostgreSQL
  ConflictMode mode = ConflictMode::kNothing;
  int fetch_messages = 100;             // messages per fetch (the seed hard-coded 10)
  int64_t fetch_max_bytes = 16 << 20;   // bytes per fetch (0: no limit; keep it under nats-server's 64 MiB max_pending)
  int64_t fetch_wait_ms = 1000;         // how long a fetch waits for messages
  int max_deliver = 3;                  // deliveries after which a chunk is tried alone (see above)
  int64_t retry_max_backoff_ms = 5000;  // between PostgreSQL retries
  std::string worker_name = "worker";   // for logs
  // Which program runs this process's workers ("nomnomd", "worker"): the
  // heartbeat names the process "<role>@<host>:<pid>" (dashboards show it).
  std::string process_role = "worker";
  int64_t idle_exit_ms = 0;  // > 0: Run() returns after this long without messages
  // Bounds on every database call of the worker (0: none).
  int64_t statement_timeout_ms = 60000;
  int64_t lock_timeout_ms = 30000;
  int64_t tcp_user_timeout_ms = 30000;  // also enables TCP keepalives (10 s idle, 5 s interval, 3 probes)
  int64_t heartbeat_ms = 0;             // InProgress interval for held messages; 0: the consumer's ack_wait / 3
};

struct WorkerCounters {
  std::atomic<uint64_t> messages_committed{0};
  std::atomic<uint64_t> rows_committed{0};  // inserted + updated + skipped
  std::atomic<uint64_t> rows_inserted{0};
  std::atomic<uint64_t> rows_dead{0};
  std::atomic<uint64_t> messages_dead{0};
  std::atomic<uint64_t> duplicates_skipped{0};  // chunks found in the ledger, or a second copy in one fetch
  std::atomic<uint64_t> transient_errors{0};    // infrastructure failures and ledger conflicts (retried)
  std::atomic<uint64_t> content_failures{0};    // failed commits handed back to JetStream (count a delivery)
  std::atomic<uint64_t> fetches{0};
  // When the last commit of rows (a fetch's transaction) returned, in
  // microseconds since the Unix epoch (system clock); 0: none yet.
  std::atomic<uint64_t> last_commit_unix_us{0};
};

// What a worker is doing, for /ready and /metrics.
enum class WorkerState {
  kStarting,    // connecting, creating the bookkeeping and entity tables
  kFetching,    // waiting for messages
  kCommitting,  // writing a fetch to PostgreSQL
  kBackingOff,  // waiting before a retry after an error (last_error says which)
  kStopped,     // Run() returned
};
std::string_view WorkerStateName(WorkerState state);  // "starting", "fetching", ...

class IngestWorker {
 public:
  // entities: those the worker may receive (by name). js must outlive the worker.
  IngestWorker(JetStreamClient& js, std::vector<Entity> entities, WorkerOptions options,
               MetricsRegistry* metrics = nullptr);
  ~IngestWorker();

  // Connects to PostgreSQL, creates the bookkeeping and entity tables
  // (retrying forever on errors), then fetches and commits until Stop() (or
  // idle_exit_ms). Returns after finishing the fetch in hand; always OK.
  Status Run();
  void Stop() { stop_.store(true); }
  const WorkerCounters& counters() const { return counters_; }
  WorkerState state() const { return state_.load(); }
  // The last error the worker met ("" when none yet); state() says whether
  // the worker is backing off because of it now.
  std::string last_error() const;

 private:
  struct EntityState;
  struct Held;     // a fetched message and what we learned about it
  struct DeadRow;  // a row dead-lettered in a commit's transaction
  struct Commit;   // one entity's transaction of a fetch
  Status StartUp();

  // ProcessFetch: takes hold of the messages (TakeHold), then in rounds until
  // everything is settled or handed back (retrying with backoff while a step
  // fails for the database): ReconnectMeta, SkipCommitted, ScreenChunks,
  // CommitGroups; then ReleaseUnsettled. The steps return false when the round
  // must be retried (the failure logged and kept as last_error).
  Status ProcessFetch(std::vector<std::unique_ptr<FetchedMessage>> msgs);
  // Holds every message for the heartbeat, reads its headers
  // (ParseChunkMessage) and marks second copies of a chunk id (Held::original).
  std::vector<Held> TakeHold(std::vector<std::unique_ptr<FetchedMessage>> msgs);
  // Re-establishes the connection for ledger look-ups and whole-chunk dead letters.
  bool ReconnectMeta();
  // Acks the chunks the ledger has already (redeliveries) without writing them.
  bool SkipCommitted(std::vector<Held>& held);
  // Dead-letters whole the chunks that cannot be applied (malformed, unknown
  // entity, a pgcopy1 chunk that fails CheckBinaryChunk); marks those
  // delivered more than max_deliver times to be committed alone.
  bool ScreenChunks(std::vector<Held>& held);
  // The messages left, per entity in fetch order (one group for each message
  // committed alone).
  std::vector<std::pair<std::string, std::vector<Held*>>> GroupByEntity(std::vector<Held>& held);
  // CommitEntity per group; a failed commit is retried (database), dead-lettered
  // (alone) or handed back (counts a delivery).
  bool CommitGroups(std::vector<Held>& held, int round);
  bool CommitGroup(const std::string& entity, const std::vector<Held*>& list);
  // Hands back what is still held (stopping) and settles second copies as
  // their first copy was.
  void ReleaseUnsettled(std::vector<Held>& held);

  // CommitEntity: one transaction for `held` (messages of one entity):
  // EncodeChunks, then the sink's Write with WriteBookkeeping in its
  // transaction, then RecordCommit and SettleCommitted. kConflict when
  // another worker committed one of the chunks meanwhile; nothing is settled
  // on an error.
  Status CommitEntity(EntityState& es, const std::vector<Held*>& held);
  // One part per message into scratch_parts_ (c.parts); rows the encoder
  // rejects into c.encoder_dead.
  void EncodeChunks(Commit& c);
  void EncodeBinaryChunk(const Held& h, uint32_t source, EncodedPartBuilder& builder);
  void EncodeJsonChunk(Commit& c, uint32_t source, EncodedPartBuilder& builder);
  // In the rows' transaction (BeforeCommitFn, may run again on a retry): the
  // dead letters (encoder's and PostgreSQL's rejects, the latter kept in
  // c.pg_dead), the ledger rows (c.ledger_conflict on a conflict) and, nested,
  // the derived tables' row counts.
  std::optional<PgError> WriteBookkeeping(PgConnection& conn, Commit& c, const std::vector<RejectedRow>& rejected);
  static std::vector<LedgerRow> LedgerRowsOf(const Commit& c);
  static std::vector<std::pair<std::string, uint64_t>> DerivedTableRows(const Commit& c,
                                                                        const std::vector<RejectedRow>& rejected);
  // After COMMIT: counters and the commit-time histogram.
  void RecordCommit(const Commit& c, const BatchResult& result, std::chrono::steady_clock::time_point started);
  // After COMMIT: acks the messages, then publishes the dead rows' copies to
  // the dead-letter stream.
  void SettleCommitted(const Commit& c);

  // Settling one message: Ack (Release, ack, settled; a failed ack is logged
  // under `name`), HandBack (Release, Nak after delay_ms, released), and
  // DeadLetterWhole (ledger row and dead letter in one statement, stream copy,
  // Term; acked as a duplicate when the ledger has it already).
  void Ack(Held& h, const std::string& name, bool wait = true);
  void HandBack(Held& h, int64_t delay_ms);
  Status DeadLetterWhole(Held& h, const std::string& error);
  // A pgcopy1 chunk: "" when it may be written (then h.binary and h.offsets
  // are set), else why it is dead-lettered; an error when that cannot be told
  // yet (the entity cannot be prepared).
  Result<std::string> CheckBinaryChunk(Held& h);
  // Logs `what` and keeps it as last_error.
  void Failed(const std::string& what);
  Result<EntityState*> StateFor(const std::string& entity);
  PgSessionOptions SessionOptions() const;
  void Sleep(int64_t ms);
  void SetError(const std::string& error);
  // The heartbeat's set of held messages: Hold adds, Release removes (before
  // the message is acked, nak'ed, terminated or destroyed).
  void Hold(FetchedMessage* msg);
  void Release(FetchedMessage* msg);
  void HeartbeatLoop(int64_t interval_ms);

  JetStreamClient& js_;
  std::vector<Entity> entities_;
  WorkerOptions options_;
  MetricsRegistry* metrics_;
  std::unique_ptr<PgConnection> meta_conn_;  // ledger lookups, dead letters outside a batch
  std::map<std::string, std::unique_ptr<EntityState>> states_;
  // Entities of tables served by nomnomd --allow-table, read from the catalog
  // on first use (core/pg/catalog_entity.h); never removed, so states may point
  // into them.
  std::map<std::string, std::unique_ptr<Entity>> catalog_entities_;
  // EncodeChunks' buffers, reused across fetches (Run()'s thread only).
  std::vector<std::unique_ptr<EncodedPart>> scratch_parts_;
  std::string scratch_line_;  // a padded copy of a row at the end of a body
  std::atomic<bool> stop_{false};
  std::atomic<WorkerState> state_{WorkerState::kStarting};
  WorkerCounters counters_;
  mutable std::mutex error_mu_;
  std::string last_error_;  // guarded by error_mu_
  std::mutex held_mu_;
  std::condition_variable heartbeat_cv_;
  std::vector<FetchedMessage*> held_msgs_;  // guarded by held_mu_; owned by ProcessFetch
  bool heartbeat_stop_ = false;             // guarded by held_mu_
};

}  // namespace nomnom
