#include "core/format/delimited_reader.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/format/delimited_encoder.h"

namespace nomnom {
namespace {

// How much of a too-long record is kept for the reject record.
constexpr size_t kPrefixBytes = 256;

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint64_t Newlines(const char* p, size_t n) { return static_cast<uint64_t>(std::count(p, p + n, '\n')); }

}  // namespace

const char* InputFormatName(InputFormat f) {
  switch (f) {
    case InputFormat::kAuto:
      return "auto";
    case InputFormat::kNdjson:
      return "ndjson";
    case InputFormat::kCsv:
      return "csv";
    case InputFormat::kTbl:
      return "tbl";
  }
  return "?";
}

Result<InputFormat> ParseInputFormat(const std::string& name) {
  for (InputFormat f : {InputFormat::kAuto, InputFormat::kNdjson, InputFormat::kCsv, InputFormat::kTbl}) {
    if (name == InputFormatName(f)) return f;
  }
  return Status::InvalidArgument("unknown input format '" + name + "' (ndjson, csv or tbl)");
}

InputFormat InputFormatOfPath(const std::string& path) {
  std::string p = path;
  for (const char* c : {".gz", ".zst"}) {
    if (EndsWith(p, c)) {
      p.resize(p.size() - std::strlen(c));
      break;
    }
  }
  if (EndsWith(p, ".csv")) return InputFormat::kCsv;
  if (EndsWith(p, ".tbl")) return InputFormat::kTbl;
  return InputFormat::kNdjson;
}

Result<InputFormat> ResolveInputFormat(const std::vector<std::string>& inputs, InputFormat requested) {
  if (requested != InputFormat::kAuto) return requested;
  InputFormat format = InputFormat::kNdjson;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const InputFormat f = InputFormatOfPath(inputs[i]);
    if (i > 0 && f != format) {
      return Status::InvalidArgument("inputs of different formats in one load: " + inputs[0] + " is " +
                                     InputFormatName(format) + ", " + inputs[i] + " is " + InputFormatName(f) +
                                     " (load them separately, or name the format of all of them)");
    }
    format = f;
  }
  return format;
}

bool ScanCsvRecords(std::string_view text, bool inside, size_t* first_end, size_t* last_end) {
  *first_end = *last_end = 0;
  const char* const b = text.data();
  const size_t n = text.size();
  auto record_end = [&](size_t lf) {
    if (*first_end == 0) *first_end = lf + 1;
    *last_end = lf + 1;
  };
  // Every line break in [from, to) ends a record (no quote lies between).
  auto record_ends_in = [&](size_t from, size_t to) {
    if (from >= to) return;
    if (*first_end == 0) {
      const void* f = std::memchr(b + from, '\n', to - from);
      if (f == nullptr) return;
      *first_end = static_cast<size_t>(static_cast<const char*>(f) - b) + 1;
    }
    const void* l = memrchr(b + from, '\n', to - from);
    if (l != nullptr) *last_end = static_cast<size_t>(static_cast<const char*>(l) - b) + 1;
  };
  // The record ends at the next line break at or after `from` (its LF or
  // CRLF, or where DelimitedParser resumes after a malformed record).
  // Returns where the next record starts (n: none in the text).
  auto end_at_next_lf = [&](size_t from) -> size_t {
    const void* lf = from < n ? std::memchr(b + from, '\n', n - from) : nullptr;
    if (lf == nullptr) return n;
    const size_t at = static_cast<size_t>(static_cast<const char*>(lf) - b);
    record_end(at);
    return at + 1;
  };
  size_t i = 0;
  while (i < n) {
    const void* q = std::memchr(b + i, '"', n - i);
    const size_t p = q != nullptr ? static_cast<size_t>(static_cast<const char*>(q) - b) : n;
    if (inside) {
      if (q == nullptr) return true;
      if (p + 1 < n && b[p + 1] == '"') {  // "" is one quote
        i = p + 2;
        continue;
      }
      inside = false;  // the closing quote: a separator, the record's end, or an error
      i = p + 1;
      if (i < n && b[i] == ',') {
        ++i;
        continue;
      }
      i = end_at_next_lf(i);
      continue;
    }
    record_ends_in(i, p);
    if (q == nullptr) return false;
    if (p == 0 || b[p - 1] == ',' || b[p - 1] == '\n') {  // a field starts with it: quoted
      inside = true;
      i = p + 1;
      continue;
    }
    i = end_at_next_lf(p);  // a quote inside an unquoted field: a bad record, ending at its line's end
  }
  return inside;
}

Result<std::unique_ptr<DelimitedReader>> DelimitedReader::Open(const std::string& path, DelimitedDialect dialect,
                                                               const NdjsonReaderOptions& options) {
  auto lines = NdjsonReader::Open(path, options);
  if (!lines.ok()) return lines.status();
  return std::unique_ptr<DelimitedReader>(
      new DelimitedReader(std::move(lines).value(), dialect, options.max_line_bytes));
}

void DelimitedReader::DropCarry(Chunk* out, uint64_t last_line, uint64_t extra_bytes) {
  OversizeLine o;
  o.line = carry_line_;
  o.last_line = last_line;
  o.bytes = carry_.size() + extra_bytes;
  o.prefix.assign(carry_.data(), std::min(carry_.size(), kPrefixBytes));
  out->oversize.push_back(std::move(o));
  carry_.clear();
  carry_lines_ = 0;
}

void DelimitedReader::PushSkipped(Chunk* out) {
  if (skip_.last_line <= skip_.line) skip_.last_line = 0;  // one line after all (cut by the end of the input)
  out->oversize.push_back(std::move(skip_));
  skip_ = OversizeLine{};
  skipping_ = false;
}

Result<bool> DelimitedReader::Next(Chunk* chunk) {
  if (dialect_ == DelimitedDialect::kTbl) return lines_->Next(chunk);  // one record per line
  chunk->oversize.clear();
  chunk->line_count = 0;
  for (;;) {
    auto more = lines_->Next(&in_);
    if (!more.ok()) return more.status();
    // Lines too long to keep fall between line chunks, so the first one
    // continues a record carried (or skipped) from the previous chunk.
    for (OversizeLine& o : in_.oversize) {
      if (skipping_) {
        skip_.last_line = o.line;
        skip_.bytes += o.bytes;
        PushSkipped(chunk);
      } else if (!carry_.empty()) {
        DropCarry(chunk, o.line, o.bytes);
      } else {
        chunk->oversize.push_back(std::move(o));
      }
    }
    if (!*more) {
      if (skipping_) {  // unterminated: the input ends inside its quoted field
        PushSkipped(chunk);
      }
      if (carry_.empty()) return false;
      // The input ends inside a quoted field: the parser reports the record.
      chunk->first_line = carry_line_;
      chunk->line_count = carry_lines_;
      chunk->data.clear();
      chunk->data.Reserve(carry_.size() + kChunkPadding);
      chunk->data.Append(carry_.view());
      std::memset(chunk->data.data() + chunk->data.size(), 0, kChunkPadding);
      carry_.clear();
      carry_lines_ = 0;
      return true;
    }
    const std::string_view text = in_.data.view();
    const bool continued = skipping_ || !carry_.empty();
    size_t first = 0, last = 0;
    const bool open_at_end = ScanCsvRecords(text, continued, &first, &last);
    size_t start = 0;  // where this chunk's own records start in text
    if (continued && first == 0) {
      // All of text belongs to the record that started before it.
      if (skipping_) {
        skip_.bytes += text.size();
        skip_.last_line = in_.first_line + in_.line_count - 1;
        continue;
      }
      carry_.Append(text);
      carry_lines_ += in_.line_count;
      if (carry_.size() > max_record_bytes_) {
        skip_ =
            OversizeLine{carry_line_, carry_.size(), std::string(carry_.data(), std::min(carry_.size(), kPrefixBytes)),
                         carry_line_ + carry_lines_ - 1};
        carry_.clear();
        carry_lines_ = 0;
        skipping_ = true;
      }
      continue;
    }
    if (continued) {
      // The continued record ends at `first`.
      const uint64_t last_line = in_.first_line + Newlines(text.data(), first) - 1;
      if (skipping_) {
        skip_.bytes += first - 1;
        skip_.last_line = last_line;
        PushSkipped(chunk);
        start = first;
      } else if (carry_.size() + first - 1 > max_record_bytes_) {
        DropCarry(chunk, last_line, first - 1);
        start = first;
      }
    }
    // Output: the carry, then text[start, end); text[end, size) is carried.
    const size_t end = open_at_end ? std::max(last, start) : text.size();
    const uint64_t skipped_lines = start == 0 ? 0 : Newlines(text.data(), start);
    const uint64_t tail_lines = Newlines(text.data() + end, text.size() - end);
    const uint64_t out_first_line = carry_.empty() ? in_.first_line + skipped_lines : carry_line_;
    const uint64_t out_lines = carry_lines_ + (in_.line_count - skipped_lines - tail_lines);
    const bool has_output = !carry_.empty() || end > start;
    if (has_output) {
      if (carry_.empty() && start == 0 && end == text.size()) {
        std::swap(chunk->data, in_.data);  // the common case: the line chunk is whole records
      } else {
        chunk->data.clear();
        chunk->data.Reserve(carry_.size() + (end - start) + kChunkPadding);
        chunk->data.Append(carry_.view());
        chunk->data.Append(text.substr(start, end - start));
        std::memset(chunk->data.data() + chunk->data.size(), 0, kChunkPadding);
      }
      chunk->first_line = out_first_line;
      chunk->line_count = out_lines;
    }
    carry_.clear();
    carry_lines_ = 0;
    if (end < text.size()) {
      carry_line_ = in_.first_line + (in_.line_count - tail_lines);
      carry_lines_ = tail_lines;
      if (text.size() - end > max_record_bytes_) {
        skip_ = OversizeLine{carry_line_, text.size() - end, std::string(text.substr(end, kPrefixBytes)),
                             carry_line_ + carry_lines_ - 1};
        carry_lines_ = 0;
        skipping_ = true;
      } else {
        carry_.Append(text.substr(end));
      }
    }
    if (has_output) return true;
  }
}

Result<HeaderDecision> DecideHeader(const Entity& entity, HeaderMode mode, bool strict, const std::string& input,
                                    uint64_t line, bool parsed, const std::string& parse_error,
                                    const std::vector<DelimitedField>& fields) {
  HeaderDecision d;
  if (mode == HeaderMode::kNo) return d;
  const std::string where = (input == "-" ? std::string("<stdin>") : input) + ":" + std::to_string(line) + ": ";
  if (!parsed) {
    if (mode == HeaderMode::kYes) return Status::InvalidArgument(where + "cannot read the header: " + parse_error);
    return d;
  }
  if (mode == HeaderMode::kAuto) {
    std::set<std::string_view> seen;
    for (const DelimitedField& f : fields) {
      if (f.null || entity.FieldIndex(f.value) < 0 || !seen.insert(f.value).second) return d;
    }
  }
  d.width = fields.size();
  for (size_t c = 0; c < fields.size(); ++c) {
    if (!strict && entity.FieldIndex(fields[c].value) < 0) continue;  // not loaded
    d.columns.emplace_back(fields[c].value);
    d.kept.push_back(c);
  }
  if (d.columns.empty()) return Status::InvalidArgument(where + "the header names no field of entity " + entity.name);
  if (d.kept.size() == fields.size()) d.kept.clear();
  DelimitedEncoder check(entity);
  if (Status s = check.SetColumns(d.columns); !s.ok()) return Status::InvalidArgument(where + s.message());
  d.is_header = true;
  return d;
}

}  // namespace nomnom
