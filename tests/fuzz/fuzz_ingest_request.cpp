// libFuzzer harness: the validation half of nomnomd's ingest handlers
// (daemon/ingest_request.h), which sees every request body a client sends to
// /ingest/message and /ingest/batch.
//
// Input: byte 0 picks the endpoint (bit 0) and chunk limits (bits 1-7), the
// rest is the request body. Invariants:
//   CheckMessage: a good row is one line (no CR or LF), fits the body limit,
//     and is accepted again unchanged when sent as a body of its own; a
//     refusal is 400 or 413 with a non-empty, valid UTF-8 reason.
//   CheckBatch: accepted + rejected = the non-blank lines; reported errors are
//     valid UTF-8, at most max_errors, on increasing line numbers; every chunk
//     holds 1..max_rows rows as that many '\n'-terminated lines within
//     max_bytes, first_line <= last_line; the chunks hold `accepted` rows,
//     and each of their lines is accepted again as a message.
// (The HTTP parsing and routing in front of these are Boost.Beast's and
// daemon/http_server's, tested in tests/integration and tests/e2e.)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/format/schema.h"
#include "daemon/ingest_request.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

const nomnom::Entity& TheEntity() {
  static const nomnom::Entity entity = [] {
    auto e = nomnom::ParseEntity(R"(
entity:
  name: Every
  fields:
    - { name: id, type: String, args: [16], nullable: false }
    - { name: s, type: String, nullable: true }
    - { name: i, type: Integer, nullable: true }
    - { name: b, type: BigInt, nullable: true }
    - { name: f, type: Float, nullable: true }
    - { name: n, type: Decimal, nullable: true }
    - { name: ok, type: Boolean, nullable: true }
    - { name: d, type: Date, nullable: true }
    - { name: ts, type: DateTime, nullable: true }
    - { name: j, type: Json, nullable: true }
  persistence: { database: { conformant_table: every, unicity_fields: [id] } }
)",
                                 "fuzz");
    if (!e.ok()) std::abort();
    return *e;
  }();
  return entity;
}

bool Blank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const nomnom::Entity& entity = TheEntity();
  const nomnom::ChunkLimits limits{static_cast<size_t>(1 + ((flags >> 1) & 7)),
                                   static_cast<size_t>(16 + ((flags >> 4) & 15) * 24)};
  if ((flags & 1) == 0) {
    const nomnom::MessageCheck m = nomnom::CheckMessage(entity, body, limits.max_bytes);
    if (m.status == 200) {
      const std::string_view row = m.row();
      FUZZ_CHECK(!row.empty() && row.find_first_of("\r\n") == std::string::npos, "a good row is one line");
      FUZZ_CHECK(row.size() + 1 <= limits.max_bytes, "a good row fits the limit");
      FUZZ_CHECK(m.is_minified || (row.data() >= body.data() && row.data() + row.size() <= body.data() + body.size()),
                 "a row not minified is the body's own bytes");
      const nomnom::MessageCheck again = nomnom::CheckMessage(entity, row, limits.max_bytes);
      FUZZ_CHECK(again.status == 200 && again.row() == row, "a good row is accepted again unchanged");
    } else {
      FUZZ_CHECK(m.status == 400 || m.status == 413, "refusals are 400 or 413");
      FUZZ_CHECK(!m.error.empty() && nomnom::fuzz::Utf8Valid(m.error), "the reason is valid UTF-8");
    }
    return 0;
  }
  // Lines as the batch reader sees them (after a leading BOM).
  std::string_view rest = body;
  if (rest.size() >= 3 && rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);
  uint64_t non_blank = 0;
  for (size_t start = 0; start < rest.size();) {
    size_t nl = rest.find('\n', start);
    if (nl == std::string_view::npos) nl = rest.size();
    const std::string_view line = rest.substr(start, nl - start);
    if (!line.empty() && !Blank(line)) ++non_blank;
    start = nl + 1;
  }
  std::string copy(body);
  const size_t max_errors = flags & 7;
  const nomnom::BatchCheck b = nomnom::CheckBatch(entity, copy, limits, max_errors);
  FUZZ_CHECK(b.accepted + b.rejected == non_blank, "every non-blank line is accepted or rejected");
  FUZZ_CHECK(b.errors.size() <= max_errors && b.errors.size() <= b.rejected, "errors are bounded");
  uint64_t last_line = 0;
  for (const auto& [line, why] : b.errors) {
    FUZZ_CHECK(line > last_line, "error lines increase");
    FUZZ_CHECK(!why.empty() && nomnom::fuzz::Utf8Valid(why), "errors are valid UTF-8");
    last_line = line;
  }
  uint64_t rows = 0;
  for (const nomnom::ChunkBody& c : b.chunks) {
    FUZZ_CHECK(c.rows >= 1 && c.rows <= limits.max_rows, "chunk rows within the limit");
    FUZZ_CHECK(c.body.size() <= limits.max_bytes, "chunk bytes within the limit");
    FUZZ_CHECK(!c.body.empty() && c.body.back() == '\n', "chunk lines end with a newline");
    FUZZ_CHECK(c.first_line <= c.last_line, "chunk line range");
    uint64_t lines = 0;
    for (size_t start = 0; start < c.body.size();) {
      const size_t nl = c.body.find('\n', start);
      const std::string_view row(c.body.data() + start, nl - start);
      const nomnom::MessageCheck again = nomnom::CheckMessage(entity, row, limits.max_bytes);
      FUZZ_CHECK(again.status == 200, "a published row is a valid message");
      ++lines;
      start = nl + 1;
    }
    FUZZ_CHECK(lines == c.rows, "chunk row count");
    rows += c.rows;
  }
  FUZZ_CHECK(rows == b.accepted, "the chunks hold the accepted rows");
  return 0;
}
