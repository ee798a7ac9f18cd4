// The validation half of /ingest/message and /ingest/batch, without I/O:
// request body in, rows to publish (or the reason to refuse) out. Pure
// functions of their arguments, so they are unit-tested and fuzzed
// (tests/fuzz) without a server or NATS.
//
// Thread-safety: thread-safe; each thread uses its own RowEncoders (they own
// simdjson parsers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/format/schema.h"
#include "core/queue/chunk_writer.h"

namespace nomnom {

// One /ingest/message body: the row as one NDJSON line (minified when the
// document spanned lines), or the HTTP status and reason to refuse it.
struct MessageCheck {
  int status = 200;   // 200: row is good; 400 invalid; 413 too large for a chunk
  std::string error;  // valid UTF-8
  // The row, without a newline ("" unless status is 200): the checked body
  // itself, trimmed (no copy: valid while that body is), or minified.
  std::string_view row() const { return is_minified ? std::string_view(minified_row) : body_row; }

  std::string_view body_row;  // into the body given to CheckMessage
  std::string minified_row;
  bool is_minified = false;
  // Format kPgCopy1 (an entity without derived entities): the row's binary
  // COPY tuple, valid until this thread's next CheckMessage or CheckBatch.
  std::string_view tuple;
};
// body_limit: the largest chunk body (row + newline must fit). derived: the
// entities derived from `entity` (DerivedEntities; they must outlive the
// call's thread's use): a row is then checked with its nested elements, as
// the workers will encode it, and a bad element is a 400 naming it.
// format kPgCopy1 (ignored with derived entities): tuple is set too, and it
// is the tuple that must fit body_limit (413 otherwise), not the line.
MessageCheck CheckMessage(const Entity& entity, std::string_view body, size_t body_limit,
                          const std::vector<const Entity*>& derived = {},
                          PublishFormat format = PublishFormat::kNdjson);

// One /ingest/batch body (NDJSON): its good rows in chunks, its bad lines.
struct BatchCheck {
  std::vector<ChunkBody> chunks;
  PublishFormat format = PublishFormat::kNdjson;  // what the chunks hold
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  std::vector<std::pair<uint64_t, std::string>> errors;  // (1-based line, reason), the first max_errors
};
// body is padded in place (kChunkPadding bytes are appended for simdjson).
// format kPgCopy1: the chunks hold the rows' binary COPY tuples, for an
// entity without derived entities (with them the chunks are NDJSON, and
// BatchCheck::format says so).
BatchCheck CheckBatch(const Entity& entity, std::string& body, ChunkLimits limits, size_t max_errors,
                      const std::vector<const Entity*>& derived = {}, PublishFormat format = PublishFormat::kNdjson);

}  // namespace nomnom
