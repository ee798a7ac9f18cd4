// libFuzzer harness: the message-id parsers of core/queue/ingest_format.h, which read
// ids that come from clients (/ingest/status/{id}) and headers that come from
// JetStream messages (Nomnom-Chunk).
//
// The whole input is the id. ParseChunkHeader and ParseStatusId are compared
// with straightforward reference parsers written here, and what they accept is
// formatted back (FormatChunkHeader, MessageId) and parsed again.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/queue/ingest_format.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::fuzz::Show;

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Decimal digits (leading zeros allowed) that fit a uint32.
std::optional<uint32_t> RefU32(std::string_view s) {
  if (!AllDigits(s)) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    v = v * 10 + static_cast<uint64_t>(c - '0');
    if (v > UINT32_MAX) return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

std::optional<std::pair<uint32_t, uint32_t>> RefChunkHeader(std::string_view s) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto k = RefU32(s.substr(0, slash)), n = RefU32(s.substr(slash + 1));
  if (!k || !n || *n == 0 || *k >= *n) return std::nullopt;
  return std::make_pair(*k, *n);
}

bool RefUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = s[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);

  const auto chunk = nomnom::ParseChunkHeader(s);
  const auto ref_chunk = RefChunkHeader(s);
  FUZZ_CHECK(
      chunk.has_value() == ref_chunk.has_value(),
      "ParseChunkHeader(\"" + Show(s) + "\") " + (chunk ? "accepted" : "rejected") + " it, the reference did not");
  if (chunk) {
    FUZZ_CHECK(*chunk == *ref_chunk, "ParseChunkHeader(\"" + Show(s) + "\") values differ from the reference");
    const std::string again = nomnom::FormatChunkHeader(chunk->first, chunk->second);
    FUZZ_CHECK(nomnom::ParseChunkHeader(again) == chunk, "FormatChunkHeader round trip: " + again);
  }

  const auto key = nomnom::ParseStatusId(s);
  bool ref_ok = false;
  if (RefUuid(s)) {
    ref_ok = true;
    FUZZ_CHECK(key && key->kind == nomnom::StatusKey::Kind::kBatch && key->batch_id == s,
               "ParseStatusId(\"" + Show(s) + "\") is not the batch");
  } else if (s.size() > 37 && s[36] == '.' && RefUuid(s.substr(0, 36))) {
    if (auto row = RefU32(s.substr(37))) {
      ref_ok = true;
      FUZZ_CHECK(
          key && key->kind == nomnom::StatusKey::Kind::kMessage && key->batch_id == s.substr(0, 36) && key->row == *row,
          "ParseStatusId(\"" + Show(s) + "\") is not message row " + std::to_string(*row));
      FUZZ_CHECK(nomnom::ParseStatusId(nomnom::MessageId(key->batch_id, key->row))->row == key->row,
                 "MessageId round trip");
    }
  }
  FUZZ_CHECK(key.has_value() == ref_ok, "ParseStatusId(\"" + Show(s) + "\") accepted what the reference rejects");
  return 0;
}
