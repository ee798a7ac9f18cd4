// The wire format's builders (the format, and MakeChunkMessage, are in
// core/queue/ingest_format.h and core/README.md):
//   * ChunkWriter: the one place where validated rows become chunk bodies;
//   * MakeDeadLetterMessage: the dead-letter stream's messages.
//
// Rows of one entity are grouped into chunk bodies of at most max_rows rows
// and max_bytes bytes: NDJSON (each row one line ending in '\n') or pgcopy1
// (each row its binary COPY tuple, core/format/pgcopy_chunk.h). nomnomd's
// /ingest/message and /ingest/batch and `nomnom load --via-nats` all use it,
// so identical rows make identical messages.
//
// max_bytes must leave room under the NATS server's max_payload for the
// headers: ChunkBodyLimit() computes it. A row that cannot fit a chunk on its
// own is refused by Add() (the caller rejects it with RowTooLargeError()).
//
// Not thread-safe: one writer per batch or per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/queue/ingest_format.h"
#include "core/queue/nats_client.h"

namespace nomnom {

// Room a pgcopy1 chunk's two extra headers take from the NATS max_payload.
inline constexpr int64_t kPgCopyHeaderBytes = 64;

struct ChunkLimits {
  size_t max_rows = 1000;
  size_t max_bytes = 512 << 10;  // body bytes
};

struct ChunkBody {
  std::string body;  // NDJSON, every line ends with '\n'; or pgcopy1 tuples
  uint32_t rows = 0;
  uint64_t first_line = 0;  // input line numbers of its first and last row (0: not tracked)
  uint64_t last_line = 0;
};

// The largest body that fits a chunk message under the server's max_payload
// (bytes, headers included) for this entity, capped at configured_max.
size_t ChunkBodyLimit(int64_t server_max_payload, std::string_view entity, size_t configured_max);

// The reject reason for a row of `row_bytes` bytes over the limit.
std::string RowTooLargeError(size_t row_bytes, size_t limit);

class ChunkWriter {
 public:
  explicit ChunkWriter(ChunkLimits limits, PublishFormat format = PublishFormat::kNdjson)
      : limits_(limits), format_(format) {}

  // Appends one row: NDJSON, its text without the newline; pgcopy1, its
  // tuple. Returns false, and adds nothing, when the row (and its newline)
  // is larger than max_bytes.
  bool Add(std::string_view row, uint64_t line = 0);
  // Rows in the open (last, not yet full) chunk.
  size_t open_rows() const { return open_.rows; }
  // Chunks completed so far (not the open one); the writer keeps the open one.
  std::vector<ChunkBody> TakeFull();
  // Every chunk, the open one included; the writer is empty afterwards.
  std::vector<ChunkBody> TakeAll();

 private:
  ChunkLimits limits_;
  PublishFormat format_;
  ChunkBody open_;
  std::vector<ChunkBody> full_;
};

// A dead letter for the dead-letter stream: one row of a chunk (line set,
// 1-based) or a whole chunk. Its Nats-Msg-Id is "<original id>:<line>" or
// "<original id>:dead", so a republished dead letter is stored once. Header
// values are made safe for NATS headers: invalid UTF-8 escaped, line breaks
// replaced by spaces, the error cut at 1,000 bytes on a character boundary.
OutgoingMessage MakeDeadLetterMessage(std::string subject, std::string_view original_id, std::string_view batch,
                                      std::string_view entity, std::optional<uint64_t> line, std::string_view error,
                                      std::string body);

// A value fit for a NATS header (see MakeDeadLetterMessage).
std::string HeaderValue(std::string_view text, size_t max_bytes = 1000);

}  // namespace nomnom
