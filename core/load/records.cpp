#include "core/load/records.h"

namespace nomnom::load_internal {

Result<HeaderSkip> FindHeader(const Chunk& chunk, DelimitedDialect dialect, const Entity& entity, HeaderMode mode,
                              bool strict, const std::string& path) {
  HeaderSkip h;
  if (mode == HeaderMode::kNo) return h;
  DelimitedParser parser(dialect);
  std::vector<DelimitedField> fields;
  std::string error;
  const std::string_view text = chunk.data.view();
  size_t off = 0;
  uint64_t line = chunk.first_line;
  while (off < text.size()) {
    size_t consumed = 0;
    uint64_t lines = 0;
    error.clear();
    const auto r = parser.Next(text.substr(off), true, line, &fields, &consumed, &lines, &error);
    if (consumed == 0) break;
    const std::string_view raw = RecordRaw(text.substr(off, consumed));
    if (raw.empty() || IsBlank(raw)) {
      off += consumed;
      line += lines;
      continue;
    }
    auto d = DecideHeader(entity, mode, strict, path, line, r == DelimitedParser::Result::kRecord, error, fields);
    if (!d.ok()) return d.status();
    h.decision = std::move(d).value();
    if (h.decision.is_header) {
      h.bytes = off + consumed;
      h.lines = line + lines - chunk.first_line;
    }
    return h;
  }
  return h;
}

const std::vector<DelimitedField>* KeptFields(const HeaderDecision* header, const std::vector<DelimitedField>& fields,
                                              std::vector<DelimitedField>* kept, std::string* error) {
  if (header == nullptr || header->kept.empty()) return &fields;
  if (fields.size() != header->width) {
    *error = "expected " + std::to_string(header->width) + " columns, found " + std::to_string(fields.size());
    return nullptr;
  }
  kept->clear();
  for (size_t c : header->kept) kept->push_back(fields[c]);
  return kept;
}

}  // namespace nomnom::load_internal
