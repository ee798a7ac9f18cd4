// libFuzzer harness: DelimitedReader (core/format/delimited_reader.h), which cuts CSV
// inputs into chunks of whole records (never inside a quoted field).
//
// The input picks the chunk size (1..256 bytes, so nearly every record
// crosses a chunk boundary) and the record limit (small, or 1 MiB); the rest
// is the file, written to a memfd and read through /proc/self/fd. Every chunk
// must end in '\n', keep kChunkPadding readable bytes, count its line breaks
// in line_count and start on the line after the previous chunk (unless a
// too-long record was dropped between). With the 1 MiB limit nothing is
// dropped: parsing chunk by chunk (DelimitedParser, at_end per chunk) must
// give exactly the records, errors and start lines that parsing the whole
// file at once gives, well formed or not: the reader's record ends must be
// the parser's. With a small limit, the records that come out must still be
// records of the whole file, unless they follow a dropped too-long record (where
// reading resumes at a line start, as documented).
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/format/delimited_reader.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::Chunk;
using nomnom::DelimitedDialect;
using nomnom::DelimitedField;
using nomnom::DelimitedParser;
using nomnom::DelimitedReader;
using nomnom::kChunkPadding;
using nomnom::fuzz::Show;

struct Record {
  uint64_t line = 0;
  std::string text;  // values joined by '\x1f' ("\x1e" marks NULL), or "!" + the error
  bool operator==(const Record& o) const { return line == o.line && text == o.text; }
};

std::vector<Record> Parse(std::string_view text, uint64_t first_line) {
  DelimitedParser p(DelimitedDialect::kCsv);
  std::vector<Record> out;
  std::vector<DelimitedField> fields;
  uint64_t line = first_line;
  while (!text.empty()) {
    size_t consumed = 0;
    uint64_t lines = 0;
    std::string error;
    const auto r = p.Next(text, true, line, &fields, &consumed, &lines, &error);
    FUZZ_CHECK(r != DelimitedParser::Result::kNeedMore, "kNeedMore with at_end");
    FUZZ_CHECK(consumed > 0 && consumed <= text.size(), "consumed " + std::to_string(consumed));
    Record rec{line, {}};
    if (r == DelimitedParser::Result::kError) {
      rec.text = "!" + error;
    } else {
      for (const auto& f : fields) rec.text += (f.null ? std::string("\x1e") : std::string(f.value)) + "\x1f";
    }
    out.push_back(std::move(rec));
    text.remove_prefix(consumed);
    line += lines;
  }
  return out;
}

// The file's bytes, as a memfd; closed on destruction.
class MemFile {
 public:
  explicit MemFile(std::string_view bytes) : fd_(memfd_create("nomnom-fuzz", MFD_CLOEXEC)) {
    FUZZ_CHECK(fd_ >= 0, "memfd_create failed");
    for (size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      FUZZ_CHECK(n > 0, "write to the memfd failed");
      done += static_cast<size_t>(n);
    }
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  nomnom::NdjsonReaderOptions o;
  o.chunk_bytes = in.ConsumeIntegralInRange<size_t>(1, 256);
  const bool small_limit = in.ConsumeBool();
  o.max_line_bytes = small_limit ? in.ConsumeIntegralInRange<size_t>(1, 64) : size_t{1} << 20;
  const std::string file = in.ConsumeRemainingBytesAsString();

  std::string_view body = file;
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  std::string whole(body);
  if (!whole.empty() && whole.back() != '\n') whole.push_back('\n');
  const std::vector<Record> reference = Parse(whole, 1);

  MemFile mem(file);
  auto reader = DelimitedReader::Open(mem.path(), DelimitedDialect::kCsv, o);
  FUZZ_CHECK(reader.ok(), reader.status().message());
  std::vector<Record> got;
  std::string joined;
  bool dropped = false;  // a too-long record was reported since the last chunk
  bool ever_dropped = false;
  uint64_t next_line = 1;
  Chunk chunk;
  for (;;) {
    auto more = (*reader)->Next(&chunk);
    FUZZ_CHECK(more.ok(), more.status().message());
    for (const auto& x : chunk.oversize) {
      FUZZ_CHECK(small_limit, "a record dropped under the 1 MiB limit: line " + std::to_string(x.line));
      FUZZ_CHECK(x.line >= next_line, "a dropped record before the previous chunk's end");
      FUZZ_CHECK(x.last_line == 0 || x.last_line > x.line, "last_line " + std::to_string(x.last_line));
      FUZZ_CHECK(x.prefix.size() <= 256, "prefix longer than 256 bytes");
      dropped = ever_dropped = true;
    }
    if (!*more) break;
    const std::string_view text = chunk.data.view();
    FUZZ_CHECK(!text.empty() && text.back() == '\n', "a chunk not ending in a line break: " + Show(text));
    // The padding must be readable (ASan checks these reads).
    volatile char sink = 0;
    for (size_t i = 0; i < kChunkPadding; ++i) sink = static_cast<char>(sink ^ chunk.data.data()[text.size() + i]);
    uint64_t lf = 0;
    for (char c : text) lf += c == '\n' ? 1 : 0;
    FUZZ_CHECK(chunk.line_count == lf,
               "line_count " + std::to_string(chunk.line_count) + ", line breaks " + std::to_string(lf));
    if (dropped) {
      FUZZ_CHECK(chunk.first_line >= next_line, "lines go backwards after a dropped record");
    } else {
      FUZZ_CHECK(chunk.first_line == next_line, "chunk starts on line " + std::to_string(chunk.first_line) +
                                                    ", expected " + std::to_string(next_line));
    }
    for (auto& r : Parse(text, chunk.first_line)) {
      if (!ever_dropped) {
        // Before anything is dropped, the records are the reference's, in order.
        FUZZ_CHECK(got.size() < reference.size() && reference[got.size()] == r,
                   "record on line " + std::to_string(r.line) + " differs from the whole file's: " + Show(r.text));
      }
      got.push_back(std::move(r));
    }
    dropped = false;
    next_line = chunk.first_line + chunk.line_count;
    joined.append(text);
  }
  if (!ever_dropped) {
    FUZZ_CHECK(got.size() == reference.size(),
               "records: " + std::to_string(got.size()) + ", the whole file has " + std::to_string(reference.size()));
    FUZZ_CHECK(joined == whole, "the chunks' bytes differ from the file's");
  }
  return 0;
}
