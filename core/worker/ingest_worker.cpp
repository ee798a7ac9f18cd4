#include "core/worker/ingest_worker.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>
#include <utility>

#include "core/base/log.h"
#include "core/format/encoded_part_builder.h"
#include "core/format/ndjson_reader.h"
#include "core/format/nested_encoder.h"
#include "core/format/pgcopy_chunk.h"
#include "core/format/rejects.h"
#include "core/format/row_encoder.h"
#include "core/format/tuple_json.h"
#include "core/pg/catalog_entity.h"
#include "core/pg/copy_sink.h"
#include "core/pg/nested_sink.h"
#include "core/queue/chunk_writer.h"
#include "core/queue/ingest_format.h"
#include "core/worker/ledger.h"

namespace nomnom {

namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void Log(const std::string& who, const std::string& what) { LogWarn("{}: {}", who, what); }

// A failure of the database rather than of the data: retried without
// counting toward max_deliver (see ingest_worker.h).
bool IsInfrastructure(const Status& s) {
  return s.code() == StatusCode::kConnection || s.code() == StatusCode::kUnavailable;
}

int64_t Backoff(int64_t max_ms, int round) { return std::min<int64_t>(max_ms, int64_t{100} << std::min(round, 6)); }

}  // namespace

std::string_view WorkerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::kStarting:
      return "starting";
    case WorkerState::kFetching:
      return "fetching";
    case WorkerState::kCommitting:
      return "committing";
    case WorkerState::kBackingOff:
      return "backing_off";
    case WorkerState::kStopped:
      return "stopped";
  }
  return "unknown";
}

struct IngestWorker::EntityState {
  const Entity* entity = nullptr;
  // A CopySink, or for an entity with derived entities a NestedSink (each
  // row fills its table and theirs).
  std::unique_ptr<PgRowSink> sink;
  std::unique_ptr<RowEncoder> encoder;  // no derived entities
  std::vector<const Entity*> derived;
  std::unique_ptr<NestedEncoder> nested_encoder;  // derived entities
  std::string schema;                             // SchemaFingerprint(*entity), what pgcopy1 chunks must carry
};

// A fetched message: what its headers say (ParseChunkMessage) and what we
// learned about it.
struct IngestWorker::Held : ChunkMessage {
  std::unique_ptr<FetchedMessage> msg;
  // kHeld until acked, found in the ledger or dead-lettered (kSettled), or
  // handed back to JetStream (kReleased).
  enum class Fate { kHeld, kSettled, kReleased } fate = Fate::kHeld;
  bool done() const { return fate != Fate::kHeld; }
  // A later copy of a chunk id another message of the same fetch has: it
  // follows that message's fate (acked once it is settled, nak'ed when it is
  // released) and is never written itself.
  Held* original = nullptr;
  bool alone = false;  // delivered more than max_deliver times: committed alone
  // A pgcopy1 chunk is written only once ScreenChunks has checked its schema
  // and framing (binary set, and offsets holding the start of each tuple in
  // the body).
  bool binary = false;
  std::vector<uint32_t> offsets;
};

IngestWorker::IngestWorker(JetStreamClient& js, std::vector<Entity> entities, WorkerOptions options,
                           MetricsRegistry* metrics)
    : js_(js), entities_(std::move(entities)), options_(std::move(options)), metrics_(metrics) {}

IngestWorker::~IngestWorker() = default;

std::string IngestWorker::last_error() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return last_error_;
}

void IngestWorker::SetError(const std::string& error) {
  std::lock_guard<std::mutex> lock(error_mu_);
  last_error_ = error;
}

void IngestWorker::Sleep(int64_t ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!stop_.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(ms, 50)));
  }
}

void IngestWorker::Hold(FetchedMessage* msg) {
  std::lock_guard<std::mutex> lock(held_mu_);
  held_msgs_.push_back(msg);
}

void IngestWorker::Release(FetchedMessage* msg) {
  std::lock_guard<std::mutex> lock(held_mu_);
  held_msgs_.erase(std::remove(held_msgs_.begin(), held_msgs_.end(), msg), held_msgs_.end());
}

void IngestWorker::HeartbeatLoop(int64_t interval_ms) {
  // Extends the ack deadline of every held message, also while the worker
  // thread is blocked in libpq. Messages are touched only under held_mu_ and
  // only while held: the worker thread releases a message before it acks,
  // naks, terminates or destroys it, so no natsMsg is used by two threads.
  std::unique_lock<std::mutex> lock(held_mu_);
  while (!heartbeat_stop_) {
    heartbeat_cv_.wait_for(lock, std::chrono::milliseconds(interval_ms));
    if (heartbeat_stop_) break;
    for (FetchedMessage* m : held_msgs_) {
      if (Status s = m->InProgress(); !s.ok()) Log(options_.worker_name, s.message());
    }
  }
}

PgSessionOptions IngestWorker::SessionOptions() const {
  PgSessionOptions o;
  o.statement_timeout_ms = options_.statement_timeout_ms;
  o.lock_timeout_ms = options_.lock_timeout_ms;
  o.tcp_user_timeout_ms = options_.tcp_user_timeout_ms;
  if (options_.tcp_user_timeout_ms > 0) o.keepalives_idle_s = 10;
  return o;
}

Result<IngestWorker::EntityState*> IngestWorker::StateFor(const std::string& name) {
  auto it = states_.find(name);
  if (it != states_.end()) return it->second.get();
  const Entity* entity = FindEntity(entities_, name);
  auto conn = PgConnection::Connect(options_.conninfo, "nomnom-worker", SessionOptions());
  if (entity == nullptr) {
    if (auto known = catalog_entities_.find(name); known != catalog_entities_.end()) entity = known->second.get();
  }
  if (entity == nullptr && IsTableEntityName(name)) {
    // A table served by nomnomd --allow-table: its entity comes from the
    // catalog, resolved once and kept.
    if (!conn.ok()) return conn.status();
    auto from_catalog = TableEntityFromCatalog(**conn, std::string_view(name).substr(kTableEntityPrefix.size()));
    if (!from_catalog.ok()) return from_catalog.status();
    auto& slot = catalog_entities_[name];
    slot = std::make_unique<Entity>(std::move(from_catalog).value());
    entity = slot.get();
  }
  if (entity == nullptr) return Status::NotFound("unknown entity '" + name + "'");
  if (!conn.ok()) return conn.status();
  if (Status s = EnsureTable(**conn, *entity, options_.mode); !s.ok()) return s;
  CopySinkOptions sopts;
  sopts.reconnect = true;
  sopts.max_transient_retries = 3;
  sopts.max_backoff_ms = options_.retry_max_backoff_ms;
  auto state = std::make_unique<EntityState>();
  state->entity = entity;
  state->schema = SchemaFingerprint(*entity);
  state->derived = DerivedEntities(entities_, *entity);
  if (!state->derived.empty()) {
    if (Status s = NestedEncoder::Check(*entity, state->derived); !s.ok()) return s;
    for (const Entity* d : state->derived) {
      if (Status s = EnsureTable(**conn, *d, options_.mode); !s.ok()) return s;
    }
    auto sink = NestedSink::Create(std::move(conn).value(), *entity, state->derived, options_.mode, sopts);
    if (!sink.ok()) return sink.status();
    state->sink = std::move(sink).value();
    state->nested_encoder = std::make_unique<NestedEncoder>(*entity, state->derived, RowEncoderOptions{});
  } else {
    auto sink = CopySink::Create(std::move(conn).value(), *entity, options_.mode, sopts);
    if (!sink.ok()) return sink.status();
    state->sink = std::move(sink).value();
    state->encoder = std::make_unique<RowEncoder>(*entity, RowEncoderOptions{});
  }
  EntityState* raw = state.get();
  states_.emplace(name, std::move(state));
  return raw;
}

// --- Settling one message ---

void IngestWorker::Ack(Held& h, const std::string& name, bool wait) {
  Release(h.msg.get());
  Status s = wait ? h.msg->Ack() : h.msg->AckNoWait();
  if (!s.ok()) Log(options_.worker_name, "ack of " + name + " failed: " + s.message());
  h.fate = Held::Fate::kSettled;
}

void IngestWorker::HandBack(Held& h, int64_t delay_ms) {
  Release(h.msg.get());
  if (Status s = h.msg->Nak(delay_ms); !s.ok()) Log(options_.worker_name, s.message());
  h.fate = Held::Fate::kReleased;
}

void IngestWorker::Failed(const std::string& what) {
  Log(options_.worker_name, what);
  SetError(what);
}

Status IngestWorker::DeadLetterWhole(Held& h, const std::string& error) {
  // Ledger row (dead) and dead letter in one statement, so a redelivery after
  // a lost ack is recognised; then the stream copy; then Term. When the
  // ledger has the chunk already (another worker committed or dead-lettered
  // it meanwhile) nothing is written: the message is acked as a duplicate.
  LedgerRow ledger;
  ledger.msg_id =
      h.id.empty() ? UnnamedChunkKey(js_.config().stream, h.msg->StreamSequence(), h.msg->StoredAtNs()) : h.id;
  ledger.batch_id = h.batch;
  ledger.chunk_index = h.chunk_index;
  ledger.chunk_count = h.chunk_count;
  ledger.entity = h.entity;
  ledger.dead = true;
  ledger.stream_seq = h.msg->StreamSequence();
  DeadLetterRow dead;
  dead.msg_id = ledger.msg_id;
  dead.batch_id = h.batch;
  dead.entity = h.entity;
  dead.error = error;
  // A binary body as text: PostgreSQL's bytea hex form (the dead-letter
  // stream keeps the bytes and the format headers).
  dead.raw = h.format.empty() ? std::string(h.msg->body()) : HexBytes(h.msg->body());
  dead.deliveries = h.msg->NumDelivered();
  auto inserted = DeadLetterWholeChunk(*meta_conn_, ledger, dead);
  if (!inserted.ok()) return inserted.status();
  if (!*inserted) {
    Ack(h, ledger.msg_id);
    counters_.duplicates_skipped.fetch_add(1);
    return Status::Ok();
  }
  Release(h.msg.get());
  h.fate = Held::Fate::kSettled;
  OutgoingMessage dl =
      MakeDeadLetterMessage(js_.DeadLetterSubject(h.entity.empty() ? "unknown" : h.entity), ledger.msg_id, h.batch,
                            h.entity, std::nullopt, error, std::string(h.msg->body()));
  if (!h.format.empty()) {
    for (std::string_view name : {kHeaderFormat, kHeaderSchema, kHeaderRows}) {
      if (auto v = h.msg->Header(std::string(name))) dl.headers.emplace_back(std::string(name), HeaderValue(*v));
    }
  }
  if (Status s = js_.Publish(dl); !s.ok())
    Log(options_.worker_name, "dead-letter stream publish failed (the table has it): " + s.message());
  if (Status s = h.msg->Term(); !s.ok()) Log(options_.worker_name, s.message());
  counters_.messages_dead.fetch_add(1);
  Log(options_.worker_name, "dead-lettered " + ledger.msg_id + ": " + error);
  return Status::Ok();
}

Result<std::string> IngestWorker::CheckBinaryChunk(Held& h) {
  h.binary = false;
  auto es = StateFor(h.entity);
  if (!es.ok()) return es.status();
  const EntityState& state = **es;
  if (!state.derived.empty()) {
    return "pgcopy1 chunk for entity '" + h.entity +
           "', which has derived entities: its rows must be published as NDJSON";
  }
  if (h.schema != state.schema) {
    return "schema mismatch, not applied: the chunk's tuples were encoded for schema '" + h.schema +
           "' (Nomnom-Schema), this worker's entity '" + state.entity->name + "' (table " + state.entity->TableName() +
           ") has schema '" + state.schema + "'";
  }
  const std::string bad = WalkTuples(h.msg->body(), state.entity->fields.size(), h.rows, &h.offsets);
  if (!bad.empty()) return "malformed pgcopy1 body: " + bad;
  h.binary = true;
  return std::string();
}

// --- CommitEntity: encode, write with bookkeeping, settle ---

// A row that is dead-lettered in the commit's transaction.
struct IngestWorker::DeadRow {
  size_t held;  // index of its message in Commit::held
  uint64_t line;
  std::string error;
  std::string raw;
};

// One entity's transaction of a fetch: its messages, their encoded rows and
// the rows that are dead-lettered.
struct IngestWorker::Commit {
  EntityState& es;
  const std::vector<Held*>& held;
  std::vector<const EncodedPart*> parts;  // one per held message, in scratch_parts_
  std::vector<DeadRow> encoder_dead;      // rows the encoder rejected
  std::vector<DeadRow> pg_dead;           // rows PostgreSQL rejected (set by WriteBookkeeping)
  bool ledger_conflict = false;           // another worker committed one of the chunks meanwhile
};

void IngestWorker::EncodeChunks(Commit& c) {
  // One part per chunk, parsing each row in place in the message (which lives
  // until the message is settled). The parts are the worker's scratch, reused
  // from one fetch to the next (emptied, their capacity kept): fresh
  // multi-megabyte buffers per fetch cost page faults (large blocks are
  // mmapped, see cli/main.cpp). Nothing points into them once CommitEntity
  // returns.
  EncodedPartBuilder builder;
  c.parts.clear();
  for (size_t i = 0; i < c.held.size(); ++i) {
    if (i == scratch_parts_.size()) scratch_parts_.push_back(std::make_unique<EncodedPart>());
    const Held& h = *c.held[i];
    // Nested entities: one child part per derived entity.
    builder.Start(scratch_parts_[i].get(), 0, nullptr, c.es.derived.size());
    if (h.binary) {
      EncodeBinaryChunk(h, static_cast<uint32_t>(i), builder);
    } else {
      EncodeJsonChunk(c, static_cast<uint32_t>(i), builder);
    }
    c.parts.push_back(builder.Finish());
  }
}

void IngestWorker::EncodeBinaryChunk(const Held& h, uint32_t source, EncodedPartBuilder& builder) {
  // pgcopy1: the tuples as published, framing checked by CheckBinaryChunk.
  const std::string_view body = h.msg->body();
  builder.tuples()->Append(body.data(), body.size());
  builder.Reserve(0, h.offsets.size());
  for (size_t r = 0; r < h.offsets.size(); ++r) {
    const size_t end = r + 1 < h.offsets.size() ? h.offsets[r + 1] : body.size();
    builder.AddRow(h.offsets[r],
                   RowOrigin{source, r + 1, body.substr(h.offsets[r], end - h.offsets[r]), h.msg->StreamSequence()});
  }
}

void IngestWorker::EncodeJsonChunk(Commit& c, uint32_t source, EncodedPartBuilder& builder) {
  // Only a row with fewer than kChunkPadding bytes of the body behind it is
  // parsed from a padded copy (scratch_line_); its RowOrigin still points
  // into the message.
  const Held& h = *c.held[source];
  const std::string_view body = h.msg->body();
  builder.Reserve(body.size(), 0);
  NestedEncoder::Output nested_out;
  if (c.es.nested_encoder) builder.BindNested(&nested_out);
  std::string error;
  ForEachPaddedLine(body, body.size(), [&](std::string_view line, uint64_t line_no, size_t readable) {
    if (line.empty()) return true;
    const size_t start = builder.tuples()->size();
    std::string_view parse = line;
    if (readable < line.size() + kChunkPadding) {
      scratch_line_.assign(line);
      scratch_line_.append(kChunkPadding, ' ');
      parse = std::string_view(scratch_line_.data(), line.size());
      readable = scratch_line_.size();
    }
    const bool encoded = c.es.nested_encoder ? c.es.nested_encoder->Encode(parse, readable, nested_out, nullptr, &error)
                                             : c.es.encoder->Encode(parse, readable, builder.tuples(), nullptr, &error);
    if (!encoded) {
      c.encoder_dead.push_back(DeadRow{source, line_no, error, std::string(line)});
      return true;
    }
    builder.AddRow(start, RowOrigin{source, line_no, line, h.msg->StreamSequence()});
    return true;
  });
}

std::optional<PgError> IngestWorker::WriteBookkeeping(PgConnection& conn, Commit& c,
                                                      const std::vector<RejectedRow>& rejected) {
  c.pg_dead.clear();
  for (const RejectedRow& r : rejected) {
    // A row of a pgcopy1 chunk is dead-lettered as JSON rendered from its tuple.
    c.pg_dead.push_back(
        DeadRow{r.origin->source, r.origin->line, r.error,
                c.held[r.origin->source]->binary ? TupleRaw(*c.es.entity, r.origin->raw) : std::string(r.origin->raw)});
  }
  // Dead letters (encoder and PostgreSQL rejects) in this transaction.
  for (const auto* list : {&c.encoder_dead, &c.pg_dead}) {
    for (const DeadRow& d : *list) {
      const Held& h = *c.held[d.held];
      DeadLetterRow row;
      row.msg_id = h.id;
      row.batch_id = h.batch;
      row.entity = h.entity;
      row.line = d.line;
      row.error = d.error;
      row.raw = d.raw;
      row.deliveries = h.msg->NumDelivered();
      if (auto err = InsertDeadLetter(conn, row)) return err;
    }
  }
  // The ledger: one row per chunk, in one statement. A conflict means another
  // worker committed a chunk meanwhile: roll back rather than write it twice.
  if (auto err = InsertLedgerRows(conn, LedgerRowsOf(c), &c.ledger_conflict)) return err;
  if (c.es.derived.empty()) return std::nullopt;
  return AddDerivedTableRows(conn, c.held.front()->entity, DerivedTableRows(c, rejected));
}

std::vector<LedgerRow> IngestWorker::LedgerRowsOf(const Commit& c) {
  std::vector<LedgerRow> ledger(c.held.size());
  for (size_t i = 0; i < c.held.size(); ++i) {
    const Held* h = c.held[i];
    uint64_t encoder_dead = 0, pg_dead_rows = 0;
    for (const DeadRow& d : c.encoder_dead) encoder_dead += d.held == i ? 1 : 0;
    for (const DeadRow& d : c.pg_dead) pg_dead_rows += d.held == i ? 1 : 0;
    LedgerRow& l = ledger[i];
    l.msg_id = h->id;
    l.batch_id = h->batch;
    l.chunk_index = h->chunk_index;
    l.chunk_count = h->chunk_count;
    l.entity = h->entity;
    l.rows_committed = c.parts[i]->rows() - pg_dead_rows;
    l.rows_dead = encoder_dead + pg_dead_rows;
    l.stream_seq = h->msg->StreamSequence();
  }
  return ledger;
}

std::vector<std::pair<std::string, uint64_t>> IngestWorker::DerivedTableRows(const Commit& c,
                                                                             const std::vector<RejectedRow>& rejected) {
  // A derived row carries its root row's origin; the rows of a root
  // PostgreSQL rejected are not stored.
  std::set<std::pair<uint32_t, uint64_t>> lost;
  for (const RejectedRow& r : rejected) lost.emplace(r.origin->source, r.origin->line);
  std::vector<std::pair<std::string, uint64_t>> table_rows;
  for (size_t d = 0; d < c.es.derived.size(); ++d) {
    uint64_t n = 0;
    for (const EncodedPart* part : c.parts) {
      if (d >= part->children.size()) continue;
      const EncodedPart& child = *part->children[d];
      if (lost.empty()) {
        n += child.rows();
        continue;
      }
      for (const RowOrigin& o : child.origins) n += lost.count({o.source, o.line}) == 0 ? 1 : 0;
    }
    table_rows.emplace_back(c.es.derived[d]->TableName(), n);
  }
  return table_rows;
}

void IngestWorker::RecordCommit(const Commit& c, const BatchResult& result,
                                std::chrono::steady_clock::time_point started) {
  if (metrics_ != nullptr) {
    metrics_->Histogram("nomnom_worker_commit_seconds", "Time to commit one fetched batch (COPY, merge, ledger)")
        .Observe(SecondsSince(started));
  }
  counters_.last_commit_unix_us.store(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count()));
  counters_.rows_committed.fetch_add(result.inserted + result.updated + result.skipped);
  counters_.rows_inserted.fetch_add(result.inserted);
  counters_.rows_dead.fetch_add(c.encoder_dead.size() + c.pg_dead.size());
}

void IngestWorker::SettleCommitted(const Commit& c) {
  // Ack only after COMMIT: all but the last without waiting, the last one
  // synchronously (acks travel in order, so its confirmation covers the
  // others). A lost ack means a redelivery that the ledger absorbs.
  for (size_t i = 0; i < c.held.size(); ++i) Ack(*c.held[i], c.held[i]->id, i + 1 == c.held.size());
  counters_.messages_committed.fetch_add(c.held.size());
  // Copies in the dead-letter stream, after the table has them.
  for (const auto* list : {&c.encoder_dead, &c.pg_dead}) {
    for (const DeadRow& d : *list) {
      const Held& h = *c.held[d.held];
      const OutgoingMessage dl =
          MakeDeadLetterMessage(js_.DeadLetterSubject(h.entity), h.id, h.batch, h.entity, d.line, d.error, d.raw);
      if (Status s = js_.Publish(dl); !s.ok()) {
        Log(options_.worker_name, "dead-letter stream publish failed (the table has it): " + s.message());
      }
    }
  }
}

Status IngestWorker::CommitEntity(EntityState& es, const std::vector<Held*>& held) {
  Commit c{es, held, {}, {}, {}, false};
  EncodeChunks(c);
  const auto started = std::chrono::steady_clock::now();
  auto result = es.sink->Write(
      c.parts, [](const RowOrigin&, std::string_view) {},
      [&](PgConnection& conn, const std::vector<RejectedRow>& rejected) {
        return WriteBookkeeping(conn, c, rejected);
      });
  if (!result.ok()) {
    if (c.ledger_conflict) return Status::Conflict(result.status().message());
    return result.status();
  }
  RecordCommit(c, *result, started);
  SettleCommitted(c);
  return Status::Ok();
}

// --- ProcessFetch: decode, skip what is settled, screen, commit per entity ---

std::vector<IngestWorker::Held> IngestWorker::TakeHold(std::vector<std::unique_ptr<FetchedMessage>> msgs) {
  std::vector<Held> held(msgs.size());
  for (size_t i = 0; i < msgs.size(); ++i) {
    Held& h = held[i];
    h.msg = std::move(msgs[i]);
    Hold(h.msg.get());
    static_cast<ChunkMessage&>(h) =
        ParseChunkMessage(h.msg->subject(), [&h](std::string_view name) { return h.msg->Header(name); });
  }
  // Two copies of one chunk id (an Idempotency-Key re-sent after JetStream's
  // duplicate window while the first copy is still queued): only the first
  // copy (lowest stream sequence) is committed, the others follow its fate.
  // Both in one ledger insert would conflict with each other on every round.
  std::map<std::string, Held*> first;
  for (Held& h : held) {
    if (h.id.empty()) continue;
    auto [it, inserted] = first.emplace(h.id, &h);
    if (!inserted && h.msg->StreamSequence() < it->second->msg->StreamSequence()) it->second = &h;
  }
  for (Held& h : held) {
    if (h.id.empty()) continue;
    Held* keep = first[h.id];
    if (keep != &h) h.original = keep;
  }
  return held;
}

bool IngestWorker::ReconnectMeta() {
  if (meta_conn_->IsOk()) return true;
  Status s = meta_conn_->Reconnect();
  if (s.ok()) return true;
  Failed(s.message() + " (will retry)");
  counters_.transient_errors.fetch_add(1);
  return false;
}

bool IngestWorker::SkipCommitted(std::vector<Held>& held) {
  std::vector<std::string> ids;
  for (const Held& h : held) {
    if (!h.done() && h.original == nullptr && !h.id.empty()) ids.push_back(h.id);
  }
  if (ids.empty()) return true;
  auto found = FindInLedger(*meta_conn_, ids);
  if (!found.ok()) {
    Failed("ledger lookup failed, will retry: " + found.status().message());
    counters_.transient_errors.fetch_add(1);
    return false;
  }
  for (const std::string& id : *found) {
    for (Held& h : held) {
      if (h.done() || h.original != nullptr || h.id != id) continue;
      Ack(h, h.id);
      counters_.duplicates_skipped.fetch_add(1);
    }
  }
  return true;
}

bool IngestWorker::ScreenChunks(std::vector<Held>& held) {
  bool ok = true;
  for (Held& h : held) {
    if (h.done() || h.original != nullptr) continue;
    std::string why = h.malformed;
    if (why.empty() && FindEntity(entities_, h.entity) == nullptr && !IsTableEntityName(h.entity)) {
      why = "unknown entity '" + h.entity + "'";
    }
    if (why.empty() && !h.format.empty()) {
      auto checked = CheckBinaryChunk(h);
      if (!checked.ok()) {
        // Cannot tell yet (e.g. PostgreSQL away while preparing the
        // entity): never fall back to reading the body as NDJSON.
        Failed("cannot prepare " + h.entity + ", will retry: " + checked.status().message());
        ok = false;
        continue;
      }
      why = *checked;
    }
    if (!why.empty()) {
      if (Status s = DeadLetterWhole(h, why); !s.ok()) {
        Failed("dead-lettering failed, will retry: " + s.message());
        ok = false;
      }
    } else if (h.msg->NumDelivered() > static_cast<uint64_t>(options_.max_deliver)) {
      h.alone = true;
    }
  }
  return ok;
}

std::vector<std::pair<std::string, std::vector<IngestWorker::Held*>>> IngestWorker::GroupByEntity(
    std::vector<Held>& held) {
  std::vector<std::pair<std::string, std::vector<Held*>>> groups;
  std::map<std::string, size_t> group_of;
  for (Held& h : held) {
    if (h.done() || h.original != nullptr) continue;
    if (h.alone) {
      groups.push_back({h.entity, {&h}});
      continue;
    }
    auto [it, inserted] = group_of.emplace(h.entity, groups.size());
    if (inserted) groups.push_back({h.entity, {}});
    groups[it->second].second.push_back(&h);
  }
  return groups;
}

bool IngestWorker::CommitGroup(const std::string& name, const std::vector<Held*>& list) {
  auto es = StateFor(name);
  if (!es.ok()) {
    Failed("cannot prepare " + name + ", will retry: " + es.status().message());
    return false;
  }
  Status s = CommitEntity(**es, list);
  if (s.ok()) return true;
  if (s.code() == StatusCode::kConflict || IsInfrastructure(s)) {
    // Another worker committed a chunk meanwhile (the ledger look-up acks it
    // next round), or the database is away or slow: keep the messages and
    // retry; no delivery is counted.
    counters_.transient_errors.fetch_add(1);
    Failed("commit failed, will retry: " + s.message());
    return false;
  }
  // A state we cannot trust (e.g. the connection's staging table is gone):
  // start the entity's connection afresh next time.
  states_.erase(name);
  if (list.size() == 1 && list[0]->alone) {
    Held& h = *list[0];
    const std::string why = "delivered " + std::to_string(h.msg->NumDelivered()) +
                            " times without being committed (max_deliver " + std::to_string(options_.max_deliver) +
                            "), and failed alone: " + s.message();
    if (Status d = DeadLetterWhole(h, why); !d.ok()) {
      Failed("dead-lettering failed, will retry: " + d.message());
      return false;
    }
    return true;
  }
  // Not the database's fault, and not pinned to a row: hand the messages
  // back, which counts a delivery; past max_deliver each one is tried alone.
  counters_.content_failures.fetch_add(1);
  Failed("commit failed, handing " + std::to_string(list.size()) + " message(s) back for redelivery: " + s.message());
  for (Held* h : list) HandBack(*h, std::min<int64_t>(options_.retry_max_backoff_ms, 1000));
  return true;
}

bool IngestWorker::CommitGroups(std::vector<Held>& held, int round) {
  bool ok = true;
  for (auto& [name, list] : GroupByEntity(held)) {
    if (stop_.load() && round > 0) break;
    if (!CommitGroup(name, list)) ok = false;
  }
  return ok;
}

void IngestWorker::ReleaseUnsettled(std::vector<Held>& held) {
  // Stopping with messages that could not be committed (PostgreSQL down):
  // hand them back now rather than after the ack wait.
  for (Held& h : held) {
    if (!h.done() && h.original == nullptr) HandBack(h, 0);
  }
  // Second copies follow their first copy.
  for (Held& h : held) {
    if (h.done() || h.original == nullptr) continue;
    if (h.original->fate == Held::Fate::kSettled) {
      Ack(h, h.id);
      counters_.duplicates_skipped.fetch_add(1);
    } else {
      HandBack(h, 0);
    }
  }
  for (Held& h : held) Release(h.msg.get());  // (all released above; the messages die here)
}

Status IngestWorker::ProcessFetch(std::vector<std::unique_ptr<FetchedMessage>> msgs) {
  std::vector<Held> held = TakeHold(std::move(msgs));
  // Until everything fetched is settled or released (or we stop): retry.
  // The first round always runs, even when Stop() came during the fetch: the
  // messages in hand are committed and acked before the worker stops.
  for (int round = 0; round == 0 || !stop_.load(); ++round) {
    state_.store(WorkerState::kCommitting);
    // 0. The connection for ledger look-ups and whole-chunk dead letters.
    // 1. Chunks already committed (a redelivery): ack without writing.
    // 2. Messages that cannot be processed (content: dead-lettered at once),
    //    and those tried too often (committed alone).
    // 3. Everything else, per entity, one transaction each; a message tried
    //    too often in a transaction of its own.
    const bool done = ReconnectMeta() && SkipCommitted(held) && ScreenChunks(held) && CommitGroups(held, round);
    if (done) break;
    state_.store(WorkerState::kBackingOff);
    Sleep(Backoff(options_.retry_max_backoff_ms, round));
  }
  ReleaseUnsettled(held);
  return Status::Ok();
}

Status IngestWorker::StartUp() {
  if (meta_conn_ == nullptr || !meta_conn_->IsOk()) {
    meta_conn_.reset();
    auto conn = PgConnection::Connect(options_.conninfo, "nomnom-worker", SessionOptions());
    if (!conn.ok()) return conn.status();
    meta_conn_ = std::move(conn).value();
  }
  if (Status s = EnsureBookkeepingTables(*meta_conn_); !s.ok()) return s;
  // Like the seed's worker, create the entities' tables on startup (a
  // mismatching existing table is reported now, and again per message).
  for (const Entity& e : entities_) {
    if (auto st = StateFor(e.name); !st.ok()) {
      Log(options_.worker_name, st.status().message());
      SetError(st.status().message());
    }
  }
  return Status::Ok();
}

Status IngestWorker::Run() {
  {
    std::lock_guard<std::mutex> lock(held_mu_);
    heartbeat_stop_ = false;
  }
  const int64_t ack_wait_ms = js_.config().ack_wait_ms;
  const int64_t interval = options_.heartbeat_ms > 0 ? options_.heartbeat_ms : std::max<int64_t>(ack_wait_ms / 3, 50);
  std::thread heartbeat([this, interval] { HeartbeatLoop(interval); });
  state_.store(WorkerState::kStarting);
  for (int attempt = 0; !stop_.load(); ++attempt) {
    Status s = StartUp();
    if (s.ok()) break;
    // Whatever it is (PostgreSQL away or restarting, tables that cannot be
    // created yet), a worker that gives up leaves the stream without a
    // consumer: retry until stopped.
    const std::string what = "cannot start: " + s.message() + " (retrying)";
    Log(options_.worker_name, what);
    SetError(what);
    state_.store(WorkerState::kBackingOff);
    Sleep(std::min<int64_t>(options_.retry_max_backoff_ms, int64_t{200} << std::min(attempt, 5)));
    state_.store(WorkerState::kStarting);
  }
  auto last_message = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    state_.store(WorkerState::kFetching);
    auto msgs = js_.Fetch(options_.fetch_messages, options_.fetch_max_bytes, options_.fetch_wait_ms);
    counters_.fetches.fetch_add(1);
    if (!msgs.ok()) {
      const std::string what = "fetch failed, will retry: " + msgs.status().message();
      Log(options_.worker_name, what);
      SetError(what);
      state_.store(WorkerState::kBackingOff);
      Sleep(500);
      continue;
    }
    if (msgs->empty()) {
      if (options_.idle_exit_ms > 0 &&
          std::chrono::steady_clock::now() - last_message > std::chrono::milliseconds(options_.idle_exit_ms)) {
        break;
      }
      continue;
    }
    last_message = std::chrono::steady_clock::now();
    if (Status s = ProcessFetch(std::move(msgs).value()); !s.ok()) {
      Log(options_.worker_name, s.message());
    }
  }
  {
    std::lock_guard<std::mutex> lock(held_mu_);
    heartbeat_stop_ = true;
  }
  heartbeat_cv_.notify_all();
  heartbeat.join();
  state_.store(WorkerState::kStopped);
  return Status::Ok();
}

}  // namespace nomnom
