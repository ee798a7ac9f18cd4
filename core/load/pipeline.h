// The load pipeline: NDJSON, CSV or .tbl inputs -> PostgreSQL.
//
//   reader thread --chunks--> parser threads --encoded parts--> COPY sink threads
//
// The reader cuts each input into chunks of whole lines (NDJSON) or whole
// records (CSV and .tbl, core/format/delimited_reader.h: never inside a quoted
// field), and decides whether a delimited input starts with a header; parser
// threads encode every line or record into binary COPY tuples (RowEncoder,
// DelimitedEncoder) or a reject record naming the physical line the record
// starts on; each sink thread owns
// one PostgreSQL connection and commits batches. Stages are joined by bounded
// lock-free queues, so a slow stage holds the others back and memory stays
// bounded whatever the input size. In kNothing/kUpdate modes rows are routed to
// sinks by a hash of their key, and each sink applies chunks in input order, so
// one key is always written by one connection in input order (the last row
// wins for kUpdate) and connections never wait on each other's keys.
//
// The first fatal error (unreadable input, lost connection, --max-errors
// exceeded) stops every stage; batches committed before stay committed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "core/format/delimited_reader.h"
#include "core/format/rejects.h"
#include "core/format/row_sink.h"
#include "core/format/schema.h"
#include "core/pg/table_setup.h"

namespace nomnom {

struct LoadOptions {
  std::vector<std::string> inputs;  // file paths; "-" is stdin
  // The inputs' format; kAuto: by their names (ResolveInputFormat: all must
  // agree). CSV and .tbl loads are flat: no derived entities, no sink_factory
  // (those carry JSON rows).
  InputFormat format = InputFormat::kAuto;
  HeaderMode header = HeaderMode::kAuto;  // CSV and .tbl: is each input's first record a header?
  std::string conninfo;                   // libpq URL or key=value string ("" = PG* variables)
  ConflictMode mode = ConflictMode::kNothing;
  int jobs = 2;                      // COPY connections
  int parsers = 1;                   // parser threads
  size_t chunk_bytes = 2 << 20;      // input chunk size
  size_t batch_rows = 100000;        // rows per COPY transaction (per connection)
  size_t batch_bytes = 4 << 20;      // encoded bytes per COPY transaction (per connection)
  size_t max_line_bytes = 16 << 20;  // longer lines (CSV: records) are rejected
  int64_t max_errors = -1;           // stop when more rows than this are rejected (-1: never)
  // What the caller calls these two limits (e.g. a flag), added to the
  // messages about them; empty: nothing added.
  std::string max_line_name;
  std::string max_errors_name;
  bool strict = false;            // reject unknown fields
  bool create_table = true;       // create the target table when missing
  RejectSink* rejects = nullptr;  // where rejected rows go (may be null)
  // A fresh load (core/pg/fresh_table.h): the target must be empty (or created
  // now); rows are COPYed without its primary key, which is built at the end;
  // duplicate keys found then are rejected rows, the later occurrence in input
  // order losing. All or nothing: a load that fails is undone. Needs mode
  // kError and inputs that can be read again (not "-").
  bool fresh = false;
  std::string fresh_name = "fresh load";  // what the caller calls it (e.g. a flag), for messages
  // What the caller calls the conflict mode, the header mode and the
  // sink_factory (e.g. flags), for ValidateLoadOptions' messages.
  std::string mode_name = "conflict mode";
  std::string header_name = "header modes";
  std::string publish_name = "the sink_factory";
  // Sentences worth telling the user (e.g. an interrupted fresh load found
  // and cleaned up). May be null.
  std::function<void(const std::string&)> notice;
  // Nested loads: the entities derived from the loaded one (DerivedEntities;
  // they must outlive the load). Each line then fills the root's table and
  // theirs, in one transaction (NestedSink). Empty: a flat load.
  std::vector<const Entity*> derived;
  // When set, rows go to these sinks (one per job) instead of PostgreSQL
  // connections: no table is created or checked (e.g. --via-nats).
  std::function<Result<std::unique_ptr<RowSink>>(int job)> sink_factory;
};

// Live counters, updated with relaxed atomics while the load runs.
struct LoadProgress {
  std::atomic<uint64_t> rows_read{0};        // non-blank lines (CSV, .tbl: records) seen
  std::atomic<uint64_t> rows_committed{0};   // inserted + updated + skipped
  std::atomic<uint64_t> bytes_read{0};       // uncompressed input bytes parsed
  std::atomic<uint64_t> raw_bytes_read{0};   // file bytes read (compressed size for compressed input)
  std::atomic<uint64_t> raw_bytes_total{0};  // sum of input file sizes when all are known, else 0
  std::atomic<uint64_t> rejected{0};
};

struct LoadSummary {
  uint64_t rows_read = 0;
  uint64_t inserted = 0;
  uint64_t updated = 0;
  uint64_t skipped = 0;
  uint64_t rejected = 0;
  uint64_t bytes = 0;
  uint64_t retries = 0;
  double seconds = 0;
  std::string table;
  // Nested loads: every table's counts (the root's first); empty for flat loads.
  struct Table {
    std::string table;
    uint64_t inserted = 0, updated = 0, skipped = 0, deleted = 0;
  };
  std::vector<Table> tables;
  Status status;  // OK, or the fatal error that stopped the load
};

// Whether `options` make a load of `entity` (plus options.derived), whose
// rows go to PostgreSQL or, when `published`, to options.sink_factory (a
// caller may check before it has made the factory). Checks the combinations
// of options, not the inputs' contents or whether they can be read: no
// inputs, fewer than one job or parser, inputs of different formats
// (ResolveInputFormat), CSV or .tbl input with derived entities or
// published, a header mode with NDJSON input, and a fresh load with a
// conflict mode other than kError, published, or with derived entities.
// Returns the first problem found, as kInvalidArgument with one message per
// combination (naming things as options' *_name fields say). Pure; RunLoad
// calls it first.
Status ValidateLoadOptions(const LoadOptions& options, const Entity& entity, bool published);

// Runs a load to completion (or the first fatal error). Always returns a
// summary of what was committed; summary.status says whether it finished.
LoadSummary RunLoad(const Entity& entity, const LoadOptions& options, LoadProgress* progress);

}  // namespace nomnom
