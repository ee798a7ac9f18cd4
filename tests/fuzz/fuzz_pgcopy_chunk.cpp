// libFuzzer harness: the pgcopy1 chunk framing walker (WalkTuples,
// core/format/pgcopy_chunk.h) a worker runs on every binary chunk before COPY, and
// the dead-letter rendering of a tuple (TupleRaw, core/format/tuple_json.h).
//
// Input: byte 0 is the column count (0..15), byte 1 the Nomnom-Rows header
// (0..255), the rest is the body. Invariants: the walker never reads outside
// the body (ASan) and, when it accepts, an independent walk here agrees: the
// offsets are increasing, start inside the body, each tuple has `columns`
// fields whose lengths are -1 or fit, and the tuples end exactly at the body's
// end. TupleRaw of each accepted tuple (and of the whole body) is valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/format/pgcopy_chunk.h"
#include "core/format/schema.h"
#include "core/format/tuple_json.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

const nomnom::Entity& TestEntity() {
  static const nomnom::Entity entity = [] {
    nomnom::Entity e;
    e.name = "Fuzz";
    e.table = "fuzz";
    const nomnom::FieldType types[] = {
        nomnom::FieldType::kString,   nomnom::FieldType::kInteger,  nomnom::FieldType::kBigInt,
        nomnom::FieldType::kFloat,    nomnom::FieldType::kDecimal,  nomnom::FieldType::kBoolean,
        nomnom::FieldType::kDate,     nomnom::FieldType::kDateTime, nomnom::FieldType::kJson,
        nomnom::FieldType::kUuid,     nomnom::FieldType::kSmallInt, nomnom::FieldType::kReal,
        nomnom::FieldType::kJsonText, nomnom::FieldType::kTextArray};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); ++i) {
      nomnom::Field f;
      f.name = "f" + std::to_string(i);
      f.type = types[i];
      f.nullable = true;
      e.fields.push_back(f);
    }
    return e;
  }();
  return entity;
}

uint32_t Be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t columns = data[0] % 16;
  const uint64_t rows = data[1];
  const std::string body(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::vector<uint32_t> offsets;
  const std::string error = nomnom::WalkTuples(body, columns, rows, &offsets);
  FUZZ_CHECK(nomnom::fuzz::Utf8Valid(error), "error message is not UTF-8");
  if (!error.empty()) return 0;
  FUZZ_CHECK(offsets.size() == rows, "accepted with " + std::to_string(offsets.size()) + " offsets");
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  size_t pos = 0;
  for (size_t r = 0; r < offsets.size(); ++r) {
    FUZZ_CHECK(offsets[r] == pos, "offset of row " + std::to_string(r + 1));
    FUZZ_CHECK(body.size() - pos >= 2, "field count outside the body");
    FUZZ_CHECK(((size_t{p[pos]} << 8) | p[pos + 1]) == columns, "field count");
    pos += 2;
    for (size_t f = 0; f < columns; ++f) {
      FUZZ_CHECK(body.size() - pos >= 4, "length outside the body");
      const auto len = static_cast<int32_t>(Be32(p + pos));
      pos += 4;
      FUZZ_CHECK(len >= -1, "negative length accepted");
      if (len > 0) {
        FUZZ_CHECK(static_cast<size_t>(len) <= body.size() - pos, "length past the end accepted");
        pos += static_cast<size_t>(len);
      }
    }
    const size_t end = r + 1 < offsets.size() ? offsets[r + 1] : body.size();
    FUZZ_CHECK(end == pos, "tuple end");
    const std::string raw = nomnom::TupleRaw(TestEntity(), body.substr(offsets[r], end - offsets[r]));
    FUZZ_CHECK(!raw.empty(), "empty raw");
  }
  FUZZ_CHECK(pos == body.size(), "bytes after the last tuple accepted");
  // Any bytes rendered as a dead letter's raw: never crashes, never reads out
  // of bounds (the invalid UTF-8 of strings is escaped by the ledger).
  (void)nomnom::TupleRaw(TestEntity(), body);
  return 0;
}
