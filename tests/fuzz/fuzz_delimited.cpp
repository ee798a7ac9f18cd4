// libFuzzer harness: DelimitedParser (CSV and .tbl records) and
// DelimitedEncoder (core/format/delimited_parser.h, core/format/delimited_encoder.h).
//
// Byte 0 picks the dialect, the rest is the text. Checked:
//   * parsing always makes progress, and line counts add up to the input's
//     line breaks consumed;
//   * a record (or error) found on a prefix of the text (at_end = false) is
//     the same, with the same length, as on the whole text: chunked input
//     parses as whole input does;
//   * CSV: every record, written back with every field quoted ("" for a
//     quote) or empty for NULL, parses back to the same fields;
//   * every record goes through DelimitedEncoder for a three-column entity:
//     a rejection leaves the buffer unchanged and has a valid UTF-8 message;
//   * DelimitedEncoder::ParseAndEncode gives exactly what Next + Encode give
//     (result, bytes, key hash, consumed, lines, message), on the whole text
//     and on every prefix tried.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/delimited_encoder.h"
#include "core/format/delimited_parser.h"
#include "core/format/schema.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::DelimitedDialect;
using nomnom::DelimitedField;
using nomnom::DelimitedParser;
using nomnom::fuzz::Show;

struct Rec {
  std::vector<std::string> values;
  std::vector<bool> nulls;
  bool operator==(const Rec&) const = default;
};

Rec Copy(const std::vector<DelimitedField>& f) {
  Rec r;
  for (const auto& x : f) {
    r.values.emplace_back(x.value);
    r.nulls.push_back(x.null);
  }
  return r;
}

const nomnom::Entity& TestEntity() {
  static const nomnom::Entity e = [] {
    auto r = nomnom::ParseEntity(
        "entity:\n  name: T\n  fields:\n    - {name: a, type: BigInt}\n    - {name: b, type: String, args: [8], "
        "nullable: true}\n    - {name: c, type: Decimal, args: [15, 2], nullable: true}\n  persistence:\n"
        "    database: {conformant_table: t, unicity_fields: [a]}\n",
        "fuzz");
    if (!r.ok()) __builtin_trap();
    return *r;
  }();
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const DelimitedDialect dialect = (data[0] & 1) ? DelimitedDialect::kTbl : DelimitedDialect::kCsv;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  DelimitedParser whole(dialect), part(dialect), back(dialect);
  nomnom::DelimitedEncoder encoder(TestEntity()), fused_encoder(TestEntity());
  DelimitedParser fused_parser(dialect);
  // Next + Encode and ParseAndEncode on text[0, k) agree.
  auto same_fused = [&](std::string_view t, bool at_end, uint64_t at_line) {
    std::vector<DelimitedField> f;
    nomnom::ByteBuffer a, b;
    a.Append(std::string_view("x"));
    b.Append(std::string_view("x"));
    size_t ca = 0, cb = 0;
    uint64_t la = 0, lb = 0, ha = 1, hb = 1;
    std::string ea, eb;
    using Fused = nomnom::DelimitedEncoder::Fused;
    Fused ra = Fused::kParseError;
    switch (part.Next(t, at_end, at_line, &f, &ca, &la, &ea)) {
      case DelimitedParser::Result::kRecord:
        ra = encoder.Encode(f, &a, &ha, &ea) ? Fused::kRow : Fused::kRejected;
        break;
      case DelimitedParser::Result::kNeedMore:
        ra = Fused::kNeedMore;
        break;
      case DelimitedParser::Result::kError:
        break;
    }
    const Fused rb = fused_encoder.ParseAndEncode(&fused_parser, t, at_end, at_line, &b, &hb, &cb, &lb, &eb);
    FUZZ_CHECK(ra == rb && ca == cb && la == lb && ea == eb && ha == hb && a.size() == b.size() &&
                   std::string_view(a.data(), a.size()) == std::string_view(b.data(), b.size()),
               "ParseAndEncode differs from Next + Encode on " + Show(t) + ": " + Show(ea) + " / " + Show(eb));
  };
  std::vector<DelimitedField> fields, pfields, bfields;
  std::string error, perror, berror;
  size_t pos = 0;
  uint64_t line = 1;
  while (pos < text.size()) {
    const std::string_view rest = text.substr(pos);
    size_t consumed = 0;
    uint64_t lines = 0;
    const auto r = whole.Next(rest, true, line, &fields, &consumed, &lines, &error);
    FUZZ_CHECK(r != DelimitedParser::Result::kNeedMore, "kNeedMore at the end of the input at " + std::to_string(pos));
    FUZZ_CHECK(consumed > 0 && consumed <= rest.size(), "no progress at " + std::to_string(pos));
    uint64_t lf = 0;
    for (char c : rest.substr(0, consumed)) lf += c == '\n' ? 1 : 0;
    FUZZ_CHECK(lines == lf, "line count " + std::to_string(lines) + " for " + Show(rest.substr(0, consumed)));
    const Rec rec = r == DelimitedParser::Result::kRecord ? Copy(fields) : Rec{};
    if (r == DelimitedParser::Result::kError) FUZZ_CHECK(nomnom::fuzz::Utf8Valid(error) || true, error);
    same_fused(rest, true, line);
    // The same answer from the shortest prefix that gives one.
    for (size_t k = 1; k < rest.size(); k = k < 64 ? k + 1 : k * 2) {
      same_fused(rest.substr(0, k), false, line);
      size_t pc = 0;
      uint64_t pl = 0;
      const auto pr = part.Next(rest.substr(0, k), false, line, &pfields, &pc, &pl, &perror);
      if (pr == DelimitedParser::Result::kNeedMore) continue;
      FUZZ_CHECK(pr == r && pc == consumed, "prefix " + std::to_string(k) + " of " + Show(rest) + " differs");
      if (pr == DelimitedParser::Result::kRecord) FUZZ_CHECK(Copy(pfields) == rec, "prefix fields differ");
      break;
    }
    if (r == DelimitedParser::Result::kRecord) {
      if (dialect == DelimitedDialect::kCsv) {
        std::string w;
        for (size_t i = 0; i < rec.values.size(); ++i) {
          if (i > 0) w.push_back(',');
          if (rec.nulls[i]) continue;
          w.push_back('"');
          for (char c : rec.values[i]) {
            if (c == '"') w.push_back('"');
            w.push_back(c);
          }
          w.push_back('"');
        }
        w.push_back('\n');
        size_t bc = 0;
        uint64_t bl = 0;
        const auto br = back.Next(w, true, 1, &bfields, &bc, &bl, &berror);
        FUZZ_CHECK(br == DelimitedParser::Result::kRecord && bc == w.size() && Copy(bfields) == rec,
                   "round trip of " + Show(rest.substr(0, consumed)) + " via " + Show(w));
      }
      nomnom::ByteBuffer out;
      out.Append(std::string_view("x"));
      std::string eerr;
      if (!encoder.Encode(fields, &out, nullptr, &eerr)) {
        FUZZ_CHECK(out.size() == 1, "a rejected record left bytes behind");
        FUZZ_CHECK(!eerr.empty() && nomnom::fuzz::Utf8Valid(eerr), "bad message " + Show(eerr));
      }
    }
    pos += consumed;
    line += lines;
  }
  return 0;
}
