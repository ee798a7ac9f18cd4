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
#include <set>
#include <thread>

#include "core/base/bounded_queue.h"
#include "core/base/object_pool.h"
#include "core/format/delimited_encoder.h"
#include "core/format/delimited_parser.h"
#include "core/format/ndjson_reader.h"
#include "core/format/nested_encoder.h"
#include "core/format/pg_binary.h"
#include "core/format/row_encoder.h"
#include "core/pg/copy_sink.h"
#include "core/pg/fresh_table.h"
#include "core/pg/nested_sink.h"
#include "core/queue/chunk_writer.h"

namespace nomnom {

namespace {

struct ParseTask {
  std::shared_ptr<const Chunk> chunk;
  uint32_t source = 0;
  uint64_t seq = 0;
  // CSV and .tbl: the header record at the chunk's start, not to be loaded
  // (its bytes and line breaks), and the input's columns when it has a
  // header (null: the entity's fields in order).
  size_t skip_bytes = 0;
  uint64_t skip_lines = 0;
  std::shared_ptr<const HeaderDecision> columns;
};

struct SinkItem {
  std::unique_ptr<EncodedPart> part;
};

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

// A delimited record's raw text: its bytes without the line break ending it.
std::string_view RecordRaw(std::string_view record) {
  if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
  if (!record.empty() && record.back() == '\r') record.remove_suffix(1);
  return record;
}

// Calls fn(line_no, raw, parsed) for every non-blank record of a chunk of
// whole delimited records (core/format/delimited_reader.h) from byte skip_bytes on,
// which is line first_line; *fields holds the record when `parsed`, else
// *error says what is wrong with it (naming the column, and the line when it
// is not the record's first). Stops when fn returns false (then returns false).
template <typename Fn>
bool ForEachRecordIn(std::string_view text, uint64_t first_line, DelimitedParser* parser,
                     std::vector<DelimitedField>* fields, std::string* error, Fn&& fn) {
  size_t off = 0;
  uint64_t line = first_line;
  while (off < text.size()) {
    size_t consumed = 0;
    uint64_t lines = 0;
    error->clear();
    const auto r = parser->Next(text.substr(off), /*at_end=*/true, line, fields, &consumed, &lines, error);
    if (consumed == 0) consumed = text.size() - off;  // cannot happen with at_end; never loop
    const std::string_view raw = RecordRaw(text.substr(off, consumed));
    const uint64_t this_line = line;
    off += consumed;
    line += lines;
    if (raw.empty() || IsBlank(raw)) continue;
    const bool parsed = r == DelimitedParser::Result::kRecord;
    if (!parsed) {
      // The reject names the line already: "line N, " only when it differs.
      const std::string own = "line " + std::to_string(this_line) + ", ";
      if (error->compare(0, own.size(), own) == 0) error->erase(0, own.size());
    }
    if (!fn(this_line, raw, parsed)) return false;
  }
  return true;
}

// Where the records of one delimited input start: after its header, if its
// first non-blank record is one (DecideHeader). `chunk` is the input's first.
struct HeaderSkip {
  HeaderDecision decision;
  size_t bytes = 0;    // the header's end in the chunk
  uint64_t lines = 0;  // line breaks up to there
};
Result<HeaderSkip> FindHeader(const Chunk& chunk, DelimitedDialect dialect, const Entity& entity, HeaderMode mode,
                              bool strict, const std::string& path) {
  HeaderSkip h;
  if (mode == HeaderMode::kNo) return h;
  DelimitedParser parser(dialect);
  std::vector<DelimitedField> fields;
  std::string error;
  const std::string_view text = chunk.data.view();
  size_t off = 0;
  uint64_t line = chunk.first_line;
  while (off < text.size()) {
    size_t consumed = 0;
    uint64_t lines = 0;
    error.clear();
    const auto r = parser.Next(text.substr(off), true, line, &fields, &consumed, &lines, &error);
    if (consumed == 0) break;
    const std::string_view raw = RecordRaw(text.substr(off, consumed));
    if (raw.empty() || IsBlank(raw)) {
      off += consumed;
      line += lines;
      continue;
    }
    auto d = DecideHeader(entity, mode, strict, path, line, r == DelimitedParser::Result::kRecord, error, fields);
    if (!d.ok()) return d.status();
    h.decision = std::move(d).value();
    if (h.decision.is_header) {
      h.bytes = off + consumed;
      h.lines = line + lines - chunk.first_line;
    }
    return h;
  }
  return h;
}

// The values of a record to encode: `fields` itself, or, under a header with
// columns the entity does not have, the others (in *kept). Null with *error
// set when the record has not as many values as the header.
const std::vector<DelimitedField>* KeptFields(const HeaderDecision* header, const std::vector<DelimitedField>& fields,
                                              std::vector<DelimitedField>* kept, std::string* error) {
  if (header == nullptr || header->kept.empty()) return &fields;
  if (fields.size() != header->width) {
    *error = "expected " + std::to_string(header->width) + " columns, found " + std::to_string(fields.size());
    return nullptr;
  }
  kept->clear();
  for (size_t c : header->kept) kept->push_back(fields[c]);
  return kept;
}

// Calls fn(line_no, raw, parsed, fields, columns) for every non-blank record
// after the header of one delimited input (columns: the header's, or null).
// Stops when fn returns false.
template <typename Fn>
Status ForEachRecord(const std::string& path, const NdjsonReaderOptions& ropts, DelimitedDialect dialect,
                     const Entity& entity, HeaderMode mode, bool strict, Fn&& fn) {
  auto reader = DelimitedReader::Open(path, dialect, ropts);
  if (!reader.ok()) return reader.status();
  DelimitedParser parser(dialect);
  std::vector<DelimitedField> fields;
  std::string error;
  Chunk chunk;
  bool first = true;
  std::shared_ptr<const HeaderDecision> columns;
  for (;;) {
    auto more = (*reader)->Next(&chunk);
    if (!more.ok()) return more.status();
    if (!*more) return Status::Ok();
    size_t skip = 0;
    uint64_t skip_lines = 0;
    if (first) {
      first = false;
      auto h = FindHeader(chunk, dialect, entity, mode, strict, path);
      if (!h.ok()) return h.status();
      skip = h->bytes;
      skip_lines = h->lines;
      if (h->decision.is_header) columns = std::make_shared<HeaderDecision>(std::move(h->decision));
    }
    const bool go_on = ForEachRecordIn(
        chunk.data.view().substr(skip), chunk.first_line + skip_lines, &parser, &fields, &error,
        [&](uint64_t line, std::string_view raw, bool parsed) { return fn(line, raw, parsed, fields, columns.get()); });
    if (!go_on) return Status::Ok();
  }
}

// Calls fn(line_no, line, readable) for every non-blank line of one input
// (lines longer than max_line_bytes are skipped), where `readable` bytes from
// line.data() may be read. Stops when fn returns false.
template <typename Fn>
Status ForEachLine(const std::string& path, const NdjsonReaderOptions& ropts, Fn&& fn) {
  auto reader = NdjsonReader::Open(path, ropts);
  if (!reader.ok()) return reader.status();
  Chunk chunk;
  for (;;) {
    auto more = (*reader)->Next(&chunk);
    if (!more.ok()) return more.status();
    if (!*more) return Status::Ok();
    bool stopped = false;
    ForEachPaddedLine(std::string_view(chunk.data.data(), chunk.data.size() + kChunkPadding), chunk.data.size(),
                      [&](std::string_view line, uint64_t n, size_t readable) {
                        if (line.empty() || IsBlank(line)) return true;
                        stopped = !fn(chunk.first_line + n - 1, line, readable);
                        return !stopped;
                      });
    if (stopped) return Status::Ok();
  }
}

class Load {
 public:
  Load(const Entity& entity, const LoadOptions& options, LoadProgress* progress)
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

  LoadSummary Run();

 private:
  void ReaderMain();
  void ParserMain();
  void ParseNested(const ParseTask& task, NestedEncoder* encoder);
  void ParseDelimited(const ParseTask& task, DelimitedParser* parser, DelimitedEncoder* encoder);
  // A parser's parts for one chunk: one per sink with hash routing, else one
  // (reserved for the whole chunk).
  std::vector<std::unique_ptr<EncodedPart>> AcquireParts(const ParseTask& task);
  // Records a row encoded at `start` of parts[0]'s tuples (no hash routing)
  // or into `scratch` (hash routing: copied to the part of its key); returns
  // the part it went to, for its origin.
  EncodedPart* PlaceRow(const std::vector<std::unique_ptr<EncodedPart>>& parts, const ByteBuffer& scratch, size_t start,
                        uint64_t key_hash) const;
  // Counts the chunk's progress and hands its parts to the sinks.
  void SendParts(const ParseTask& task, uint64_t rows, std::vector<std::unique_ptr<EncodedPart>>* parts);
  void ParserDelimitedMain();
  // Sets the encoder's columns to an input's (null: the entity's fields).
  Status UseColumns(DelimitedEncoder* encoder, const HeaderDecision* columns) const;
  void SinkMain(RowSink* sink, BoundedQueue<SinkItem>* queue);
  void Flush(RowSink* sink, std::vector<std::unique_ptr<EncodedPart>>* batch);
  void Recycle(std::unique_ptr<EncodedPart> part);
  // Fresh loads: builds the key (or undoes the load after an error).
  void FinishFresh(FreshTable* fresh);
  Status Restage(PgConnection& conn, const std::string& copy_sql);
  Status RejectDuplicates(const std::vector<DuplicateRow>& duplicates, const std::string& key_name);

  void Fail(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_error_.ok()) first_error_ = std::move(s);
    cancelled_.store(true, std::memory_order_relaxed);
  }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  void Reject(uint32_t source, uint64_t line, std::string_view raw, std::string error);

  const Entity& entity_;
  const LoadOptions& options_;
  LoadProgress* progress_;
  const bool hash_routing_;
  // kError with several jobs: runs of block_chunks_ consecutive chunks go to
  // one sink, so each batch covers one stretch of the input. Inputs are often
  // sorted by key; interleaving small chunks between connections would make
  // them insert into the same index pages and wait on each other.
  const bool block_routing_;
  const size_t block_chunks_;

  // Chunks and encoded parts are recycled rather than freed: a load allocates
  // (and the kernel faults in) only as many buffers as are ever in flight at
  // once, however large the input. In flight: the queues' capacities, one per
  // thread and each sink's batch; kMaxIdle is far above that.
  static constexpr size_t kMaxIdle = 1024;

  BoundedQueue<ParseTask> parse_queue_;
  std::shared_ptr<ObjectPool<Chunk>> chunk_pool_;
  std::shared_ptr<ObjectPool<EncodedPart>> part_pool_;
  // kError (or one job): one queue shared by all sinks. Hash routing: one per sink.
  std::vector<std::unique_ptr<BoundedQueue<SinkItem>>> sink_queues_;
  std::atomic<int> parsers_running_{0};

  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  Status first_error_;  // guarded by mu_
  // Fresh loads: input positions of rejected rows (source, line), which
  // Restage must not send again.
  std::set<std::pair<uint32_t, uint64_t>> rejected_lines_;  // guarded by mu_

  std::atomic<uint64_t> inserted_{0}, updated_{0}, skipped_{0}, rejected_{0}, retries_{0};
  const bool nested_ = !options_.derived.empty();
  // The inputs' format (set by Run before any thread starts).
  InputFormat format_ = InputFormat::kNdjson;
  bool delimited_ = false;
  DelimitedDialect dialect_ = DelimitedDialect::kCsv;
  std::mutex tables_mu_;
  std::vector<BatchResult::Table> tables_;  // nested loads: per table; guarded by tables_mu_
};

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

void Load::ReaderMain() {
  NdjsonReaderOptions ropts;
  ropts.chunk_bytes = options_.chunk_bytes;
  ropts.max_line_bytes = options_.max_line_bytes;
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
      for (const OversizeLine& o : chunk->oversize) {
        progress_->rows_read.fetch_add(1, std::memory_order_relaxed);
        const std::string what = o.last_line > o.line ? "record on lines " + std::to_string(o.line) + "-" +
                                                            std::to_string(o.last_line) + " of at least "
                                                      : std::string(delimited_ ? "record" : "line") + " of ";
        Reject(source, o.line, o.prefix,
               what + std::to_string(o.bytes) + " bytes is longer than the limit of " +
                   std::to_string(options_.max_line_bytes) + " bytes" +
                   (options_.max_line_name.empty() ? std::string() : " (" + options_.max_line_name + ")") +
                   "; raw holds its start");
      }
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

std::vector<std::unique_ptr<EncodedPart>> Load::AcquireParts(const ParseTask& task) {
  std::vector<std::unique_ptr<EncodedPart>> parts(hash_routing_ ? sink_queues_.size() : 1);
  const Chunk& chunk = *task.chunk;
  for (auto& p : parts) {
    p = part_pool_->Acquire();  // recycled: its buffers are empty but keep their capacity
    p->seq = task.seq;
    p->chunk = task.chunk;
    if (!hash_routing_) {
      p->tuples.Reserve(chunk.data.size() + chunk.data.size() / 4);
      p->offsets.reserve(chunk.line_count);
      p->origins.reserve(chunk.line_count);
    }
  }
  return parts;
}

EncodedPart* Load::PlaceRow(const std::vector<std::unique_ptr<EncodedPart>>& parts, const ByteBuffer& scratch,
                            size_t start, uint64_t key_hash) const {
  if (!hash_routing_) {
    // Encoded straight into the one part, at `start`.
    parts[0]->offsets.push_back(static_cast<uint32_t>(start));
    return parts[0].get();
  }
  EncodedPart* target = parts[(key_hash >> 7) % parts.size()].get();
  target->offsets.push_back(static_cast<uint32_t>(target->tuples.size()));
  target->tuples.Append(scratch.data(), scratch.size());
  return target;
}

void Load::SendParts(const ParseTask& task, uint64_t rows, std::vector<std::unique_ptr<EncodedPart>>* parts) {
  const size_t nsinks = sink_queues_.size();
  progress_->rows_read.fetch_add(rows, std::memory_order_relaxed);
  progress_->bytes_read.fetch_add(task.chunk->data.size(), std::memory_order_relaxed);
  if (hash_routing_) {
    for (size_t i = 0; i < nsinks; ++i) sink_queues_[i]->Push(SinkItem{std::move((*parts)[i])});
  } else {
    const size_t q = block_routing_ ? (task.seq / block_chunks_) % nsinks : 0;
    sink_queues_[q]->Push(SinkItem{std::move((*parts)[0])});
  }
}

void Load::ParseNested(const ParseTask& task, NestedEncoder* encoder) {
  const size_t nsinks = sink_queues_.size();
  const size_t nchild = options_.derived.size();
  const Chunk& chunk = *task.chunk;
  std::vector<std::unique_ptr<EncodedPart>> parts(hash_routing_ ? nsinks : 1);
  for (auto& p : parts) {
    p = std::make_unique<EncodedPart>();
    p->seq = task.seq;
    p->chunk = task.chunk;
    for (size_t d = 0; d < nchild; ++d) {
      p->children.push_back(std::make_unique<EncodedPart>());
      p->children.back()->seq = task.seq;
      p->children.back()->chunk = task.chunk;
    }
  }
  // Each line is encoded into these, then appended to its part.
  ByteBuffer root;
  std::vector<ByteBuffer> child(nchild);
  std::vector<std::vector<uint32_t>> child_offsets(nchild);
  NestedEncoder::Output out;
  out.root = &root;
  for (size_t d = 0; d < nchild; ++d) {
    out.children.push_back(&child[d]);
    out.child_offsets.push_back(&child_offsets[d]);
  }
  std::string error;
  uint64_t rows = 0;
  ForEachPaddedLine(std::string_view(chunk.data.data(), chunk.data.size() + kChunkPadding), chunk.data.size(),
                    [&](std::string_view line, uint64_t n, size_t readable) {
                      const uint64_t this_line = chunk.first_line + n - 1;
                      if (line.empty() || IsBlank(line)) return true;
                      ++rows;
                      std::string_view raw = line;
                      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
                      root.clear();
                      for (size_t d = 0; d < nchild; ++d) {
                        child[d].clear();
                        child_offsets[d].clear();
                      }
                      uint64_t key_hash = 0;
                      if (!encoder->Encode(line, readable, out, hash_routing_ ? &key_hash : nullptr, &error)) {
                        Reject(task.source, this_line, raw, std::move(error));
                        error.clear();
                        return true;
                      }
                      EncodedPart* target = parts[hash_routing_ ? (key_hash >> 7) % nsinks : 0].get();
                      const RowOrigin origin{task.source, this_line, raw};
                      for (size_t d = 0; d < nchild; ++d) {
                        EncodedPart& c = *target->children[d];
                        c.by_parent.push_back(static_cast<uint32_t>(c.rows()));
                        const uint32_t base = static_cast<uint32_t>(c.tuples.size());
                        for (uint32_t off : child_offsets[d]) {
                          c.offsets.push_back(base + off);
                          c.origins.push_back(origin);
                        }
                        c.tuples.Append(child[d].data(), child[d].size());
                      }
                      target->offsets.push_back(static_cast<uint32_t>(target->tuples.size()));
                      target->tuples.Append(root.data(), root.size());
                      target->origins.push_back(origin);
                      return true;
                    });
  for (auto& part : parts) {
    for (auto& c : part->children) c->by_parent.push_back(static_cast<uint32_t>(c->rows()));
  }
  SendParts(task, rows, &parts);
}

Status Load::UseColumns(DelimitedEncoder* encoder, const HeaderDecision* columns) const {
  if (columns != nullptr) return encoder->SetColumns(columns->columns);
  std::vector<std::string> names;
  for (const Field& f : entity_.fields) names.push_back(f.name);
  return encoder->SetColumns(names);
}

void Load::ParseDelimited(const ParseTask& task, DelimitedParser* parser, DelimitedEncoder* encoder) {
  const Chunk& chunk = *task.chunk;
  std::vector<std::unique_ptr<EncodedPart>> parts = AcquireParts(task);
  ByteBuffer scratch;
  std::vector<DelimitedField> fields, kept;
  std::string error;
  uint64_t rows = 0;
  // Rejects a record longer than the limit (true), keeping only its start.
  auto too_long = [&](uint64_t line, std::string_view raw) {
    if (raw.size() <= options_.max_line_bytes) return false;
    Reject(task.source, line, raw.substr(0, 256),
           "record of " + std::to_string(raw.size()) + " bytes is longer than the limit of " +
               std::to_string(options_.max_line_bytes) + " bytes" +
               (options_.max_line_name.empty() ? std::string() : " (" + options_.max_line_name + ")") +
               "; raw holds its start");
    return true;
  };
  const std::string_view text = chunk.data.view().substr(task.skip_bytes);
  if (task.columns == nullptr || task.columns->kept.empty()) {
    // Every column is kept: each record is parsed and encoded in one pass
    // (DelimitedEncoder::ParseAndEncode), with the same rows, rejects and
    // messages as the ForEachRecordIn path below; what a blank or too long
    // record encoded is taken back.
    size_t off = 0;
    uint64_t line = chunk.first_line + task.skip_lines;
    while (off < text.size()) {
      size_t consumed = 0;
      uint64_t lines = 0;
      error.clear();
      uint64_t key_hash = 0;
      ByteBuffer* out = hash_routing_ ? &scratch : &parts[0]->tuples;
      if (hash_routing_) scratch.clear();
      const size_t start = out->size();
      const auto r = encoder->ParseAndEncode(parser, text.substr(off), /*at_end=*/true, line, out,
                                             hash_routing_ ? &key_hash : nullptr, &consumed, &lines, &error);
      if (consumed == 0) consumed = text.size() - off;  // cannot happen with at_end; never loop
      const std::string_view raw = RecordRaw(text.substr(off, consumed));
      const uint64_t this_line = line;
      off += consumed;
      line += lines;
      if (raw.empty() || IsBlank(raw)) {
        out->Truncate(start);
        continue;
      }
      ++rows;
      if (too_long(this_line, raw)) {
        out->Truncate(start);
        continue;
      }
      if (r == DelimitedEncoder::Fused::kParseError || r == DelimitedEncoder::Fused::kNeedMore) {
        // The reject names the line already: "line N, " only when it differs.
        const std::string own = "line " + std::to_string(this_line) + ", ";
        if (error.compare(0, own.size(), own) == 0) error.erase(0, own.size());
        Reject(task.source, this_line, raw, std::move(error));
        continue;
      }
      if (r == DelimitedEncoder::Fused::kRejected) {
        Reject(task.source, this_line, raw, std::move(error));
        continue;
      }
      PlaceRow(parts, scratch, start, key_hash)->origins.push_back(RowOrigin{task.source, this_line, raw});
    }
    SendParts(task, rows, &parts);
    return;
  }
  ForEachRecordIn(
      text, chunk.first_line + task.skip_lines, parser, &fields, &error,
      [&](uint64_t line, std::string_view raw, bool parsed) {
        ++rows;
        if (too_long(line, raw)) return true;
        if (!parsed) {
          Reject(task.source, line, raw, std::move(error));
          return true;
        }
        uint64_t key_hash = 0;
        ByteBuffer* out = hash_routing_ ? &scratch : &parts[0]->tuples;
        if (hash_routing_) scratch.clear();
        const size_t start = out->size();
        const std::vector<DelimitedField>* values = KeptFields(task.columns.get(), fields, &kept, &error);
        if (values == nullptr || !encoder->Encode(*values, out, hash_routing_ ? &key_hash : nullptr, &error)) {
          Reject(task.source, line, raw, std::move(error));
          return true;
        }
        PlaceRow(parts, scratch, start, key_hash)->origins.push_back(RowOrigin{task.source, line, raw});
        return true;
      });
  SendParts(task, rows, &parts);
}

void Load::ParserDelimitedMain() {
  DelimitedParser parser(dialect_);
  DelimitedEncoder encoder(entity_);
  int64_t source = -1;  // whose columns the encoder has
  ParseTask task;
  while (parse_queue_.Pop(&task)) {
    if (cancelled()) continue;
    if (static_cast<int64_t>(task.source) != source) {
      if (Status s = UseColumns(&encoder, task.columns.get()); !s.ok()) {
        Fail(s);
        continue;
      }
      source = task.source;
    }
    ParseDelimited(task, &parser, &encoder);
  }
  if (parsers_running_.fetch_sub(1) == 1) {
    for (auto& q : sink_queues_) q->Close();
  }
}

void Load::ParserMain() {
  if (delimited_) {
    ParserDelimitedMain();
    return;
  }
  if (nested_) {
    NestedEncoder encoder(entity_, options_.derived, RowEncoderOptions{options_.strict});
    ParseTask task;
    while (parse_queue_.Pop(&task)) {
      if (!cancelled()) ParseNested(task, &encoder);
    }
    if (parsers_running_.fetch_sub(1) == 1) {
      for (auto& q : sink_queues_) q->Close();
    }
    return;
  }
  RowEncoder encoder(entity_, RowEncoderOptions{options_.strict});
  ByteBuffer scratch;
  std::string error;
  ParseTask task;
  while (parse_queue_.Pop(&task)) {
    if (cancelled()) continue;
    const Chunk& chunk = *task.chunk;
    std::vector<std::unique_ptr<EncodedPart>> parts = AcquireParts(task);
    uint64_t rows = 0;
    ForEachPaddedLine(
        std::string_view(chunk.data.data(), chunk.data.size() + kChunkPadding), chunk.data.size(),
        [&](std::string_view line, uint64_t n, size_t readable) {
          const uint64_t this_line = chunk.first_line + n - 1;
          if (line.empty() || ((line[0] == ' ' || line[0] == '\t' || line[0] == '\r') && IsBlank(line))) return true;
          ++rows;
          uint64_t key_hash = 0;
          ByteBuffer* out = hash_routing_ ? &scratch : &parts[0]->tuples;
          if (hash_routing_) scratch.clear();
          const size_t start = out->size();
          if (!encoder.Encode(line, readable, out, hash_routing_ ? &key_hash : nullptr, &error)) {
            std::string_view raw = line;
            if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
            Reject(task.source, this_line, raw, std::move(error));
            error.clear();
            return true;
          }
          std::string_view raw = line;
          if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
          PlaceRow(parts, scratch, start, key_hash)->origins.push_back(RowOrigin{task.source, this_line, raw});
          return true;
        });
    SendParts(task, rows, &parts);
  }
  // The last parser out tells the sinks that no more parts will come.
  if (parsers_running_.fetch_sub(1) == 1) {
    for (auto& q : sink_queues_) q->Close();
  }
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
  LoadSummary summary;
  summary.table = entity_.QualifiedTable();
  const auto started = std::chrono::steady_clock::now();
  auto finish = [&](Status s) {
    summary.status = std::move(s);
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
  };
  if (options_.inputs.empty()) return finish(Status::InvalidArgument("no input files"));
  if (options_.jobs < 1 || options_.parsers < 1)
    return finish(Status::InvalidArgument("the numbers of loading connections and parser threads must be at least 1"));
  {
    auto format = ResolveInputFormat(options_.inputs, options_.format);
    if (!format.ok()) return finish(format.status());
    format_ = *format;
    delimited_ = format_ == InputFormat::kCsv || format_ == InputFormat::kTbl;
    dialect_ = format_ == InputFormat::kTbl ? DelimitedDialect::kTbl : DelimitedDialect::kCsv;
    const std::string name = InputFormatName(format_);
    if (delimited_ && nested_) {
      std::string derived;
      for (const Entity* d : options_.derived) derived += (derived.empty() ? "" : ", ") + d->name;
      return finish(Status::InvalidArgument(name + " input is flat rows of one table; entity " + entity_.name +
                                            " also fills its derived entities' tables (" + derived +
                                            "), which only NDJSON input can carry"));
    }
    if (delimited_ && options_.sink_factory) {
      return finish(Status::InvalidArgument(name + " input loads into PostgreSQL only (rows published for the " +
                                            "workers are JSON: convert it to NDJSON)"));
    }
  }

  if (options_.fresh) {
    const std::string& what = options_.fresh_name;
    if (options_.sink_factory) return finish(Status::InvalidArgument(what + " loads into PostgreSQL only"));
    if (nested_) {
      return finish(Status::InvalidArgument(what + " loads one table; " + entity_.name +
                                            " fills its derived entities' tables too (load without " + what + ")"));
    }
    if (options_.mode != ConflictMode::kError) {
      return finish(Status::InvalidArgument(what + " has conflict mode error's semantics; it cannot be combined with " +
                                            std::string(ConflictModeName(options_.mode))));
    }
    for (const auto& in : options_.inputs) {
      if (in == "-") {
        return finish(Status::InvalidArgument(what + " reads its inputs again to resolve duplicate keys,"
                                                     " which standard input does not allow"));
      }
    }
  }
  // Inputs that cannot be opened fail the load before any table is touched.
  for (const auto& in : options_.inputs) {
    if (in != "-" && ::access(in.c_str(), R_OK) != 0) {
      return finish(Status::Io("cannot read " + in + ": " + std::strerror(errno)));
    }
  }
  // Nested rows through a sink_factory (--via-nats): the lines are validated
  // with their elements and published whole; the workers nest them.
  if (nested_) {
    if (Status s = NestedEncoder::Check(entity_, options_.derived); !s.ok()) return finish(s);
  }
  // Create every sink first so configuration errors surface before any work.
  std::vector<std::unique_ptr<RowSink>> sinks;
  std::unique_ptr<FreshTable> fresh;
  if (options_.sink_factory) {
    for (int i = 0; i < options_.jobs; ++i) {
      auto sink = options_.sink_factory(i);
      if (!sink.ok()) return finish(sink.status());
      sinks.push_back(std::move(sink).value());
    }
  } else {
    std::vector<std::unique_ptr<PgConnection>> conns;
    for (int i = 0; i < options_.jobs; ++i) {
      auto conn = PgConnection::Connect(options_.conninfo);
      if (!conn.ok()) return finish(conn.status());
      conns.push_back(std::move(conn).value());
    }
    // An interrupted fresh load of this table is cleaned up first (it left
    // the table without its key).
    auto recovered = RecoverInterruptedFreshLoad(*conns[0], entity_, options_.fresh_name);
    if (!recovered.ok()) return finish(recovered.status());
    if (!recovered->empty() && options_.notice) options_.notice(*recovered);
    if (options_.create_table) {
      if (Status s = EnsureTable(*conns[0], entity_, options_.mode); !s.ok()) return finish(s);
      for (const Entity* d : options_.derived) {
        if (Status s = EnsureTable(*conns[0], *d, options_.mode); !s.ok()) return finish(s);
      }
    }
    if (options_.fresh) {
      auto control = PgConnection::Connect(options_.conninfo, "nomnom-fresh");
      if (!control.ok()) return finish(control.status());
      auto began = FreshTable::Begin(std::move(control).value(), entity_, options_.fresh_name);
      if (!began.ok()) return finish(began.status());
      fresh = std::move(began).value();
    }
    for (auto& conn : conns) {
      if (nested_) {
        auto sink = NestedSink::Create(std::move(conn), entity_, options_.derived, options_.mode);
        if (!sink.ok()) return finish(sink.status());
        sinks.push_back(std::move(sink).value());
        continue;
      }
      auto sink = CopySink::Create(std::move(conn), entity_, options_.mode);
      if (!sink.ok()) return finish(sink.status());
      sinks.push_back(std::make_unique<CopyRowSink>(std::move(sink).value()));
    }
  }
  {
    uint64_t total = 0;
    bool known = true;
    for (const auto& in : options_.inputs) {
      std::error_code ec;
      const auto size = in == "-" ? 0 : std::filesystem::file_size(in, ec);
      if (in == "-" || ec) known = false;
      total += size;
    }
    progress_->raw_bytes_total.store(known ? total : 0);
  }

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

  std::vector<std::thread> threads;
  for (int i = 0; i < options_.jobs; ++i) {
    BoundedQueue<SinkItem>* q =
        sink_queues_.size() > 1 ? sink_queues_[static_cast<size_t>(i)].get() : sink_queues_[0].get();
    threads.emplace_back([this, sink = sinks[static_cast<size_t>(i)].get(), q] { SinkMain(sink, q); });
  }
  for (int i = 0; i < options_.parsers; ++i) threads.emplace_back([this] { ParserMain(); });
  ReaderMain();
  for (auto& t : threads) t.join();
  for (auto& sink : sinks) {
    if (Status s = sink->Finish(); !s.ok()) Fail(s);
  }
  sinks.clear();  // their connections end: nothing holds the table any more
  if (fresh != nullptr) FinishFresh(fresh.get());
  if (options_.rejects != nullptr) {
    if (Status s = options_.rejects->Flush(); !s.ok()) Fail(s);
  }
  std::lock_guard<std::mutex> lock(mu_);
  return finish(first_error_);
}

void Load::FinishFresh(FreshTable* fresh) {
  Status error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    error = first_error_;
  }
  const std::string table = entity_.QualifiedTable();
  if (!error.ok()) {
    // All or nothing: the rows committed so far go, the key comes back.
    Status undone = fresh->Abandon();
    std::lock_guard<std::mutex> lock(mu_);
    first_error_ =
        Status(first_error_.code(),
               first_error_.message() +
                   (undone.ok() ? "; the " + options_.fresh_name + " load was undone: " + table +
                                      " is empty again, with its primary key"
                                : "; undoing the " + options_.fresh_name + " load failed too (" + undone.message() +
                                      "): the next load into " + table + " cleans it up"));
    if (undone.ok()) inserted_ = 0;
    return;
  }
  std::vector<DuplicateRow> duplicates;
  Status s =
      fresh->Finish([this](PgConnection& conn, const std::string& sql) { return Restage(conn, sql); }, &duplicates);
  if (!s.ok()) {
    Fail(Status(s.code(), s.message() + "; the next load into " + table + " cleans up (empties it, restores its key)"));
    return;
  }
  if (!duplicates.empty()) {
    inserted_.fetch_sub(duplicates.size());
    progress_->rows_committed.fetch_sub(duplicates.size(), std::memory_order_relaxed);
    if (Status r = RejectDuplicates(duplicates, fresh->key_name()); !r.ok()) Fail(r);
  }
}

Status Load::Restage(PgConnection& conn, const std::string& copy_sql) {
  NdjsonReaderOptions ropts;
  ropts.chunk_bytes = options_.chunk_bytes;
  ropts.max_line_bytes = options_.max_line_bytes;
  RowEncoder encoder(entity_, RowEncoderOptions{options_.strict});
  DelimitedEncoder delimited(entity_);
  std::set<std::pair<uint32_t, uint64_t>> skip;
  {
    std::lock_guard<std::mutex> lock(mu_);
    skip = rejected_lines_;
  }
  Status read_status;
  std::string error;
  auto err = conn.CopyInWith(copy_sql, [&](const PgConnection::CopySendFn& send) {
    ByteBuffer out;
    pg::AppendCopyHeader(out);
    for (uint32_t source = 0; source < options_.inputs.size(); ++source) {
      bool sent = true;
      // Adds the row's input position to the tuple encoded at `start`: two more fields.
      auto add_position = [&](size_t start, uint64_t line_no) {
        auto* count = reinterpret_cast<unsigned char*>(out.data() + start);
        const uint16_t fields = static_cast<uint16_t>(((count[0] << 8) | count[1]) + 2);
        count[0] = static_cast<unsigned char>(fields >> 8);
        count[1] = static_cast<unsigned char>(fields & 0xff);
        out.PutI32(4);
        out.PutU32(source);
        out.PutI32(8);
        out.PutU64(line_no);
        if (out.size() >= (4u << 20)) {
          sent = send(out.view());
          out.clear();
        }
        return sent;
      };
      if (delimited_) {
        bool columns_set = false;
        Status columns_status;
        std::vector<DelimitedField> kept;
        read_status = ForEachRecord(options_.inputs[source], ropts, dialect_, entity_, options_.header, options_.strict,
                                    [&](uint64_t line_no, std::string_view, bool parsed,
                                        const std::vector<DelimitedField>& fields, const HeaderDecision* columns) {
                                      if (!columns_set) {
                                        columns_status = UseColumns(&delimited, columns);
                                        if (!columns_status.ok()) return false;
                                        columns_set = true;
                                      }
                                      if (!parsed || skip.count({source, line_no}) != 0) return true;
                                      const size_t start = out.size();
                                      const std::vector<DelimitedField>* values =
                                          KeptFields(columns, fields, &kept, &error);
                                      if (values == nullptr || !delimited.Encode(*values, &out, nullptr, &error))
                                        return true;  // rejected during the load already
                                      return add_position(start, line_no);
                                    });
        if (read_status.ok()) read_status = columns_status;
      } else {
        read_status =
            ForEachLine(options_.inputs[source], ropts, [&](uint64_t line_no, std::string_view line, size_t readable) {
              if (skip.count({source, line_no}) != 0) return true;
              const size_t start = out.size();
              if (!encoder.Encode(line, readable, &out, nullptr, &error)) {
                error.clear();
                return true;  // rejected during the load already
              }
              return add_position(start, line_no);
            });
      }
      if (!read_status.ok() || !sent) return false;
    }
    pg::AppendCopyTrailer(out);
    return send(out.view());
  });
  if (!read_status.ok()) return read_status;
  if (err) return ToStatus(*err, options_.fresh_name + ": cannot read the input positions of duplicate keys back");
  return Status::Ok();
}

Status Load::RejectDuplicates(const std::vector<DuplicateRow>& duplicates, const std::string& key_name) {
  // The raw lines, for the reject records: read once more, only those lines.
  std::map<uint32_t, std::set<uint64_t>> wanted;
  for (const DuplicateRow& d : duplicates) wanted[d.source].insert(d.line);
  NdjsonReaderOptions ropts;
  ropts.chunk_bytes = options_.chunk_bytes;
  ropts.max_line_bytes = options_.max_line_bytes;
  std::map<std::pair<uint32_t, uint64_t>, std::string> lines;
  for (const auto& entry : wanted) {
    // Not a structured binding: clang 14 cannot capture those in a lambda.
    const uint32_t source = entry.first;
    const std::set<uint64_t>& want = entry.second;
    auto keep = [&](uint64_t line_no, std::string_view raw) {
      if (want.count(line_no) != 0) lines[{source, line_no}] = std::string(raw);
      return line_no < *want.rbegin();
    };
    Status s = delimited_
                   ? ForEachRecord(options_.inputs[source], ropts, dialect_, entity_, options_.header, options_.strict,
                                   [&](uint64_t line_no, std::string_view raw, bool, const std::vector<DelimitedField>&,
                                       const HeaderDecision*) { return keep(line_no, raw); })
                   : ForEachLine(options_.inputs[source], ropts, [&](uint64_t line_no, std::string_view line, size_t) {
                       if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
                       return keep(line_no, line);
                     });
    if (!s.ok()) return s;
  }
  std::string columns;
  for (size_t k : entity_.key_fields) columns += (columns.empty() ? "" : ", ") + entity_.fields[k].name;
  for (const DuplicateRow& d : duplicates) {
    Reject(d.source, d.line, lines[{d.source, d.line}],
           "duplicate key value violates unique constraint \"" + key_name + "\": Key (" + columns + ")=" + d.key +
               " first occurs at " + options_.inputs[d.first_source] + ":" + std::to_string(d.first_line) +
               ", which was kept (" + options_.fresh_name + ")");
  }
  return Status::Ok();
}

}  // namespace

LoadSummary RunLoad(const Entity& entity, const LoadOptions& options, LoadProgress* progress) {
  LoadProgress local;
  Load load(entity, options, progress != nullptr ? progress : &local);
  return load.Run();
}

}  // namespace nomnom
