#include "core/queue/ingest_format.h"

#include "core/base/utf8.h"

#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <charconv>
#include <mutex>
#include <utility>

namespace nomnom {

namespace {

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string NewUuid() {
  // boost's random_generator is not thread-safe; one per thread.
  thread_local boost::uuids::random_generator gen;
  return boost::uuids::to_string(gen());
}

std::string NameUuid(std::string_view name) {
  // A fixed namespace for nomnom's name-based ids.
  static const boost::uuids::uuid kNamespace = [] {
    boost::uuids::name_generator_sha1 ns_gen(boost::uuids::ns::url());
    return ns_gen("https://nomnom/ingest/idempotency-key");
  }();
  boost::uuids::name_generator_sha1 gen(kNamespace);
  return boost::uuids::to_string(gen(name.data(), name.size()));
}

std::string ChunkId(std::string_view batch_id, uint32_t index) {
  return std::string(batch_id) + ":" + std::to_string(index);
}

void AppendMessageId(std::string* out, std::string_view batch_id, uint32_t row) {
  *out += batch_id;
  *out += '.';
  *out += std::to_string(row);
}

std::string MessageId(std::string_view batch_id, uint32_t row) {
  std::string id;
  AppendMessageId(&id, batch_id, row);
  return id;
}

std::string FormatChunkHeader(uint32_t index, uint32_t count) {
  return std::to_string(index) + "/" + std::to_string(count);
}

OutgoingMessage MakeChunkMessage(std::string subject, std::string_view entity, std::string_view batch_id,
                                 uint32_t index, uint32_t count, uint32_t rows, std::string body,
                                 const ChunkEncoding& encoding) {
  OutgoingMessage m;
  m.subject = std::move(subject);
  m.msg_id = ChunkId(batch_id, index);
  m.headers = {{std::string(kHeaderEntity), std::string(entity)},
               {std::string(kHeaderBatch), std::string(batch_id)},
               {std::string(kHeaderChunk), FormatChunkHeader(index, count)},
               {std::string(kHeaderRows), std::to_string(rows)}};
  if (!encoding.body_hash.empty())
    m.headers.emplace_back(std::string(kHeaderBodyHash), std::string(encoding.body_hash));
  if (encoding.format == PublishFormat::kPgCopy1) {
    m.headers.emplace_back(std::string(kHeaderFormat), std::string(kFormatPgCopy1));
    m.headers.emplace_back(std::string(kHeaderSchema), std::string(encoding.schema));
  }
  m.body = std::move(body);
  return m;
}

std::optional<std::pair<uint32_t, uint32_t>> ParseChunkHeader(std::string_view s) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  uint32_t k = 0, n = 0;
  auto r1 = std::from_chars(s.data(), s.data() + slash, k);
  auto r2 = std::from_chars(s.data() + slash + 1, s.data() + s.size(), n);
  if (r1.ec != std::errc() || r1.ptr != s.data() + slash || r2.ec != std::errc() || r2.ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  if (n == 0 || k >= n) return std::nullopt;
  return std::make_pair(k, n);
}

std::optional<StatusKey> ParseStatusId(std::string_view id) {
  StatusKey key;
  if (IsUuid(id)) {
    key.kind = StatusKey::Kind::kBatch;
    key.batch_id = std::string(id);
    return key;
  }
  if (id.size() > 37 && id[36] == '.' && IsUuid(id.substr(0, 36))) {
    uint32_t row = 0;
    const std::string_view digits = id.substr(37);
    auto r = std::from_chars(digits.data(), digits.data() + digits.size(), row);
    if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return std::nullopt;
    key.kind = StatusKey::Kind::kMessage;
    key.batch_id = std::string(id.substr(0, 36));
    key.row = row;
    return key;
  }
  return std::nullopt;
}

// --- Reading a chunk message ---

ChunkMessage ParseChunkMessage(std::string_view subject, const HeaderLookup& header) {
  ChunkMessage m;
  // Headers are bytes; what goes into PostgreSQL text must be UTF-8.
  m.id = EscapeInvalidUtf8(header("Nats-Msg-Id").value_or(""));
  std::string entity = header(kHeaderEntity).value_or("");
  if (entity.empty()) {
    const size_t dot = subject.rfind('.');
    if (dot != std::string_view::npos) entity = std::string(subject.substr(dot + 1));
  }
  m.entity = EscapeInvalidUtf8(entity);
  m.batch = EscapeInvalidUtf8(header(kHeaderBatch).value_or(""));
  m.format = EscapeInvalidUtf8(header(kHeaderFormat).value_or(""));
  m.schema = EscapeInvalidUtf8(header(kHeaderSchema).value_or(""));
  if (auto chunk = ParseChunkHeader(header(kHeaderChunk).value_or(""))) {
    m.chunk_index = chunk->first;
    m.chunk_count = chunk->second;
  }
  const std::string rows_text = header(kHeaderRows).value_or("");
  auto [end, ec] = std::from_chars(rows_text.data(), rows_text.data() + rows_text.size(), m.rows);
  const bool rows_ok = ec == std::errc() && end == rows_text.data() + rows_text.size() && !rows_text.empty();
  if (!rows_ok) m.rows = 0;
  if (m.id.empty()) {
    m.malformed = "message has no Nats-Msg-Id header";
  } else if (!m.format.empty() && m.format != kFormatPgCopy1) {
    m.malformed = "unknown chunk format '" + m.format + "' (Nomnom-Format; this worker reads NDJSON and " +
                  std::string(kFormatPgCopy1) + ")";
  } else if (!m.format.empty() && !rows_ok) {
    m.malformed = "pgcopy1 chunk without a valid Nomnom-Rows header ('" + EscapeInvalidUtf8(rows_text) + "')";
  }
  return m;
}

}  // namespace nomnom
