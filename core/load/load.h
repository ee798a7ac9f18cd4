// The load pipeline's one run (RunLoad, core/load/pipeline.h): the Load
// object every stage's thread works on. Internal to core/load; its members
// are defined by stage:
//   pipeline.cpp      Run and its steps, the reader, the sinks, rejects;
//   parse_tasks.cpp   the parsers: chunks -> encoded parts (EncodedPartBuilder);
//   fresh_finish.cpp  a fresh load's end: key built, duplicates re-read and rejected.
//
// Thread-safety: one Load per RunLoad call. Run() starts the threads and joins
// them before it returns; members shared between threads are atomics, queues,
// or guarded by the mutex named next to them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/bounded_queue.h"
#include "core/base/object_pool.h"
#include "core/format/delimited_encoder.h"
#include "core/format/delimited_parser.h"
#include "core/format/encoded_part_builder.h"
#include "core/format/nested_encoder.h"
#include "core/load/pipeline.h"
#include "core/pg/fresh_table.h"

namespace nomnom::load_internal {

// One chunk for the parsers.
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

// The parts one parser fills from one chunk: with hash routing one per sink,
// each row going to the part of its key (encoded into scratch first, then
// copied); else one, which rows are encoded into in place. One per parser
// thread, reused from chunk to chunk (Load::StartParts, Load::SendParts).
// The per-row methods are inline: they are the parsers' hot path.
struct ChunkParts {
  bool hash_routing = false;
  std::vector<std::unique_ptr<EncodedPart>> parts;
  std::vector<EncodedPartBuilder> builders;  // one per part
  ByteBuffer scratch;                        // hash routing, flat: the row being encoded
  std::unique_ptr<NestedRowScratch> nested;  // hash routing, nested: the line being encoded
  NestedEncoder::Output in_place;            // nested, one part: that part's own buffers

  // Flat: where to encode the next row (its start for AddRow: the size
  // before encoding).
  ByteBuffer* RowOut() {
    if (!hash_routing) return builders[0].tuples();
    scratch.clear();
    return &scratch;
  }
  // Flat: adds the row just encoded at `start` of RowOut().
  void AddRow(size_t start, uint64_t key_hash, const RowOrigin& origin) {
    if (!hash_routing) {
      builders[0].AddRow(start, origin);
    } else {
      builders[(key_hash >> 7) % builders.size()].AppendRow(scratch.view(), origin);
    }
  }
  // Nested: where NestedEncoder writes the next line's rows; `*start` is the
  // root tuple's start for AddNestedRow.
  const NestedEncoder::Output& NestedOut(size_t* start) {
    if (!hash_routing) {
      *start = builders[0].tuples()->size();
      return in_place;
    }
    nested->Clear();
    *start = 0;
    return nested->out();
  }
  // Nested: adds the line just encoded into NestedOut().
  void AddNestedRow(size_t start, uint64_t key_hash, const RowOrigin& origin) {
    if (!hash_routing) {
      builders[0].AddRow(start, origin);
    } else {
      builders[(key_hash >> 7) % builders.size()].AppendNestedRow(*nested, origin);
    }
  }
};

class Load {
 public:
  Load(const Entity& entity, const LoadOptions& options, LoadProgress* progress);

  LoadSummary Run();

 private:
  using Sinks = std::vector<std::unique_ptr<RowSink>>;

  // Run's steps, in order. Each returns the error that ends the load before
  // any row is read (nothing is written then, except tables created).
  // Checks the options (ValidateLoadOptions) and the inputs, and sets the format.
  Status Prepare();
  // One sink per job: the sink_factory's, or PostgreSQL connections into a
  // target made ready (tables created, an interrupted fresh load cleaned up;
  // a fresh load begun into *fresh).
  Status OpenSinks(Sinks* sinks, std::unique_ptr<FreshTable>* fresh);
  Status OpenPgSinks(Sinks* sinks, std::unique_ptr<FreshTable>* fresh);
  // The total input size for progress, and the queues between parsers and sinks.
  void PrepareQueues();
  // Runs the reader (on this thread), the parsers and one thread per sink
  // until all are done.
  void RunThreads(const Sinks& sinks);
  // Ends the sinks (their connections close), the fresh load and the
  // rejects; failures go to Fail.
  void Finish(Sinks* sinks, FreshTable* fresh);
  // The summary so far, with `status`.
  LoadSummary Summarize(Status status, std::chrono::steady_clock::time_point started);

  void ReaderMain();
  void ParserMain();
  void ParserDelimitedMain();
  void ParseFlat(const ParseTask& task, RowEncoder* encoder, ChunkParts* parts);
  void ParseNested(const ParseTask& task, NestedEncoder* encoder, ChunkParts* parts);
  void ParseDelimited(const ParseTask& task, DelimitedParser* parser, DelimitedEncoder* encoder, ChunkParts* parts);
  // A delimited chunk's records (each returns how many non-blank ones it saw):
  // every column kept, parsed and encoded in one pass; or, under a header
  // with columns the entity does not have, the others.
  uint64_t ParseRecordsFused(const ParseTask& task, DelimitedParser* parser, DelimitedEncoder* encoder,
                             ChunkParts* parts);
  uint64_t ParseRecordsKept(const ParseTask& task, DelimitedParser* parser, DelimitedEncoder* encoder,
                            ChunkParts* parts);
  // A parser's parts for one chunk, started (EncodedPartBuilder::Start):
  // flat ones from the pool, reserved for the whole chunk without hash routing.
  void StartParts(const ParseTask& task, ChunkParts* parts);
  // Finishes the chunk's parts, counts its progress and hands the parts to the sinks.
  void SendParts(const ParseTask& task, uint64_t rows, ChunkParts* parts);
  // The last parser out tells the sinks that no more parts will come.
  void ParserDone();
  // Sets the encoder's columns to an input's (null: the entity's fields).
  Status UseColumns(DelimitedEncoder* encoder, const HeaderDecision* columns) const;
  // Rejects a record longer than the limit (true), keeping only its start.
  bool RejectTooLong(uint32_t source, uint64_t line, std::string_view raw);
  // Rejects the lines (records) the reader cut from a chunk for being longer than the limit.
  void RejectOversize(uint32_t source, const Chunk& chunk);
  // The reject message of a line (record) longer than the limit: `what` + its size + the limit.
  std::string TooLong(const std::string& what, uint64_t bytes) const;

  void SinkMain(RowSink* sink, BoundedQueue<SinkItem>* queue);
  void Flush(RowSink* sink, std::vector<std::unique_ptr<EncodedPart>>* batch);
  void Recycle(std::unique_ptr<EncodedPart> part);

  // Fresh loads: builds the key (or undoes the load after an error).
  void FinishFresh(FreshTable* fresh);
  Status Restage(PgConnection& conn, const std::string& copy_sql);
  Status RejectDuplicates(const std::vector<DuplicateRow>& duplicates, const std::string& key_name);
  NdjsonReaderOptions ReaderOptions() const;

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
  // The inputs' format (set by Prepare before any thread starts).
  InputFormat format_ = InputFormat::kNdjson;
  bool delimited_ = false;
  DelimitedDialect dialect_ = DelimitedDialect::kCsv;
  std::mutex tables_mu_;
  std::vector<BatchResult::Table> tables_;  // nested loads: per table; guarded by tables_mu_
};

}  // namespace nomnom::load_internal
