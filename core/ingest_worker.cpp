#include "core/ingest_worker.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/copy_sink.h"
#include "core/ingest_format.h"
#include "core/ndjson_reader.h"
#include "core/row_encoder.h"

namespace nomnom {

namespace {

constexpr const char* kLedgerTable = "nomnom_ledger";
constexpr const char* kDeadTable = "nomnom_dead_letters";

// A PostgreSQL text[] literal of the given strings.
std::string TextArray(const std::vector<std::string>& items) {
  std::string s = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) s += ',';
    s += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
    s += '"';
  }
  return s + "}";
}

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void Log(const std::string& who, const std::string& what) {
  std::fprintf(stderr, "nomnom %s: %s\n", who.c_str(), what.c_str());
}

}  // namespace

Status EnsureBookkeepingTables(PgConnection& conn) {
  const std::string sql = std::string("CREATE TABLE IF NOT EXISTS ") + kLedgerTable +
                          " (msg_id text PRIMARY KEY, batch_id text NOT NULL, chunk_index int NOT NULL,"
                          " chunk_count int NOT NULL, entity text NOT NULL, rows_committed int NOT NULL,"
                          " rows_dead int NOT NULL DEFAULT 0, dead boolean NOT NULL DEFAULT false,"
                          " stream_seq bigint, committed_at timestamptz NOT NULL DEFAULT now());"
                          " CREATE INDEX IF NOT EXISTS nomnom_ledger_batch_idx ON " +
                          kLedgerTable + " (batch_id);" + " CREATE TABLE IF NOT EXISTS " + kDeadTable +
                          " (id bigserial PRIMARY KEY, msg_id text NOT NULL, batch_id text, entity text,"
                          " line int, error text NOT NULL, raw text, deliveries int,"
                          " failed_at timestamptz NOT NULL DEFAULT now());"
                          " CREATE INDEX IF NOT EXISTS nomnom_dead_letters_batch_idx ON " +
                          kDeadTable + " (batch_id)";
  for (int attempt = 0;; ++attempt) {
    auto err = conn.TryExec(sql);
    if (!err) return Status::Ok();
    // Two processes creating the tables at once collide on the catalog; the second try sees them.
    if ((err->sqlstate == "23505" || err->sqlstate == "42P07") && attempt < 3) continue;
    return ToStatus(*err, "cannot create the bookkeeping tables");
  }
}

Result<IngestStatus> LookupIngestStatus(PgConnection& conn, std::string_view id) {
  IngestStatus st;
  auto key = ParseStatusId(id);
  if (!key) return st;  // kUnknown
  // Before any worker ran, the tables do not exist: nothing is committed yet.
  auto exists = conn.Exec(std::string("SELECT to_regclass('") + kLedgerTable + "') IS NOT NULL AND to_regclass('" +
                          kDeadTable + "') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  if (exists->rows.at(0).at(0).value_or("f") != "t") return st;
  auto ledger =
      conn.ExecParams(std::string("SELECT count(*) FILTER (WHERE NOT dead), max(chunk_count), "
                                  "coalesce(sum(rows_committed), 0), to_char(max(committed_at) AT TIME ZONE 'UTC', "
                                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), count(*) FILTER (WHERE dead), "
                                  "coalesce(sum(rows_committed + rows_dead), 0) FROM ") +
                          kLedgerTable + " WHERE batch_id = $1",
                      {key->batch_id});
  if (!ledger.ok()) return ledger.status();
  const auto& row = ledger->rows.at(0);
  const uint64_t committed = std::stoull(row[0].value_or("0"));
  const uint64_t total = std::stoull(row[1].value_or("0"));
  const uint64_t dead_chunks = std::stoull(row[4].value_or("0"));
  st.chunks_committed = committed;
  st.chunks_total = total;
  st.rows = std::stoull(row[2].value_or("0"));
  st.committed_at = row[3].value_or("");
  const uint64_t chunk_rows = std::stoull(row[5].value_or("0"));
  if (key->kind == StatusKey::Kind::kMessage && total > 0) {
    // A message id names row i of a one-chunk batch: reject ids that cannot
    // exist (a batch of several chunks, or a row past the chunk's end).
    if (total != 1 || (dead_chunks == 0 && key->row >= chunk_rows)) return IngestStatus{};
  }
  std::string dead_sql =
      std::string("SELECT count(*), (array_agg(error ORDER BY id))[1] FROM ") + kDeadTable + " WHERE batch_id = $1";
  std::vector<std::optional<std::string>> params{key->batch_id};
  if (key->kind == StatusKey::Kind::kMessage) {
    // The row's own dead letter (line is 1-based), or its whole chunk's.
    dead_sql += " AND (line IS NULL OR line = $2)";
    params.push_back(std::to_string(key->row + 1));
  }
  auto dead = conn.ExecParams(dead_sql, params);
  if (!dead.ok()) return dead.status();
  st.rows_dead = std::stoull(dead->rows.at(0).at(0).value_or("0"));
  st.error = dead->rows.at(0).at(1).value_or("");
  if (key->kind == StatusKey::Kind::kMessage) {
    if (st.rows_dead > 0) {
      st.state = IngestStatus::State::kDead;
      st.rows = 0;
    } else if (committed > 0) {
      st.state = IngestStatus::State::kProcessed;
      st.rows = 1;
    }
    return st;
  }
  if (dead_chunks > 0 || (st.rows_dead > 0 && committed + dead_chunks == total && st.rows == 0)) {
    st.state = IngestStatus::State::kDead;
  } else if (total > 0 && committed == total) {
    st.state = IngestStatus::State::kProcessed;
  } else if (committed > 0) {
    st.state = IngestStatus::State::kPending;  // some chunks committed, others not yet
  }
  return st;
}

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
  const std::string sql = std::string("WITH l AS (INSERT INTO ") + kLedgerTable +
                          " (msg_id, batch_id, chunk_index, chunk_count, entity, rows_committed, dead, stream_seq)"
                          " VALUES ($1, $2, $3, $4, $5, 0, true, $6) ON CONFLICT (msg_id) DO NOTHING RETURNING 1)"
                          " INSERT INTO " +
                          kDeadTable +
                          " (msg_id, batch_id, entity, line, error, raw, deliveries)"
                          " SELECT $1, $2, $5, NULL, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM l)";
  auto r = meta_conn_->ExecParams(
      sql, {h.id.empty() ? std::string("seq:") + std::to_string(h.msg->StreamSequence()) : h.id,
            h.batch.empty() ? std::nullopt : std::optional<std::string>(h.batch), std::to_string(h.chunk_index),
            std::to_string(h.chunk_count), h.entity, std::to_string(h.msg->StreamSequence()), error,
            std::string(h.msg->body()), std::to_string(h.msg->NumDelivered())});
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
      part->origins.push_back(RowOrigin{static_cast<uint32_t>(i), line_no, line, h.msg->StreamSequence()});
    }
    parts.push_back(std::move(part));
  }
  std::vector<const EncodedPart*> views;
  for (const auto& p : parts) views.push_back(p.get());

  std::vector<DeadRow> pg_dead;
  auto before_commit = [&](PgConnection& conn, const std::vector<RejectedRow>& rejected) -> std::optional<PgError> {
    pg_dead.clear();
    for (const RejectedRow& r : rejected) {
      pg_dead.push_back(DeadRow{r.origin->source, r.origin->line, r.error, std::string(r.origin->raw)});
    }
    // Dead letters (encoder and PostgreSQL rejects) in this transaction.
    for (const auto* list : {&dead_rows, &pg_dead}) {
      for (const DeadRow& d : *list) {
        const Held& h = *held[d.held];
        auto err = conn.TryExecParams(
            std::string("INSERT INTO ") + kDeadTable +
                " (msg_id, batch_id, entity, line, error, raw, deliveries)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            {h.id, h.batch, h.entity, std::to_string(d.line), d.error, d.raw, std::to_string(h.msg->NumDelivered())});
        if (err) return err;
      }
    }
    // The ledger: one row per chunk, in one statement. A conflict means
    // another worker committed a chunk meanwhile: roll back rather than write
    // it twice.
    std::string sql = std::string("INSERT INTO ") + kLedgerTable +
                      " (msg_id, batch_id, chunk_index, chunk_count, entity, rows_committed, rows_dead, stream_seq)"
                      " VALUES ";
    std::vector<std::optional<std::string>> params;
    params.reserve(held.size() * 8);
    for (size_t i = 0; i < held.size(); ++i) {
      const Held* h = held[i];
      uint64_t encoder_dead = 0, pg_dead_rows = 0;
      for (const DeadRow& d : dead_rows) encoder_dead += d.held == i ? 1 : 0;
      for (const DeadRow& d : pg_dead) pg_dead_rows += d.held == i ? 1 : 0;
      const uint64_t committed = parts[i]->rows() - pg_dead_rows;
      const size_t base = params.size();
      sql += (i == 0 ? "(" : ", (");
      for (size_t k = 1; k <= 8; ++k) sql += "$" + std::to_string(base + k) + (k < 8 ? ", " : ")");
      for (std::string v : {h->id, h->batch, std::to_string(h->chunk_index), std::to_string(h->chunk_count), h->entity,
                            std::to_string(committed), std::to_string(encoder_dead + pg_dead_rows),
                            std::to_string(h->msg->StreamSequence())}) {
        params.emplace_back(std::move(v));
      }
    }
    sql += " ON CONFLICT (msg_id) DO NOTHING";
    PgRows rows;
    if (auto err = conn.TryExecParams(sql, params, &rows)) return err;
    if (rows.command_tuples != std::to_string(held.size())) {
      PgError dup;
      dup.sqlstate = "NNDUP";
      dup.message = "some of these chunks were committed by another worker meanwhile";
      return dup;
    }
    return std::nullopt;
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
    if (auto chunk = ParseChunkHeader(h.msg->Header(std::string(kHeaderChunk)).value_or(""))) {
      h.chunk_index = chunk->first;
      h.chunk_count = chunk->second;
    }
  }
  // Until everything fetched is acked or dead-lettered (or we stop): retry.
  // The first round always runs, even when Stop() came during the fetch: the
  // messages in hand are committed and acked before the worker stops.
  for (int round = 0; round == 0 || !stop_.load(); ++round) {
    std::vector<std::string> ids;
    for (const Held& h : held) {
      if (!h.done && !h.id.empty()) ids.push_back(h.id);
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
      auto found = meta_conn_->ExecParams(
          std::string("SELECT msg_id FROM ") + kLedgerTable + " WHERE msg_id = ANY($1::text[])", {TextArray(ids)});
      if (!found.ok()) {
        Log(options_.worker_name, "ledger lookup failed, will retry: " + found.status().message());
        for (Held& h : held) {
          if (!h.done) h.msg->InProgress();
        }
        Sleep(std::min<int64_t>(options_.retry_max_backoff_ms, int64_t{100} << std::min(round, 6)));
        continue;
      }
      for (const auto& row : found->rows) {
        for (Held& h : held) {
          if (!h.done && h.id == row[0].value_or("")) {
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
      if (h.done) continue;
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
      if (!h.done) by_entity[h.entity].push_back(&h);
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
        if (s.code() != StatusCode::kConnection && s.message().find("NNDUP") == std::string::npos) {
          // A state we cannot trust (e.g. the connection's staging table is
          // gone): start the entity's connection afresh next round.
          states_.erase(name);
        }
      }
    }
    if (!failed) return Status::Ok();
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
