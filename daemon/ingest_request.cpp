#include "daemon/ingest_request.h"

#include <simdjson.h>

#include <cstring>
#include <map>
#include <memory>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/nested_encoder.h"
#include "core/format/row_encoder.h"

namespace nomnom {

namespace {

// One RowEncoder per thread and entity: they own simdjson parsers.
RowEncoder& EncoderFor(const Entity& e) {
  thread_local std::map<const Entity*, std::unique_ptr<RowEncoder>> encoders;
  auto& slot = encoders[&e];
  if (!slot) slot = std::make_unique<RowEncoder>(e, RowEncoderOptions{});
  return *slot;
}

// One NestedEncoder per thread and root entity (nested entities only).
NestedEncoder& NestedEncoderFor(const Entity& e, const std::vector<const Entity*>& derived) {
  thread_local std::map<const Entity*, std::unique_ptr<NestedEncoder>> encoders;
  auto& slot = encoders[&e];
  if (!slot) slot = std::make_unique<NestedEncoder>(e, derived, RowEncoderOptions{});
  return *slot;
}

// Validates one row of entity (with its derived entities' elements, when it
// has any). tuple, for an entity without derived entities: set to its
// encoded tuple, valid until the thread's next call.
bool Validate(const Entity& entity, const std::vector<const Entity*>& derived, std::string_view line, size_t readable,
              std::string* error, std::string_view* tuple = nullptr) {
  thread_local ByteBuffer scratch;
  scratch.clear();
  if (derived.empty()) {
    const bool ok = EncoderFor(entity).Encode(line, readable, &scratch, nullptr, error);
    if (ok && tuple != nullptr) *tuple = scratch.view();
    return ok;
  }
  thread_local std::vector<ByteBuffer> children;
  thread_local std::vector<std::vector<uint32_t>> offsets;
  children.resize(derived.size());
  offsets.resize(derived.size());
  NestedEncoder::Output out;
  out.root = &scratch;
  for (size_t d = 0; d < derived.size(); ++d) {
    children[d].clear();
    offsets[d].clear();
    out.children.push_back(&children[d]);
    out.child_offsets.push_back(&offsets[d]);
  }
  return NestedEncoderFor(entity, derived).Encode(line, readable, out, nullptr, error);
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

MessageCheck CheckMessage(const Entity& entity, std::string_view request_body, size_t body_limit,
                          const std::vector<const Entity*>& derived, PublishFormat format) {
  const bool binary = format == PublishFormat::kPgCopy1 && derived.empty();
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
  if (!Validate(entity, derived, text, body.size(), &out.error, binary ? &out.tuple : nullptr)) {
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
      out.tuple = {};
      return out;
    }
    minified.resize(out_len);
    if (minified.find_first_of("\r\n") != std::string::npos) {
      out.status = 400;
      out.error = "a string contains a raw line break (JSON requires \\n)";
      out.tuple = {};
      return out;
    }
    out.minified_row = std::move(minified);
    out.is_minified = true;
  } else {
    // The same bytes as text, in the caller's body rather than the copy.
    const std::string_view trimmed = TrimLine(text);
    out.body_row = request_body.substr(static_cast<size_t>(trimmed.data() - text.data()), trimmed.size());
  }
  if (const size_t n = binary ? out.tuple.size() : out.row().size() + 1; n > body_limit) {
    out.status = 413;
    out.error = RowTooLargeError(n, body_limit);
    out.body_row = {};
    out.minified_row.clear();
    out.tuple = {};
  }
  return out;
}

BatchCheck CheckBatch(const Entity& entity, std::string& body, ChunkLimits limits, size_t max_errors,
                      const std::vector<const Entity*>& derived, PublishFormat format) {
  BatchCheck out;
  out.format = derived.empty() ? format : PublishFormat::kNdjson;
  const bool binary = out.format == PublishFormat::kPgCopy1;
  const size_t size = body.size();
  body.append(kChunkPadding, ' ');
  std::string error;
  std::string_view tuple;
  ChunkWriter writer(limits, out.format);
  const size_t bom = size >= 3 && std::memcmp(body.data(), "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;  // UTF-8 BOM
  const std::string_view padded(body.data() + bom, body.size() - bom);
  ForEachPaddedLine(padded, size - bom, [&](std::string_view raw, uint64_t line_no, size_t readable) {
    auto reject = [&](std::string why) {
      ++out.rejected;
      if (out.errors.size() < max_errors) out.errors.emplace_back(line_no, std::move(why));
    };
    if (raw.empty() || IsBlank(raw)) return true;
    if (!Validate(entity, derived, raw, readable, &error, binary ? &tuple : nullptr)) {
      reject(error);
      return true;
    }
    const std::string_view row = binary ? tuple : TrimLine(raw);
    if (!writer.Add(row, line_no)) {
      reject(RowTooLargeError(row.size() + (binary ? 0 : 1), limits.max_bytes));
      return true;
    }
    ++out.accepted;
    return true;
  });
  out.chunks = writer.TakeAll();
  return out;
}

}  // namespace nomnom
