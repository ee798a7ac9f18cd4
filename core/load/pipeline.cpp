#include "core/load/pipeline.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "core/load/load.h"
#include "core/load/records.h"
#include "core/pg/copy_sink.h"
#include "core/pg/nested_sink.h"

namespace nomnom {

namespace load_internal {

Load::Load(const Entity& entity, const LoadOptions& options, LoadProgress* progress)
    : entity_(entity),
      options_(options),
      progress_(progress),
      hash_routing_(options.mode != ConflictMode::kError && options.jobs > 1),
      block_routing_(options.mode == ConflictMode::kError && options.jobs > 1),
      block_chunks_(std::max<size_t>(1, options.batch_bytes / std::max<size_t>(1, options.chunk_bytes))),
      // One chunk waiting per parser: the reader is far faster than they are.
      parse_queue_(static_cast<size_t>(options.parsers) + 1),
      chunk_pool_(ObjectPool<Chunk>::Create(kMaxIdle)),
      part_pool_(ObjectPool<EncodedPart>::Create(kMaxIdle)) {}

void Load::Reject(uint32_t source, uint64_t line, std::string_view raw, std::string error) {
  if (options_.fresh) {
    std::lock_guard<std::mutex> lock(mu_);
    rejected_lines_.emplace(source, line);
  }
  const uint64_t n = rejected_.fetch_add(1, std::memory_order_relaxed) + 1;
  progress_->rejected.fetch_add(1, std::memory_order_relaxed);
  if (options_.rejects != nullptr) {
    RejectRecord r{options_.inputs[source], line, std::move(error), std::string(raw)};
    if (Status s = options_.rejects->Write(r); !s.ok()) Fail(s);
  }
  if (options_.max_errors >= 0 && n > static_cast<uint64_t>(options_.max_errors)) {
    Fail(Status::Aborted("stopped: more than " + std::to_string(options_.max_errors) + " rows rejected" +
                         (options_.max_errors_name.empty() ? std::string() : " (" + options_.max_errors_name + ")")));
  }
}

std::string Load::TooLong(const std::string& what, uint64_t bytes) const {
  return what + std::to_string(bytes) + " bytes is longer than the limit of " +
         std::to_string(options_.max_line_bytes) + " bytes" +
         (options_.max_line_name.empty() ? std::string() : " (" + options_.max_line_name + ")") +
         "; raw holds its start";
}

void Load::RejectOversize(uint32_t source, const Chunk& chunk) {
  for (const OversizeLine& o : chunk.oversize) {
    progress_->rows_read.fetch_add(1, std::memory_order_relaxed);
    const std::string what = o.last_line > o.line ? "record on lines " + std::to_string(o.line) + "-" +
                                                        std::to_string(o.last_line) + " of at least "
                                                  : std::string(delimited_ ? "record" : "line") + " of ";
    Reject(source, o.line, o.prefix, TooLong(what, o.bytes));
  }
}

NdjsonReaderOptions Load::ReaderOptions() const {
  NdjsonReaderOptions ropts;
  ropts.chunk_bytes = options_.chunk_bytes;
  ropts.max_line_bytes = options_.max_line_bytes;
  return ropts;
}

void Load::ReaderMain() {
  const NdjsonReaderOptions ropts = ReaderOptions();
  uint64_t seq = 0;
  uint64_t raw_done = 0;  // raw bytes of inputs already finished
  for (uint32_t source = 0; source < options_.inputs.size() && !cancelled(); ++source) {
    // One of the two readers: NDJSON lines, or delimited records.
    std::unique_ptr<NdjsonReader> lines;
    std::unique_ptr<DelimitedReader> records;
    if (delimited_) {
      auto r = DelimitedReader::Open(options_.inputs[source], dialect_, ropts);
      if (!r.ok()) {
        Fail(r.status());
        break;
      }
      records = std::move(r).value();
    } else {
      auto r = NdjsonReader::Open(options_.inputs[source], ropts);
      if (!r.ok()) {
        Fail(r.status());
        break;
      }
      lines = std::move(r).value();
    }
    auto raw_bytes_read = [&] { return delimited_ ? records->raw_bytes_read() : lines->raw_bytes_read(); };
    bool first_chunk = true;
    std::shared_ptr<const HeaderDecision> columns;  // the input's header, if it has one
    for (;;) {
      // A recycled chunk keeps its buffer; Next() reuses it.
      std::shared_ptr<Chunk> chunk = chunk_pool_->AcquireShared();
      auto more = delimited_ ? records->Next(chunk.get()) : lines->Next(chunk.get());
      if (!more.ok()) {
        Fail(more.status());
        break;
      }
      RejectOversize(source, *chunk);
      progress_->raw_bytes_read.store(raw_done + raw_bytes_read(), std::memory_order_relaxed);
      if (!*more || cancelled()) break;
      ParseTask task;
      task.chunk = std::move(chunk);
      task.source = source;
      task.seq = seq++;
      if (delimited_ && first_chunk) {
        auto h = FindHeader(*task.chunk, dialect_, entity_, options_.header, options_.strict, options_.inputs[source]);
        if (!h.ok()) {
          Fail(h.status());
          break;
        }
        task.skip_bytes = h->bytes;
        task.skip_lines = h->lines;
        if (h->decision.is_header) columns = std::make_shared<HeaderDecision>(std::move(h->decision));
      }
      first_chunk = false;
      task.columns = columns;
      parse_queue_.Push(std::move(task));
    }
    raw_done += raw_bytes_read();
  }
  parse_queue_.Close();
}

void Load::Flush(RowSink* sink, std::vector<std::unique_ptr<EncodedPart>>* batch) {
  if (batch->empty()) return;
  if (!cancelled()) {
    std::vector<const EncodedPart*> parts;
    parts.reserve(batch->size());
    for (const auto& p : *batch) parts.push_back(p.get());
    auto result = sink->Write(parts, [this](const RowOrigin& o, std::string_view error) {
      Reject(o.source, o.line, o.raw, std::string(error));
    });
    if (!result.ok()) {
      Fail(result.status());
    } else {
      inserted_.fetch_add(result->inserted, std::memory_order_relaxed);
      updated_.fetch_add(result->updated, std::memory_order_relaxed);
      skipped_.fetch_add(result->skipped, std::memory_order_relaxed);
      retries_.fetch_add(result->retries, std::memory_order_relaxed);
      if (!result->tables.empty()) {
        std::lock_guard<std::mutex> lock(tables_mu_);
        if (tables_.size() < result->tables.size()) tables_.resize(result->tables.size());
        for (size_t t = 0; t < result->tables.size(); ++t) {
          tables_[t].inserted += result->tables[t].inserted;
          tables_[t].updated += result->tables[t].updated;
          tables_[t].skipped += result->tables[t].skipped;
          tables_[t].deleted += result->tables[t].deleted;
        }
      }
      progress_->rows_committed.fetch_add(result->inserted + result->updated + result->skipped,
                                          std::memory_order_relaxed);
    }
  }
  for (auto& p : *batch) Recycle(std::move(p));
  batch->clear();
}

void Load::Recycle(std::unique_ptr<EncodedPart> part) {
  part->tuples.clear();
  part->offsets.clear();
  part->origins.clear();
  part->chunk.reset();  // the chunk goes back to its pool once no part holds it
  part->seq = 0;
  part_pool_->Release(std::move(part));
}

void Load::SinkMain(RowSink* sink, BoundedQueue<SinkItem>* queue) {
  std::vector<std::unique_ptr<EncodedPart>> batch;
  size_t rows = 0, bytes = 0;
  std::map<uint64_t, std::unique_ptr<EncodedPart>> pending;  // hash routing: parts that arrived early
  uint64_t next_seq = 0;
  auto add = [&](std::unique_ptr<EncodedPart> part) {
    if (part->rows() == 0) {
      Recycle(std::move(part));
      return;
    }
    rows += part->rows();
    bytes += part->tuples.size();
    for (const auto& c : part->children) bytes += c->tuples.size();
    batch.push_back(std::move(part));
    if (rows >= options_.batch_rows || bytes >= options_.batch_bytes) {
      Flush(sink, &batch);
      rows = bytes = 0;
    }
  };
  SinkItem item;
  while (queue->Pop(&item)) {
    if (cancelled()) {
      pending.clear();
      batch.clear();
      continue;
    }
    if (!hash_routing_) {
      add(std::move(item.part));
      continue;
    }
    // Apply parts in input order so the last occurrence of a key wins.
    const uint64_t seq = item.part->seq;
    pending.emplace(seq, std::move(item.part));
    for (auto it = pending.find(next_seq); it != pending.end(); it = pending.find(next_seq)) {
      auto part = std::move(it->second);
      pending.erase(it);
      ++next_seq;
      add(std::move(part));
    }
  }
  Flush(sink, &batch);
}

LoadSummary Load::Run() {
  const auto started = std::chrono::steady_clock::now();
  if (Status s = Prepare(); !s.ok()) return Summarize(s, started);
  Sinks sinks;
  std::unique_ptr<FreshTable> fresh;
  if (Status s = OpenSinks(&sinks, &fresh); !s.ok()) return Summarize(s, started);
  PrepareQueues();
  RunThreads(sinks);
  Finish(&sinks, fresh.get());
  std::lock_guard<std::mutex> lock(mu_);
  return Summarize(first_error_, started);
}

Status Load::Prepare() {
  if (Status s = ValidateLoadOptions(options_, entity_, static_cast<bool>(options_.sink_factory)); !s.ok()) return s;
  format_ = ResolveInputFormat(options_.inputs, options_.format).value();  // valid: checked above
  delimited_ = format_ == InputFormat::kCsv || format_ == InputFormat::kTbl;
  dialect_ = format_ == InputFormat::kTbl ? DelimitedDialect::kTbl : DelimitedDialect::kCsv;
  // Inputs that cannot be opened fail the load before any table is touched.
  for (const auto& in : options_.inputs) {
    if (in == "-" && options_.fresh) {
      return Status::InvalidArgument(options_.fresh_name +
                                     " reads its inputs again to resolve duplicate keys,"
                                     " which standard input does not allow");
    }
  }
  for (const auto& in : options_.inputs) {
    if (in != "-" && ::access(in.c_str(), R_OK) != 0) {
      return Status::Io("cannot read " + in + ": " + std::strerror(errno));
    }
  }
  // Nested rows through a sink_factory (--via-nats): the lines are validated
  // with their elements and published whole; the workers nest them.
  if (nested_) return NestedEncoder::Check(entity_, options_.derived);
  return Status::Ok();
}

Status Load::OpenSinks(Sinks* sinks, std::unique_ptr<FreshTable>* fresh) {
  // Every sink is made first so configuration errors surface before any work.
  if (!options_.sink_factory) return OpenPgSinks(sinks, fresh);
  for (int i = 0; i < options_.jobs; ++i) {
    auto sink = options_.sink_factory(i);
    if (!sink.ok()) return sink.status();
    sinks->push_back(std::move(sink).value());
  }
  return Status::Ok();
}

Status Load::OpenPgSinks(Sinks* sinks, std::unique_ptr<FreshTable>* fresh) {
  std::vector<std::unique_ptr<PgConnection>> conns;
  for (int i = 0; i < options_.jobs; ++i) {
    auto conn = PgConnection::Connect(options_.conninfo);
    if (!conn.ok()) return conn.status();
    conns.push_back(std::move(conn).value());
  }
  // An interrupted fresh load of this table is cleaned up first (it left
  // the table without its key).
  auto recovered = RecoverInterruptedFreshLoad(*conns[0], entity_, options_.fresh_name);
  if (!recovered.ok()) return recovered.status();
  if (!recovered->empty() && options_.notice) options_.notice(*recovered);
  if (options_.create_table) {
    if (Status s = EnsureTable(*conns[0], entity_, options_.mode); !s.ok()) return s;
    for (const Entity* d : options_.derived) {
      if (Status s = EnsureTable(*conns[0], *d, options_.mode); !s.ok()) return s;
    }
  }
  if (options_.fresh) {
    auto control = PgConnection::Connect(options_.conninfo, "nomnom-fresh");
    if (!control.ok()) return control.status();
    auto began = FreshTable::Begin(std::move(control).value(), entity_, options_.fresh_name);
    if (!began.ok()) return began.status();
    *fresh = std::move(began).value();
  }
  for (auto& conn : conns) {
    if (nested_) {
      auto sink = NestedSink::Create(std::move(conn), entity_, options_.derived, options_.mode);
      if (!sink.ok()) return sink.status();
      sinks->push_back(std::move(sink).value());
      continue;
    }
    auto sink = CopySink::Create(std::move(conn), entity_, options_.mode);
    if (!sink.ok()) return sink.status();
    sinks->push_back(std::make_unique<CopyRowSink>(std::move(sink).value()));
  }
  return Status::Ok();
}

void Load::PrepareQueues() {
  uint64_t total = 0;
  bool known = true;
  for (const auto& in : options_.inputs) {
    std::error_code ec;
    const auto size = in == "-" ? 0 : std::filesystem::file_size(in, ec);
    if (in == "-" || ec) known = false;
    total += size;
  }
  progress_->raw_bytes_total.store(known ? total : 0);
  const size_t queue_depth = static_cast<size_t>(options_.parsers) + 2;
  if (hash_routing_ || block_routing_) {
    // A block's chunks arrive back to back: room for one whole block (and
    // one more), so the parser moves on to the next sink's block instead of
    // waiting. Deeper queues only hold more chunks in memory: the parser
    // encodes ~10x faster than a COPY backend ingests, so they are full anyway.
    const size_t depth = block_routing_ ? block_chunks_ + 1 : queue_depth;
    for (int i = 0; i < options_.jobs; ++i) sink_queues_.push_back(std::make_unique<BoundedQueue<SinkItem>>(depth));
  } else {
    sink_queues_.push_back(std::make_unique<BoundedQueue<SinkItem>>(queue_depth + static_cast<size_t>(options_.jobs)));
  }
  parsers_running_ = options_.parsers;
}

void Load::RunThreads(const Sinks& sinks) {
  std::vector<std::thread> threads;
  for (int i = 0; i < options_.jobs; ++i) {
    BoundedQueue<SinkItem>* q =
        sink_queues_.size() > 1 ? sink_queues_[static_cast<size_t>(i)].get() : sink_queues_[0].get();
    threads.emplace_back([this, sink = sinks[static_cast<size_t>(i)].get(), q] { SinkMain(sink, q); });
  }
  for (int i = 0; i < options_.parsers; ++i) threads.emplace_back([this] { ParserMain(); });
  ReaderMain();
  for (auto& t : threads) t.join();
}

void Load::Finish(Sinks* sinks, FreshTable* fresh) {
  for (auto& sink : *sinks) {
    if (Status s = sink->Finish(); !s.ok()) Fail(s);
  }
  sinks->clear();  // their connections end: nothing holds the table any more
  if (fresh != nullptr) FinishFresh(fresh);
  if (options_.rejects != nullptr) {
    if (Status s = options_.rejects->Flush(); !s.ok()) Fail(s);
  }
}

LoadSummary Load::Summarize(Status status, std::chrono::steady_clock::time_point started) {
  LoadSummary summary;
  summary.table = entity_.QualifiedTable();
  summary.status = std::move(status);
  if (nested_) {
    std::lock_guard<std::mutex> lock(tables_mu_);
    for (size_t t = 0; t <= options_.derived.size(); ++t) {
      LoadSummary::Table table;
      table.table = t == 0 ? entity_.QualifiedTable() : options_.derived[t - 1]->QualifiedTable();
      if (t < tables_.size()) {
        table.inserted = tables_[t].inserted;
        table.updated = tables_[t].updated;
        table.skipped = tables_[t].skipped;
        table.deleted = tables_[t].deleted;
      }
      summary.tables.push_back(std::move(table));
    }
  }
  summary.rows_read = progress_->rows_read.load();
  summary.bytes = progress_->bytes_read.load();
  summary.inserted = inserted_.load();
  summary.updated = updated_.load();
  summary.skipped = skipped_.load();
  summary.rejected = rejected_.load();
  summary.retries = retries_.load();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

}  // namespace load_internal

LoadSummary RunLoad(const Entity& entity, const LoadOptions& options, LoadProgress* progress) {
  LoadProgress local;
  load_internal::Load load(entity, options, progress != nullptr ? progress : &local);
  return load.Run();
}

}  // namespace nomnom
