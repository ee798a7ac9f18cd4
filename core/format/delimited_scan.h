// The record scanner behind DelimitedParser::Next, as a template over where
// the fields go: a std::vector<DelimitedField> (Next) or anything with the
// same size/empty/clear/push_back (DelimitedEncoder::ParseAndEncode, which
// encodes each field as it is found). Include only from .cpp files.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/format/delimited_parser.h"

namespace nomnom {
namespace delimited_internal {

// Position of the end of the record starting at text[from] when it has no
// quotes: the LF, or npos.
inline size_t FindLf(std::string_view text, size_t from) { return text.find('\n', from); }

// The positions of the special bytes (the separator, LF and, for CSV, '"')
// in p[0, n), in order, found 64 bytes at a time: one bit mask per block, so
// finding the next field end does not wait on the previous one. Reads
// nothing outside p[0, n).
class SpecialBytes {
 public:
  SpecialBytes(const char* p, size_t n, char sep, bool quotes) : p_(p), n_(n), sep_(sep), quote_(quotes ? '"' : '\n') {
    Restart(0);
  }

  // Forgets what was found and looks again from p[from].
  void Restart(size_t from) {
    base_ = from;
    mask_ = from < n_ ? Load(from) : 0;
  }

  // The position of the next special byte, or n when there is none.
  size_t Next() {
    while (mask_ == 0) {
      base_ += 64;
      if (base_ >= n_) return n_;
      mask_ = Load(base_);
    }
    const size_t at = base_ + static_cast<size_t>(__builtin_ctzll(mask_));
    mask_ &= mask_ - 1;
    return at;
  }

 private:
  // Bit k set: p[at + k] is special (k < 64, at + k < n).
  uint64_t Load(size_t at) const {
    uint64_t mask = 0;
#ifdef __SSE2__
    if (n_ - at >= 64) {
      const __m128i v_sep = _mm_set1_epi8(sep_);
      const __m128i v_lf = _mm_set1_epi8('\n');
      const __m128i v_quote = _mm_set1_epi8(quote_);
      for (int k = 0; k < 4; ++k) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_ + at + 16 * k));
        const __m128i hit =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, v_sep), _mm_cmpeq_epi8(v, v_lf)), _mm_cmpeq_epi8(v, v_quote));
        mask |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(hit))) << (16 * k);
      }
      return mask;
    }
#endif
    const size_t end = n_ - at < 64 ? n_ : at + 64;
    for (size_t k = at; k < end; ++k) {
      const char c = p_[k];
      if (c == sep_ || c == '\n' || c == quote_) mask |= uint64_t{1} << (k - at);
    }
    return mask;
  }

  const char* p_;
  size_t n_;
  char sep_;
  char quote_;  // '"', or LF again when quotes are not special
  size_t base_ = 0;
  uint64_t mask_ = 0;
};

}  // namespace delimited_internal

template <typename Sink>
DelimitedParser::Result DelimitedParser::NextInto(std::string_view text, bool at_end, uint64_t line, Sink* fields,
                                                  size_t* consumed, uint64_t* lines, std::string* error) {
  fields->clear();
  *lines = 0;
  *consumed = 0;
  if (dialect_ == DelimitedDialect::kTbl) return NextTblInto(text, at_end, line, fields, consumed, lines, error);
  return NextCsvInto(text, at_end, line, fields, consumed, lines, error);
}

template <typename Sink>
DelimitedParser::Result DelimitedParser::NextTblInto(std::string_view text, bool at_end, uint64_t line, Sink* fields,
                                                     size_t* consumed, uint64_t* lines, std::string* error) {
  const char* const p = text.data();
  const size_t n = text.size();
  // One pass: every '|' ends a field; the LF (or the end of the input) ends
  // the record, and what lies between the last '|' and it may only be the
  // CR of a CRLF.
  delimited_internal::SpecialBytes special(p, n, '|', false);
  size_t start = 0;
  size_t j;
  while (true) {
    j = special.Next();
    if (j >= n || p[j] == '\n') break;
    fields->push_back(DelimitedField{std::string_view(p + start, j - start), j == start});
    start = j + 1;
  }
  if (j >= n && !at_end) {
    fields->clear();
    return Result::kNeedMore;
  }
  *consumed = j >= n ? n : j + 1;
  *lines = j >= n ? 0 : 1;
  size_t end = j;
  if (end > start && p[end - 1] == '\r') --end;
  if (end != start || fields->empty()) {
    // The record (without its CR) does not end in '|': its columns are the
    // bars seen plus the text after the last one.
    const size_t cols = fields->size() + 1;
    fields->clear();
    *error = "line " + std::to_string(line) + ", column " + std::to_string(cols) + ": a .tbl record must end in '|'";
    return Result::kError;
  }
  return Result::kRecord;
}

template <typename Sink>
DelimitedParser::Result DelimitedParser::NextCsvInto(std::string_view text, bool at_end, uint64_t line, Sink* fields,
                                                     size_t* consumed, uint64_t* lines, std::string* error) {
  const char sep = ',';
  const char* const p = text.data();
  const size_t n = text.size();
  size_t used_scratch = 0;
  // The record is bad at text[at]: skip to the end of that physical line.
  auto fail = [&](uint64_t at_line, size_t column, const std::string& why, size_t at) {
    const size_t lf = delimited_internal::FindLf(text, at);
    if (lf == std::string_view::npos && !at_end) return Result::kNeedMore;
    *error = "line " + std::to_string(at_line) + ", column " + std::to_string(column) + ": " + why;
    *consumed = lf == std::string_view::npos ? text.size() : lf + 1;
    *lines = static_cast<uint64_t>(std::count(p, p + *consumed, '\n'));
    return Result::kError;
  };
  delimited_internal::SpecialBytes special(p, n, sep, true);
  size_t i = 0;
  uint64_t cur_line = line;
  while (true) {
    const size_t column = fields->size() + 1;
    if (i < n && p[i] == '"') {
      // Quoted. Usually no "" inside: the value is the input between the
      // quotes, used in place. Otherwise it is unescaped into scratch_.
      // The special bytes found from here on are the opening quote, then
      // separators and LFs inside the field, up to the next quote.
      size_t j;
      special.Next();  // the opening quote, i
      uint64_t lfs = 0;
      size_t close = special.Next();
      for (; close < n && p[close] != '"'; close = special.Next()) lfs += p[close] == '\n' ? 1 : 0;
      if (close >= n) {
        if (!at_end) return Result::kNeedMore;
        return fail(line, column, "unterminated quoted field (opened on line " + std::to_string(line) + ")", n);
      }
      if (close + 1 < n && p[close + 1] == '"') {
        // Its own locals for the out-of-line call: no address of the loop's
        // variables escapes, so they stay in registers.
        std::string_view value;
        size_t end = 0;
        uint64_t field_lfs = 0;
        const Result r = UnescapeQuoted(text, at_end, i, used_scratch++, &value, &end, &field_lfs);
        if (r == Result::kNeedMore) return r;
        if (r == Result::kError) {
          return fail(line, column, "unterminated quoted field (opened on line " + std::to_string(line) + ")", n);
        }
        cur_line += field_lfs;
        fields->push_back(DelimitedField{value, false});
        j = end;
        special.Restart(j);
      } else {
        if (close + 1 >= n && !at_end) return Result::kNeedMore;  // "" may straddle the end
        cur_line += lfs;
        fields->push_back(DelimitedField{std::string_view(p + i + 1, close - i - 1), false});
        j = close + 1;
      }
      i = j;
      if (i >= n) {
        if (!at_end) return Result::kNeedMore;
        break;
      }
      if (p[i] == sep) {
        special.Next();  // this separator
        ++i;
        continue;
      }
      if (p[i] == '\n' || (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')) break;
      if (p[i] == '\r' && i + 1 >= n && !at_end) return Result::kNeedMore;
      return fail(cur_line, column, "text after the closing quote of a quoted field", i);
    }
    // Unquoted field: up to the next separator or LF; a quote in it is an error.
    const size_t j = special.Next();  // >= i: the bytes before i were consumed
    if (j + 1 < n && p[j] == sep) {   // the common case: a separator, more input after it
      fields->push_back(DelimitedField{std::string_view(p + i, j - i), j == i});
      i = j + 1;
      continue;
    }
    if (j < n && p[j] == '"') {
      return fail(cur_line, column, "a quote inside an unquoted field (quote the whole field)", j);
    }
    if (j >= n && !at_end) return Result::kNeedMore;
    size_t end = j;
    // The CR of a CRLF, or a CR at the very end of the input, is not data; a
    // CR before a separator is.
    if ((j >= n || p[j] == '\n') && end > i && p[end - 1] == '\r') --end;
    fields->push_back(DelimitedField{std::string_view(p + i, end - i), end == i});
    i = j;
    if (i < n && p[i] == sep) {
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
  if (i < n && p[i] == '\r') ++i;
  if (i < n && p[i] == '\n') {
    ++i;
    ++cur_line;
  }
  *consumed = i;
  *lines = cur_line - line;
  return Result::kRecord;
}

}  // namespace nomnom
