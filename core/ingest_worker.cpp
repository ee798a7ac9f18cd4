#include "core/ingest_worker.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/ingest_format.h"
#include "core/ledger.h"
#include "core/ndjson_reader.h"
#include "core/rejects.h"
#include "core/row_encoder.h"

namespace nomnom {

namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void Log(const std::string& who, const std::string& what) {
  std::fprintf(stderr, "nomnom %s: %s\n", who.c_str(), what.c_str());
}

}  // namespace

struct IngestWorker::EntityState {
  const Entity* entity = nullptr;
  std::unique_ptr<CopySink> sink;
  std::unique_ptr<RowEncoder> encoder;
};

struct IngestWorker::Held {
  std::unique_ptr<FetchedMessage> msg;
  std::string id;
  std::string entity;
  std::string batch;
  uint32_t chunk_index = 0;
  uint32_t chunk_count = 1;
  bool done = false;  // acked (or handed to the dead-letter path)
  // A later copy of a chunk id another message of the same fetch has: it is
  // acked once that one is committed (or dead-lettered), never written itself.
  bool duplicate = false;
};

IngestWorker::IngestWorker(JetStreamClient& js, std::vector<Entity> entities, WorkerOptions options,
                           MetricsRegistry* metrics)
    : js_(js), entities_(std::move(entities)), options_(std::move(options)), metrics_(metrics) {}

IngestWorker::~IngestWorker() = default;

void IngestWorker::Sleep(int64_t ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!stop_.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(ms, 50)));
  }
}

Result<IngestWorker::EntityState*> IngestWorker::StateFor(const std::string& name) {
  auto it = states_.find(name);
  if (it != states_.end()) return it->second.get();
  const Entity* entity = FindEntity(entities_, name);
  if (entity == nullptr) return Status::NotFound("unknown entity '" + name + "'");
  auto conn = PgConnection::Connect(options_.conninfo, "nomnom-worker");
  if (!conn.ok()) return conn.status();
  if (Status s = EnsureTable(**conn, *entity, options_.mode); !s.ok()) return s;
  CopySinkOptions sopts;
  sopts.reconnect = true;
  sopts.max_transient_retries = 3;
  sopts.max_backoff_ms = options_.retry_max_backoff_ms;
  auto sink = CopySink::Create(std::move(conn).value(), *entity, options_.mode, sopts);
  if (!sink.ok()) return sink.status();
  auto state = std::make_unique<EntityState>();
  state->entity = entity;
  state->sink = std::move(sink).value();
  state->encoder = std::make_unique<RowEncoder>(*entity, RowEncoderOptions{});
  EntityState* raw = state.get();
  states_.emplace(name, std::move(state));
  return raw;
}

Status IngestWorker::DeadLetterWhole(Held& h, const std::string& error) {
  // Ledger row (dead) and dead letter in one transaction, so a redelivery
  // after a lost ack is recognised; then the stream copy; then Term.
  LedgerRow ledger;
  ledger.msg_id = h.id.empty() ? std::string("seq:") + std::to_string(h.msg->StreamSequence()) : h.id;
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
  dead.raw = std::string(h.msg->body());
  dead.deliveries = h.msg->NumDelivered();
  auto r = DeadLetterWholeChunk(*meta_conn_, ledger, dead);
  if (!r.ok()) return r.status();
  OutgoingMessage dl;
  dl.subject = js_.DeadLetterSubject(h.entity.empty() ? "unknown" : h.entity);
  dl.msg_id = (h.id.empty() ? "seq:" + std::to_string(h.msg->StreamSequence()) : h.id) + ":dead";
  dl.headers = {{std::string(kHeaderOriginalId), h.id}, {std::string(kHeaderError), error.substr(0, 1000)}};
  if (!h.batch.empty()) dl.headers.emplace_back(std::string(kHeaderBatch), h.batch);
  if (!h.entity.empty()) dl.headers.emplace_back(std::string(kHeaderEntity), h.entity);
  dl.body = std::string(h.msg->body());
  if (Status s = js_.Publish(dl); !s.ok())
    Log(options_.worker_name, "dead-letter stream publish failed (the table has it): " + s.message());
  h.msg->Term();
  h.done = true;
  counters_.messages_dead.fetch_add(1);
  Log(options_.worker_name, "dead-lettered " + h.id + ": " + error);
  return Status::Ok();
}

Status IngestWorker::CommitEntity(EntityState& es, std::vector<Held*>& held) {
  // Encode every chunk's rows into one part per chunk.
  std::vector<std::unique_ptr<EncodedPart>> parts;
  std::vector<std::string> padded_bodies(held.size());
  struct DeadRow {
    size_t held;
    uint64_t line;
    std::string error;
    std::string raw;
  };
  std::vector<DeadRow> dead_rows;
  std::string error;
  for (size_t i = 0; i < held.size(); ++i) {
    Held& h = *held[i];
    std::string& body = padded_bodies[i];
    body.assign(h.msg->body());
    if (!body.empty() && body.back() != '\n') body.push_back('\n');
    const size_t size = body.size();
    body.append(kChunkPadding, ' ');
    auto part = std::make_unique<EncodedPart>();
    const char* p = body.data();
    const char* end = p + size;
    uint64_t line_no = 0;
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      std::string_view line(p, static_cast<size_t>(nl - p));
      const size_t readable = static_cast<size_t>(body.data() + body.size() - p);
      p = nl + 1;
      ++line_no;
      if (line.empty()) continue;
      const size_t start = part->tuples.size();
      if (!es.encoder->Encode(line, readable, &part->tuples, nullptr, &error)) {
        dead_rows.push_back(DeadRow{i, line_no, error, std::string(line)});
        continue;
      }
      part->offsets.push_back(static_cast<uint32_t>(start));
      part->origins.push_back(RowOrigin{static_cast<uint32_t>(i), line_no, line});
    }
    parts.push_back(std::move(part));
  }
  std::vector<const EncodedPart*> views;
  for (const auto& p : parts) views.push_back(p.get());

  std::vector<DeadRow> pg_dead;
  bool ledger_conflict = false;
  auto before_commit = [&](PgConnection& conn, const std::vector<RejectedRow>& rejected) -> std::optional<PgError> {
    pg_dead.clear();
    for (const RejectedRow& r : rejected) {
      pg_dead.push_back(DeadRow{r.origin->source, r.origin->line, r.error, std::string(r.origin->raw)});
    }
    // Dead letters (encoder and PostgreSQL rejects) in this transaction.
    for (const auto* list : {&dead_rows, &pg_dead}) {
      for (const DeadRow& d : *list) {
        const Held& h = *held[d.held];
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
    // The ledger: one row per chunk, in one statement. A conflict means
    // another worker committed a chunk meanwhile: roll back rather than write
    // it twice.
    std::vector<LedgerRow> ledger(held.size());
    for (size_t i = 0; i < held.size(); ++i) {
      const Held* h = held[i];
      uint64_t encoder_dead = 0, pg_dead_rows = 0;
      for (const DeadRow& d : dead_rows) encoder_dead += d.held == i ? 1 : 0;
      for (const DeadRow& d : pg_dead) pg_dead_rows += d.held == i ? 1 : 0;
      LedgerRow& l = ledger[i];
      l.msg_id = h->id;
      l.batch_id = h->batch;
      l.chunk_index = h->chunk_index;
      l.chunk_count = h->chunk_count;
      l.entity = h->entity;
      l.rows_committed = parts[i]->rows() - pg_dead_rows;
      l.rows_dead = encoder_dead + pg_dead_rows;
      l.stream_seq = h->msg->StreamSequence();
    }
    // A conflict means another worker committed a chunk meanwhile: roll back
    // rather than write it twice.
    return InsertLedgerRows(conn, ledger, &ledger_conflict);
  };

  const auto started = std::chrono::steady_clock::now();
  for (int attempt = 0;; ++attempt) {
    auto result = es.sink->Write(
        views, [](const RowOrigin&, std::string_view) {}, before_commit);
    if (result.ok()) {
      if (metrics_ != nullptr) {
        metrics_->Histogram("nomnom_worker_commit_seconds", "Time to commit one fetched batch (COPY, merge, ledger)")
            .Observe(SecondsSince(started));
      }
      uint64_t committed_rows = result->inserted + result->updated + result->skipped;
      counters_.rows_committed.fetch_add(committed_rows);
      counters_.rows_inserted.fetch_add(result->inserted);
      counters_.rows_dead.fetch_add(dead_rows.size() + pg_dead.size());
      // Ack only after COMMIT: all but the last without waiting, the last one
      // synchronously (acks travel in order, so its confirmation covers the
      // others). A lost ack means a redelivery that the ledger absorbs.
      for (size_t i = 0; i < held.size(); ++i) {
        Held* h = held[i];
        Status s = i + 1 < held.size() ? h->msg->AckNoWait() : h->msg->Ack();
        if (!s.ok()) Log(options_.worker_name, "ack of " + h->id + " failed: " + s.message());
        h->done = true;
      }
      counters_.messages_committed.fetch_add(held.size());
      // Copies in the dead-letter stream, after the table has them.
      for (const auto* list : {&dead_rows, &pg_dead}) {
        for (const DeadRow& d : *list) {
          const Held& h = *held[d.held];
          OutgoingMessage dl;
          dl.subject = js_.DeadLetterSubject(h.entity);
          dl.msg_id = h.id + ":" + std::to_string(d.line);
          dl.headers = {{std::string(kHeaderOriginalId), h.id},
                        {std::string(kHeaderBatch), h.batch},
                        {std::string(kHeaderEntity), h.entity},
                        {std::string(kHeaderLine), std::to_string(d.line)},
                        {std::string(kHeaderError), d.error.substr(0, 1000)}};
          dl.body = d.raw;
          if (Status s = js_.Publish(dl); !s.ok()) {
            Log(options_.worker_name, "dead-letter stream publish failed (the table has it): " + s.message());
          }
        }
      }
      return Status::Ok();
    }
    if (ledger_conflict) return Status::Conflict(result.status().message());
    counters_.transient_errors.fetch_add(1);
    if (stop_.load()) return result.status();  // unacked: JetStream redelivers them
    Log(options_.worker_name, "commit failed, will retry: " + result.status().message());
    // Keep the messages ours while we wait, then see whether another worker
    // committed some of them meanwhile.
    for (Held* h : held) h->msg->InProgress();
    Sleep(std::min<int64_t>(options_.retry_max_backoff_ms, int64_t{100} << std::min(attempt, 6)));
    return result.status();
  }
}

Status IngestWorker::ProcessFetch(std::vector<std::unique_ptr<FetchedMessage>> msgs) {
  std::vector<Held> held(msgs.size());
  for (size_t i = 0; i < msgs.size(); ++i) {
    Held& h = held[i];
    h.msg = std::move(msgs[i]);
    h.id = h.msg->Header("Nats-Msg-Id").value_or("");
    h.entity = h.msg->Header(std::string(kHeaderEntity)).value_or("");
    if (h.entity.empty()) {
      const std::string_view subj = h.msg->subject();
      const size_t dot = subj.rfind('.');
      if (dot != std::string_view::npos) h.entity = std::string(subj.substr(dot + 1));
    }
    h.batch = h.msg->Header(std::string(kHeaderBatch)).value_or("");
    // Headers are bytes; what goes into PostgreSQL text must be UTF-8.
    h.id = EscapeInvalidUtf8(h.id);
    h.entity = EscapeInvalidUtf8(h.entity);
    h.batch = EscapeInvalidUtf8(h.batch);
    if (auto chunk = ParseChunkHeader(h.msg->Header(std::string(kHeaderChunk)).value_or(""))) {
      h.chunk_index = chunk->first;
      h.chunk_count = chunk->second;
    }
  }
  // Two copies of one chunk id (an Idempotency-Key re-sent after JetStream's
  // duplicate window while the first copy is still queued): only the first
  // copy (lowest stream sequence) is committed, the others are acked after it.
  // Both in one ledger insert would conflict with each other on every round.
  {
    std::map<std::string, Held*> first;
    for (Held& h : held) {
      if (h.id.empty()) continue;
      auto [it, inserted] = first.emplace(h.id, &h);
      if (inserted) continue;
      Held* keep = it->second;
      Held* later = &h;
      if (later->msg->StreamSequence() < keep->msg->StreamSequence()) std::swap(keep, later);
      it->second = keep;
      keep->duplicate = false;
      later->duplicate = true;
    }
  }
  // Until everything fetched is acked or dead-lettered (or we stop): retry.
  // The first round always runs, even when Stop() came during the fetch: the
  // messages in hand are committed and acked before the worker stops.
  for (int round = 0; round == 0 || !stop_.load(); ++round) {
    std::vector<std::string> ids;
    for (const Held& h : held) {
      if (!h.done && !h.duplicate && !h.id.empty()) ids.push_back(h.id);
    }
    // 1. Chunks already committed (a redelivery): ack without writing.
    if (!meta_conn_->IsOk()) {
      if (Status s = meta_conn_->Reconnect(); !s.ok()) {
        Log(options_.worker_name, s.message());
        for (Held& h : held) {
          if (!h.done) h.msg->InProgress();
        }
        Sleep(1000);
        continue;
      }
    }
    if (!ids.empty()) {
      auto found = FindInLedger(*meta_conn_, ids);
      if (!found.ok()) {
        Log(options_.worker_name, "ledger lookup failed, will retry: " + found.status().message());
        for (Held& h : held) {
          if (!h.done) h.msg->InProgress();
        }
        Sleep(std::min<int64_t>(options_.retry_max_backoff_ms, int64_t{100} << std::min(round, 6)));
        continue;
      }
      for (const std::string& id : *found) {
        for (Held& h : held) {
          if (!h.done && !h.duplicate && h.id == id) {
            h.msg->Ack();
            h.done = true;
            counters_.duplicates_skipped.fetch_add(1);
          }
        }
      }
    }
    // 2. Messages that cannot be processed, or have been tried too often.
    bool failed = false;
    for (Held& h : held) {
      if (h.done || h.duplicate) continue;
      std::string why;
      if (h.id.empty()) {
        why = "message has no Nats-Msg-Id header";
      } else if (FindEntity(entities_, h.entity) == nullptr) {
        why = "unknown entity '" + h.entity + "'";
      } else if (h.msg->NumDelivered() > static_cast<uint64_t>(options_.max_deliver)) {
        why = "delivered " + std::to_string(h.msg->NumDelivered()) + " times without being committed (max_deliver " +
              std::to_string(options_.max_deliver) + ")";
      }
      if (!why.empty()) {
        if (Status s = DeadLetterWhole(h, why); !s.ok()) {
          Log(options_.worker_name, "dead-lettering failed, will retry: " + s.message());
          failed = true;
        }
      }
    }
    // 3. Everything else, per entity, one transaction each.
    std::map<std::string, std::vector<Held*>> by_entity;
    for (Held& h : held) {
      if (!h.done && !h.duplicate) by_entity[h.entity].push_back(&h);
    }
    for (auto& [name, list] : by_entity) {
      auto es = StateFor(name);
      if (!es.ok()) {
        Log(options_.worker_name, "cannot prepare " + name + ", will retry: " + es.status().message());
        failed = true;
        continue;
      }
      if (Status s = CommitEntity(**es, list); !s.ok()) {
        failed = true;
        if (s.code() != StatusCode::kConnection && s.code() != StatusCode::kConflict) {
          // A state we cannot trust (e.g. the connection's staging table is
          // gone): start the entity's connection afresh next round.
          states_.erase(name);
        }
      }
    }
    if (!failed) {
      // Every first copy is committed, found in the ledger or dead-lettered.
      for (Held& h : held) {
        if (h.done || !h.duplicate) continue;
        if (Status s = h.msg->Ack(); !s.ok()) Log(options_.worker_name, "ack of " + h.id + " failed: " + s.message());
        h.done = true;
        counters_.duplicates_skipped.fetch_add(1);
      }
      return Status::Ok();
    }
    for (Held& h : held) {
      if (!h.done) h.msg->InProgress();
    }
    Sleep(std::min<int64_t>(options_.retry_max_backoff_ms, int64_t{100} << std::min(round, 6)));
  }
  // Stopping with messages that could not be committed (PostgreSQL down):
  // hand them back now rather than after the ack wait.
  for (Held& h : held) {
    if (!h.done) h.msg->Nak();
  }
  return Status::Ok();
}

Status IngestWorker::Run() {
  for (int attempt = 0; !stop_.load(); ++attempt) {
    auto conn = PgConnection::Connect(options_.conninfo, "nomnom-worker");
    if (conn.ok()) {
      meta_conn_ = std::move(conn).value();
      if (Status s = EnsureBookkeepingTables(*meta_conn_); !s.ok()) return s;
      // Like the seed's worker, create the entities' tables on startup (a
      // mismatching existing table is reported now, and again per message).
      for (const Entity& e : entities_) {
        if (auto st = StateFor(e.name); !st.ok()) Log(options_.worker_name, st.status().message());
      }
      break;
    }
    Log(options_.worker_name, conn.status().message() + " (retrying)");
    Sleep(std::min<int64_t>(options_.retry_max_backoff_ms, int64_t{200} << std::min(attempt, 5)));
  }
  auto last_message = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    auto msgs = js_.Fetch(options_.fetch_messages, options_.fetch_max_bytes, options_.fetch_wait_ms);
    counters_.fetches.fetch_add(1);
    if (!msgs.ok()) {
      Log(options_.worker_name, "fetch failed, will retry: " + msgs.status().message());
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
  return Status::Ok();
}

}  // namespace nomnom
