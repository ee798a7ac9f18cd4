// Reading a load's inputs record by record, outside the pipeline's threads:
// the helpers its reader and parsers share with the fresh load's second and
// third passes (core/load/fresh_finish.cpp), which read inputs again.
// Internal to core/load.
//
// Pure functions and function templates; thread-safety is the caller's (each
// call uses its own reader and parser).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"
#include "core/format/delimited_parser.h"
#include "core/format/delimited_reader.h"
#include "core/format/ndjson_reader.h"
#include "core/format/schema.h"

namespace nomnom::load_internal {

// Whether a line holds nothing but spaces, tabs and carriage returns.
inline bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

// A delimited record's raw text: its bytes without the line break ending it.
inline std::string_view RecordRaw(std::string_view record) {
  if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
  if (!record.empty() && record.back() == '\r') record.remove_suffix(1);
  return record;
}

// Calls fn(line_no, raw, parsed) for every non-blank record of a chunk of
// whole delimited records (core/format/delimited_reader.h) from byte skip_bytes on,
// which is line first_line; *fields holds the record when `parsed`, else
// *error says what is wrong with it (naming the column, and the line when it
// is not the record's first). Stops when fn returns false (then returns false).
template <typename Fn>
bool ForEachRecordIn(std::string_view text, uint64_t first_line, DelimitedParser* parser,
                     std::vector<DelimitedField>* fields, std::string* error, Fn&& fn) {
  size_t off = 0;
  uint64_t line = first_line;
  while (off < text.size()) {
    size_t consumed = 0;
    uint64_t lines = 0;
    error->clear();
    const auto r = parser->Next(text.substr(off), /*at_end=*/true, line, fields, &consumed, &lines, error);
    if (consumed == 0) consumed = text.size() - off;  // cannot happen with at_end; never loop
    const std::string_view raw = RecordRaw(text.substr(off, consumed));
    const uint64_t this_line = line;
    off += consumed;
    line += lines;
    if (raw.empty() || IsBlank(raw)) continue;
    const bool parsed = r == DelimitedParser::Result::kRecord;
    if (!parsed) {
      // The reject names the line already: "line N, " only when it differs.
      const std::string own = "line " + std::to_string(this_line) + ", ";
      if (error->compare(0, own.size(), own) == 0) error->erase(0, own.size());
    }
    if (!fn(this_line, raw, parsed)) return false;
  }
  return true;
}

// Where the records of one delimited input start: after its header, if its
// first non-blank record is one (DecideHeader). `chunk` is the input's first.
struct HeaderSkip {
  HeaderDecision decision;
  size_t bytes = 0;    // the header's end in the chunk
  uint64_t lines = 0;  // line breaks up to there
};
Result<HeaderSkip> FindHeader(const Chunk& chunk, DelimitedDialect dialect, const Entity& entity, HeaderMode mode,
                              bool strict, const std::string& path);

// The values of a record to encode: `fields` itself, or, under a header with
// columns the entity does not have, the others (in *kept). Null with *error
// set when the record has not as many values as the header.
const std::vector<DelimitedField>* KeptFields(const HeaderDecision* header, const std::vector<DelimitedField>& fields,
                                              std::vector<DelimitedField>* kept, std::string* error);

// Calls fn(line_no, raw, parsed, fields, columns) for every non-blank record
// after the header of one delimited input (columns: the header's, or null).
// Stops when fn returns false.
template <typename Fn>
Status ForEachRecord(const std::string& path, const NdjsonReaderOptions& ropts, DelimitedDialect dialect,
                     const Entity& entity, HeaderMode mode, bool strict, Fn&& fn) {
  auto reader = DelimitedReader::Open(path, dialect, ropts);
  if (!reader.ok()) return reader.status();
  DelimitedParser parser(dialect);
  std::vector<DelimitedField> fields;
  std::string error;
  Chunk chunk;
  bool first = true;
  std::shared_ptr<const HeaderDecision> columns;
  for (;;) {
    auto more = (*reader)->Next(&chunk);
    if (!more.ok()) return more.status();
    if (!*more) return Status::Ok();
    size_t skip = 0;
    uint64_t skip_lines = 0;
    if (first) {
      first = false;
      auto h = FindHeader(chunk, dialect, entity, mode, strict, path);
      if (!h.ok()) return h.status();
      skip = h->bytes;
      skip_lines = h->lines;
      if (h->decision.is_header) columns = std::make_shared<HeaderDecision>(std::move(h->decision));
    }
    const bool go_on = ForEachRecordIn(
        chunk.data.view().substr(skip), chunk.first_line + skip_lines, &parser, &fields, &error,
        [&](uint64_t line, std::string_view raw, bool parsed) { return fn(line, raw, parsed, fields, columns.get()); });
    if (!go_on) return Status::Ok();
  }
}

// Calls fn(line_no, line, readable) for every non-blank line of one input
// (lines longer than max_line_bytes are skipped), where `readable` bytes from
// line.data() may be read. Stops when fn returns false.
template <typename Fn>
Status ForEachLine(const std::string& path, const NdjsonReaderOptions& ropts, Fn&& fn) {
  auto reader = NdjsonReader::Open(path, ropts);
  if (!reader.ok()) return reader.status();
  Chunk chunk;
  for (;;) {
    auto more = (*reader)->Next(&chunk);
    if (!more.ok()) return more.status();
    if (!*more) return Status::Ok();
    bool stopped = false;
    ForEachPaddedLine(std::string_view(chunk.data.data(), chunk.data.size() + kChunkPadding), chunk.data.size(),
                      [&](std::string_view line, uint64_t n, size_t readable) {
                        if (line.empty() || IsBlank(line)) return true;
                        stopped = !fn(chunk.first_line + n - 1, line, readable);
                        return !stopped;
                      });
    if (stopped) return Status::Ok();
  }
}

}  // namespace nomnom::load_internal
