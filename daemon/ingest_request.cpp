#include "daemon/ingest_request.h"

#include <simdjson.h>

#include <cstring>
#include <map>
#include <memory>

#include "core/byte_buffer.h"
#include "core/ndjson_reader.h"
#include "core/row_encoder.h"

namespace nomnom {

namespace {

// One RowEncoder per thread and entity: they own simdjson parsers.
RowEncoder& EncoderFor(const Entity& e) {
  thread_local std::map<const Entity*, std::unique_ptr<RowEncoder>> encoders;
  auto& slot = encoders[&e];
  if (!slot) slot = std::make_unique<RowEncoder>(e, RowEncoderOptions{});
  return *slot;
}

std::string_view TrimLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  return line;
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

MessageCheck CheckMessage(const Entity& entity, std::string_view request_body, size_t body_limit) {
  MessageCheck out;
  // Validate in place (simdjson needs readable padding after the text).
  // A per-thread copy with the padding: appending it to the body itself
  // would reallocate the body on every request.
  thread_local std::string body;
  const size_t size = request_body.size();
  if (body.capacity() > (1u << 20) && size < (64u << 10)) std::string().swap(body);  // do not keep a big one
  body.assign(request_body);
  body.append(kChunkPadding, ' ');
  std::string_view text(body.data(), size);
  thread_local ByteBuffer scratch;  // the encoded tuple is not kept: validation only
  scratch.clear();
  if (!EncoderFor(entity).Encode(text, body.size(), &scratch, nullptr, &out.error)) {
    out.status = 400;
    return out;
  }
  // A chunk body holds one row per line: minify a multi-line document.
  if (std::memchr(text.data(), '\n', size) != nullptr || std::memchr(text.data(), '\r', size) != nullptr) {
    std::string minified(size + simdjson::SIMDJSON_PADDING, '\0');
    size_t out_len = 0;
    if (simdjson::minify(text.data(), size, minified.data(), out_len) != simdjson::SUCCESS) {
      out.status = 400;
      out.error = "malformed JSON";
      return out;
    }
    minified.resize(out_len);
    if (minified.find_first_of("\r\n") != std::string::npos) {
      out.status = 400;
      out.error = "a string contains a raw line break (JSON requires \\n)";
      return out;
    }
    out.row = std::move(minified);
  } else {
    out.row = std::string(TrimLine(text));
  }
  if (out.row.size() + 1 > body_limit) {
    out.status = 413;
    out.error = RowTooLargeError(out.row.size() + 1, body_limit);
    out.row.clear();
  }
  return out;
}

BatchCheck CheckBatch(const Entity& entity, std::string& body, ChunkLimits limits, size_t max_errors) {
  BatchCheck out;
  const size_t size = body.size();
  body.append(kChunkPadding, ' ');
  RowEncoder& encoder = EncoderFor(entity);
  ByteBuffer scratch;
  std::string error;
  ChunkWriter writer(limits);
  const size_t bom = size >= 3 && std::memcmp(body.data(), "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;  // UTF-8 BOM
  const std::string_view padded(body.data() + bom, body.size() - bom);
  ForEachPaddedLine(padded, size - bom, [&](std::string_view raw, uint64_t line_no, size_t readable) {
    auto reject = [&](std::string why) {
      ++out.rejected;
      if (out.errors.size() < max_errors) out.errors.emplace_back(line_no, std::move(why));
    };
    if (raw.empty() || IsBlank(raw)) return true;
    scratch.clear();
    if (!encoder.Encode(raw, readable, &scratch, nullptr, &error)) {
      reject(error);
      return true;
    }
    const std::string_view line = TrimLine(raw);
    if (!writer.Add(line, line_no)) {
      reject(RowTooLargeError(line.size() + 1, limits.max_bytes));
      return true;
    }
    ++out.accepted;
    return true;
  });
  out.chunks = writer.TakeAll();
  return out;
}

}  // namespace nomnom
