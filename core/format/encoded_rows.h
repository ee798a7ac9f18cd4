// Encoded rows and what a sink reports about them: the types shared by the
// load pipeline, the PostgreSQL sink (copy_sink.h), the JetStream sink
// (publish_sink.h) and the workers, so that none of them needs another's
// header.
//
// Plain data; thread-safety is the owner's. An EncodedPart owns its tuples and
// shares ownership of the chunk its RowOrigins point into.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"

namespace nomnom {

// Where an encoded row came from, for reject records.
struct RowOrigin {
  uint32_t source = 0;   // index of the input in the load's input list
  uint64_t line = 0;     // 1-based line number
  std::string_view raw;  // the line's bytes (kept alive by EncodedPart::chunk)
  // The JetStream stream sequence of the message the row came from; 0 for
  // none (`nomnom load`). With ConflictMode::kUpdate, CopySink never lets a
  // row overwrite a version of its key that came from a later message,
  // whatever the order in which transactions commit.
  uint64_t stream_seq = 0;
};

// Encoded rows (binary COPY tuples, no header) from one input chunk.
struct EncodedPart {
  uint64_t seq = 0;                    // the chunk's sequence number in the load
  ByteBuffer tuples;                   // concatenated tuples
  std::vector<uint32_t> offsets;       // start of each tuple in `tuples`
  std::vector<RowOrigin> origins;      // one per tuple
  std::shared_ptr<const Chunk> chunk;  // owner of the raw bytes origins point to
  // Nested loads (a root entity with derived entities): the rows of each
  // derived entity's table, in the order of the load's derived entities. Row
  // r of this part owns rows [by_parent[r], by_parent[r + 1]) of each child
  // part. Empty for flat loads.
  std::vector<std::unique_ptr<EncodedPart>> children;
  std::vector<uint32_t> by_parent;  // child parts: rows() of the parent + 1 entries
  size_t rows() const { return offsets.size(); }
};

// What a sink did with one batch of rows.
struct BatchResult {
  uint64_t inserted = 0;
  uint64_t updated = 0;
  uint64_t skipped = 0;   // not written because the key existed (kNothing)
  uint64_t rejected = 0;  // rejected by PostgreSQL
  uint64_t retries = 0;   // transactions retried after a transient error
  uint64_t deleted = 0;   // derived tables in kUpdate: rows of re-sent parents they no longer have
  // Nested loads: the counts of each table (the root's first, then each
  // derived entity's); empty for flat loads, whose one table the fields above
  // count.
  struct Table {
    uint64_t inserted = 0, updated = 0, skipped = 0, deleted = 0;
  };
  std::vector<Table> tables;
};

// Called for each row a sink could not store, with the reason.
using RejectFn = std::function<void(const RowOrigin& origin, std::string_view error)>;

// A row PostgreSQL rejected in the current transaction (origin points into
// the batch being written).
struct RejectedRow {
  const RowOrigin* origin;
  std::string error;
};

}  // namespace nomnom
