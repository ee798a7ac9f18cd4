// ChunkWriter: the one place where validated rows become chunk messages
// (the format is in core/ingest_format.h and core/README.md).
//
// Rows of one entity are grouped into chunk bodies of at most max_rows rows
// and max_bytes bytes (each row is one NDJSON line ending in '\n'). nomnomd's
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
#include <string>
#include <string_view>
#include <vector>

#include "core/nats_client.h"

namespace nomnom {

struct ChunkLimits {
  size_t max_rows = 1000;
  size_t max_bytes = 512 << 10;  // body bytes
};

struct ChunkBody {
  std::string body;  // NDJSON, every line ends with '\n'
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
  explicit ChunkWriter(ChunkLimits limits) : limits_(limits) {}

  // Appends one row (its text without the newline). Returns false, and adds
  // nothing, when the row and its newline are larger than max_bytes.
  bool Add(std::string_view row, uint64_t line = 0);
  // Rows in the open (last, not yet full) chunk.
  size_t open_rows() const { return open_.rows; }
  // Chunks completed so far (not the open one); the writer keeps the open one.
  std::vector<ChunkBody> TakeFull();
  // Every chunk, the open one included; the writer is empty afterwards.
  std::vector<ChunkBody> TakeAll();

 private:
  ChunkLimits limits_;
  ChunkBody open_;
  std::vector<ChunkBody> full_;
};

// The chunk message for chunk `index` of the `count` chunks of batch
// `batch_id`: subject, Nats-Msg-Id and the Nomnom-* headers.
OutgoingMessage MakeChunkMessage(std::string subject, std::string_view entity, std::string_view batch_id,
                                 uint32_t index, uint32_t count, uint32_t rows, std::string body);

}  // namespace nomnom
