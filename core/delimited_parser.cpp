#include "core/delimited_parser.h"

namespace nomnom {
namespace {

// Position of the end of the record starting at text[from] when it has no
// quotes: the LF, or npos.
size_t FindLf(std::string_view text, size_t from) { return text.find('\n', from); }

}  // namespace

DelimitedParser::Result DelimitedParser::Next(std::string_view text, bool at_end, uint64_t line,
                                              std::vector<DelimitedField>* fields, size_t* consumed, uint64_t* lines,
                                              std::string* error) {
  fields->clear();
  *lines = 0;
  *consumed = 0;
  const char sep = dialect_ == DelimitedDialect::kCsv ? ',' : '|';
  size_t used_scratch = 0;
  // The record is bad at text[at]: skip to the end of that physical line.
  auto fail = [&](uint64_t at_line, size_t column, const std::string& why, size_t at) {
    const size_t lf = FindLf(text, at);
    if (lf == std::string_view::npos && !at_end) return Result::kNeedMore;
    *error = "line " + std::to_string(at_line) + ", column " + std::to_string(column) + ": " + why;
    *consumed = lf == std::string_view::npos ? text.size() : lf + 1;
    *lines = 0;
    for (size_t k = 0; k < *consumed; ++k) *lines += text[k] == '\n' ? 1 : 0;
    return Result::kError;
  };
  size_t i = 0;
  uint64_t cur_line = line;
  const size_t n = text.size();
  if (dialect_ == DelimitedDialect::kTbl) {
    const size_t lf = FindLf(text, 0);
    if (lf == std::string_view::npos && !at_end) return Result::kNeedMore;
    size_t end = lf == std::string_view::npos ? n : lf;
    *consumed = lf == std::string_view::npos ? n : lf + 1;
    *lines = lf == std::string_view::npos ? 0 : 1;
    if (end > 0 && text[end - 1] == '\r') --end;
    std::string_view rec = text.substr(0, end);
    if (rec.empty() || rec.back() != '|') {
      size_t cols = 1;
      for (char c : rec) cols += c == '|' ? 1 : 0;
      *error = "line " + std::to_string(line) + ", column " + std::to_string(cols) + ": a .tbl record must end in '|'";
      return Result::kError;
    }
    rec.remove_suffix(1);
    size_t start = 0;
    while (true) {
      const size_t bar = rec.find('|', start);
      const std::string_view v =
          rec.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
      fields->push_back(DelimitedField{v, v.empty()});
      if (bar == std::string_view::npos) break;
      start = bar + 1;
    }
    return Result::kRecord;
  }
  // CSV.
  while (true) {
    const size_t column = fields->size() + 1;
    if (i < n && text[i] == '"') {
      if (used_scratch == scratch_.size()) scratch_.emplace_back();
      std::string& s = scratch_[used_scratch++];
      s.clear();
      size_t j = i + 1;
      while (true) {
        if (j >= n) {
          if (!at_end) return Result::kNeedMore;
          return fail(line, column, "unterminated quoted field (opened on line " + std::to_string(line) + ")", n);
        }
        const char c = text[j];
        if (c == '"') {
          if (j + 1 < n && text[j + 1] == '"') {
            s.push_back('"');
            j += 2;
            continue;
          }
          if (j + 1 >= n && !at_end) return Result::kNeedMore;  // "" may straddle the end
          ++j;
          break;
        }
        if (c == '\n') ++cur_line;
        s.push_back(c);
        ++j;
      }
      fields->push_back(DelimitedField{std::string_view(s), false});
      i = j;
      if (i >= n) {
        if (!at_end) return Result::kNeedMore;
        break;
      }
      if (text[i] == sep) {
        ++i;
        continue;
      }
      if (text[i] == '\n' || (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')) break;
      if (text[i] == '\r' && i + 1 >= n && !at_end) return Result::kNeedMore;
      return fail(cur_line, column, "text after the closing quote of a quoted field", i);
    }
    // Unquoted field.
    size_t j = i;
    while (j < n && text[j] != sep && text[j] != '\n') {
      if (text[j] == '"') return fail(cur_line, column, "a quote inside an unquoted field (quote the whole field)", j);
      ++j;
    }
    if (j >= n && !at_end) return Result::kNeedMore;
    size_t end = j;
    if (j < n && text[j] == '\n' && end > i && text[end - 1] == '\r') --end;
    if (j >= n && end > i && text[end - 1] == '\r') --end;
    const std::string_view v = text.substr(i, end - i);
    fields->push_back(DelimitedField{v, v.empty()});
    i = j;
    if (i < n && text[i] == sep) {
      ++i;
      if (i >= n && !at_end) return Result::kNeedMore;
      if (i >= n) {
        fields->push_back(DelimitedField{{}, true});
        break;
      }
      continue;
    }
    break;
  }
  // At a record end: LF, CRLF or the end of the input.
  if (i < n && text[i] == '\r') ++i;
  if (i < n && text[i] == '\n') {
    ++i;
    ++cur_line;
  }
  *consumed = i;
  *lines = cur_line - line;
  return Result::kRecord;
}

}  // namespace nomnom
