#include "core/format/delimited_parser.h"

#include "core/format/delimited_scan.h"

namespace nomnom {

DelimitedParser::Result DelimitedParser::Next(std::string_view text, bool at_end, uint64_t line,
                                              std::vector<DelimitedField>* fields, size_t* consumed, uint64_t* lines,
                                              std::string* error) {
  return NextInto(text, at_end, line, fields, consumed, lines, error);
}

DelimitedParser::Result DelimitedParser::UnescapeQuoted(std::string_view text, bool at_end, size_t open,
                                                        size_t scratch_index, std::string_view* view, size_t* end,
                                                        uint64_t* lf_count) {
  const char* const p = text.data();
  const size_t n = text.size();
  if (scratch_index == scratch_.size()) scratch_.emplace_back();
  std::string& s = scratch_[scratch_index];
  s.clear();
  uint64_t lfs = 0;
  size_t j = open + 1;
  while (true) {
    if (j >= n) return at_end ? Result::kError : Result::kNeedMore;
    const char c = p[j];
    if (c == '"') {
      if (j + 1 < n && p[j + 1] == '"') {
        s.push_back('"');
        j += 2;
        continue;
      }
      if (j + 1 >= n && !at_end) return Result::kNeedMore;  // "" may straddle the end
      ++j;
      break;
    }
    if (c == '\n') ++lfs;
    s.push_back(c);
    ++j;
  }
  *view = s;
  *end = j;
  *lf_count = lfs;
  return Result::kRecord;
}

}  // namespace nomnom
