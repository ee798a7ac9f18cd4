#include "core/queue/chunk_writer.h"

#include <algorithm>

#include "core/base/utf8.h"
#include "core/queue/ingest_format.h"

namespace nomnom {

namespace {
// Headers of a chunk message besides the entity name: Nats-Msg-Id (a UUID and
// a chunk number), Nomnom-Batch, Nomnom-Chunk, Nomnom-Rows, their names and
// the NATS/1.0 header framing come to ~250 bytes; keep a generous margin.
constexpr size_t kHeaderAllowance = 1024;
}  // namespace

size_t ChunkBodyLimit(int64_t server_max_payload, std::string_view entity, size_t configured_max) {
  if (server_max_payload <= 0) return configured_max;  // unknown: trust the configuration
  const auto payload = static_cast<size_t>(server_max_payload);
  const size_t overhead = kHeaderAllowance + entity.size();
  const size_t limit = payload > overhead ? payload - overhead : 1;
  return std::min(configured_max, limit);
}

std::string RowTooLargeError(size_t row_bytes, size_t limit) {
  return "row of " + std::to_string(row_bytes) + " bytes is larger than a chunk message may be (" +
         std::to_string(limit) + " bytes, from NATS max_payload and the chunk size)";
}

bool ChunkWriter::Add(std::string_view row, uint64_t line) {
  const bool ndjson = format_ == PublishFormat::kNdjson;
  const size_t bytes = row.size() + (ndjson ? 1 : 0);
  if (bytes > limits_.max_bytes) return false;
  if (open_.rows > 0 && (open_.rows >= limits_.max_rows || open_.body.size() + bytes > limits_.max_bytes)) {
    full_.push_back(std::move(open_));
    open_ = ChunkBody{};
  }
  if (open_.rows == 0) open_.first_line = line;
  open_.body.append(row);
  if (ndjson) open_.body.push_back('\n');
  open_.last_line = line;
  ++open_.rows;
  return true;
}

std::vector<ChunkBody> ChunkWriter::TakeFull() {
  std::vector<ChunkBody> out;
  out.swap(full_);
  return out;
}

std::vector<ChunkBody> ChunkWriter::TakeAll() {
  std::vector<ChunkBody> out;
  out.swap(full_);
  if (open_.rows > 0) out.push_back(std::move(open_));
  open_ = ChunkBody{};
  return out;
}

std::string HeaderValue(std::string_view text, size_t max_bytes) {
  std::string out = EscapeInvalidUtf8(TruncateUtf8(text, max_bytes));
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
  return out;
}

OutgoingMessage MakeDeadLetterMessage(std::string subject, std::string_view original_id, std::string_view batch,
                                      std::string_view entity, std::optional<uint64_t> line, std::string_view error,
                                      std::string body) {
  OutgoingMessage m;
  m.subject = std::move(subject);
  m.msg_id = std::string(original_id) + ":" + (line ? std::to_string(*line) : std::string("dead"));
  m.headers = {{std::string(kHeaderOriginalId), HeaderValue(original_id)}};
  if (!batch.empty()) m.headers.emplace_back(std::string(kHeaderBatch), HeaderValue(batch));
  if (!entity.empty()) m.headers.emplace_back(std::string(kHeaderEntity), HeaderValue(entity));
  if (line) m.headers.emplace_back(std::string(kHeaderLine), std::to_string(*line));
  m.headers.emplace_back(std::string(kHeaderError), HeaderValue(error));
  m.body = std::move(body);
  return m;
}

}  // namespace nomnom
