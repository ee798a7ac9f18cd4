// Splits CSV (RFC 4180) and dbgen .tbl text into records of fields.
//
//   CSV: fields separated by ',', records by LF or CRLF. A field that starts
//        with '"' is quoted: it runs to the next '"' not followed by another
//        '"' ("" is one quote), and may hold commas, CR and LF; after its
//        closing quote comes a separator or the end of the record. An empty
//        unquoted field is NULL; "" (quoted, empty) is the empty string.
//   TBL: dbgen's layout: fields separated by '|', every record ending in '|'
//        then LF (or CRLF); no quoting. An empty field is NULL.
//
// A record's number of fields is not checked here (the caller knows the
// column count); a record that is not well formed is an error naming its
// line and column (1-based field number), e.g. a quote inside an unquoted
// CSV field, text after a closing quote, an unterminated quote at the end of
// the input, a .tbl record without its trailing '|'.
//
// Thread-safety: a DelimitedParser is used by one thread; the views it hands
// out point into the input or into its scratch space and stay valid until the
// next call.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace nomnom {

enum class DelimitedDialect { kCsv, kTbl };

struct DelimitedField {
  std::string_view value;
  bool null = false;  // empty and unquoted
};

class DelimitedParser {
 public:
  enum class Result {
    kRecord,    // *fields holds one record; *consumed bytes were used
    kNeedMore,  // the input ends inside a record: call again with more (or with at_end)
    kError,     // *error says why; *consumed bytes skip the bad record
  };

  explicit DelimitedParser(DelimitedDialect dialect) : dialect_(dialect) {}

  // Parses the record at the start of `text`. `at_end`: no more input follows
  // (a last record without its newline is complete; an open quote is an
  // error). `line` is the 1-based line number the record starts on, for
  // errors; *lines is set to the number of line breaks consumed.
  Result Next(std::string_view text, bool at_end, uint64_t line, std::vector<DelimitedField>* fields, size_t* consumed,
              uint64_t* lines, std::string* error);

  // Next with the fields handed to *sink as they are found: anything with
  // std::vector<DelimitedField>'s size(), empty(), clear() and
  // push_back(DelimitedField) (a pushed value's view is valid only during the
  // call). Same results, errors and *consumed / *lines as Next. Defined in
  // core/format/delimited_scan.h.
  template <typename Sink>
  Result NextInto(std::string_view text, bool at_end, uint64_t line, Sink* sink, size_t* consumed, uint64_t* lines,
                  std::string* error);

 private:
  // NextInto for each dialect, with *sink cleared and *consumed, *lines zeroed
  // (same contract otherwise). Defined in core/format/delimited_scan.h and
  // always inlined into NextInto.
  template <typename Sink>
  [[gnu::always_inline]] inline Result NextTblInto(std::string_view text, bool at_end, uint64_t line, Sink* sink,
                                                   size_t* consumed, uint64_t* lines, std::string* error);
  template <typename Sink>
  [[gnu::always_inline]] inline Result NextCsvInto(std::string_view text, bool at_end, uint64_t line, Sink* sink,
                                                   size_t* consumed, uint64_t* lines, std::string* error);
  // The CSV field quoted at text[open] that holds "" (a doubled quote),
  // unescaped into scratch_[scratch_index] (added when it is the next one).
  // Returns kRecord with *view on it, *end just past the closing quote and
  // *lf_count the line breaks inside; kNeedMore if the field (or a "" at its
  // end) may go on past the input and !at_end; kError if it is unterminated.
  Result UnescapeQuoted(std::string_view text, bool at_end, size_t open, size_t scratch_index, std::string_view* view,
                        size_t* end, uint64_t* lf_count);

  DelimitedDialect dialect_;
  // Unescaped quoted fields. A deque: growing it must not move the strings
  // (short ones live inside the object) that earlier fields point into.
  std::deque<std::string> scratch_;
};

}  // namespace nomnom
