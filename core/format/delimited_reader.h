// DelimitedReader: reads one CSV or dbgen .tbl input (core/format/delimited_parser.h)
// as a sequence of chunks made of whole RECORDS, with bounded memory; and the
// input-format and header decisions of a delimited load.
//
// It reads lines with an NdjsonReader (plain, .gz, .zst or stdin; a BOM
// dropped; a missing final newline supplied) and regroups them: a CSV record
// may span lines (a quoted field holding line breaks), so a chunk is cut only
// at a line break that ends a record, never inside a quoted field. Where a
// record ends is found exactly as DelimitedParser finds it, including how it
// resumes after a malformed record (at the next line break), so the parser
// never sees a record cut in two. .tbl records are single lines: chunks pass
// through unchanged.
//
// Chunks are Chunk values as NdjsonReader makes them: first_line is the
// physical line the chunk starts on, line_count its line breaks, data ends in
// '\n' and is padded. Records too long to keep are not put in any chunk but
// reported in `oversize` (then last_line > line when the record spans lines):
//   - a physical line longer than max_line_bytes (NdjsonReader's rule); when
//     it falls inside a multi-line CSV record, that whole record is reported
//     once, and reading resumes at the next line as at a record start;
//   - a multi-line CSV record longer than max_line_bytes that does not fit
//     in one line chunk: reported and streamed past (its bytes are not
//     kept). One within a chunk is left in it: memory stays bounded either
//     way, and the caller rejects records by their size.
//
// Thread-safety: a DelimitedReader is used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "core/format/delimited_parser.h"
#include "core/format/ndjson_reader.h"
#include "core/format/schema.h"

namespace nomnom {

enum class InputFormat { kAuto, kNdjson, kCsv, kTbl };

// "ndjson", "csv", "tbl" (and "auto").
const char* InputFormatName(InputFormat f);
Result<InputFormat> ParseInputFormat(const std::string& name);
// The format an input's name says: .csv and .tbl (also followed by .gz or
// .zst) are CSV and .tbl; anything else, and "-" (stdin), is NDJSON.
InputFormat InputFormatOfPath(const std::string& path);
// The one format of a load's inputs: `requested` unless kAuto, else each
// input's by its name, which must then all agree (an error names two inputs
// that differ).
Result<InputFormat> ResolveInputFormat(const std::vector<std::string>& inputs, InputFormat requested);

// Scans CSV text made of whole lines that starts at a record start
// (`inside` false) or inside a quoted field (`inside` true). Returns whether
// the text ends inside a quoted field; *first_end and *last_end are set to
// the offsets just past the first and the last line break that end a record
// (0 when none does).
bool ScanCsvRecords(std::string_view text, bool inside, size_t* first_end, size_t* last_end);

class DelimitedReader {
 public:
  // Opens path ("-": standard input). Fails with a Status naming the path.
  static Result<std::unique_ptr<DelimitedReader>> Open(const std::string& path, DelimitedDialect dialect,
                                                       const NdjsonReaderOptions& options);

  // As NdjsonReader::Next: fills *chunk with the next records; false at the
  // end of the input (*chunk may still carry `oversize` entries).
  Result<bool> Next(Chunk* chunk);
  uint64_t raw_bytes_read() const { return lines_->raw_bytes_read(); }

 private:
  DelimitedReader(std::unique_ptr<NdjsonReader> lines, DelimitedDialect dialect, size_t max_record_bytes)
      : lines_(std::move(lines)), dialect_(dialect), max_record_bytes_(max_record_bytes) {}
  // Reports the carried (partial) record as too long, ending on last_line.
  void DropCarry(Chunk* out, uint64_t last_line, uint64_t extra_bytes);
  // Reports the record skipped past (skip_) and ends skipping.
  void PushSkipped(Chunk* out);

  std::unique_ptr<NdjsonReader> lines_;
  const DelimitedDialect dialect_;
  const size_t max_record_bytes_;
  Chunk in_;                           // the line chunk being regrouped
  ByteBuffer carry_;                   // the start of a record that continues in the next line chunk
  uint64_t carry_line_ = 0;            // the line carry_ starts on
  uint64_t carry_lines_ = 0;           // line breaks in carry_
  bool skipping_ = false;              // streaming past a too-long record (inside a quoted field)
  OversizeLine skip_;                  // that record, reported when it ends
  std::vector<OversizeLine> pending_;  // reports for the next chunk
};

// Header handling of a delimited input: the first (non-blank) record is a
// header (kYes), is not (kNo), or is one when each of its values names a
// field of the entity, at most once (kAuto).
enum class HeaderMode { kAuto, kYes, kNo };

// The decision for one input's first record: whether it is a header and, if
// so, the columns it names. `parsed` is false when the record could not be
// parsed (`parse_error` says why): with kYes that is an error; otherwise it is
// not a header. Header columns that are not fields of the entity are ignored
// (their values are not loaded), as NDJSON ignores unknown keys, unless
// `strict`: then they are an error. An error names the input and line, and
// what DelimitedEncoder::SetColumns refuses (a repeated column, a NOT NULL
// field without one).
struct HeaderDecision {
  bool is_header = false;
  std::vector<std::string> columns;  // the names of the columns loaded, for DelimitedEncoder::SetColumns
  // When the header has columns the entity does not have: the (0-based)
  // input columns of `columns`, and the header's number of columns. Empty:
  // every input column is loaded.
  std::vector<size_t> kept;
  size_t width = 0;
};
Result<HeaderDecision> DecideHeader(const Entity& entity, HeaderMode mode, bool strict, const std::string& input,
                                    uint64_t line, bool parsed, const std::string& parse_error,
                                    const std::vector<DelimitedField>& fields);

}  // namespace nomnom
