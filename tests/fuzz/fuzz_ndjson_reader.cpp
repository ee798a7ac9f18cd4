// libFuzzer harness: NdjsonReader (core/format/ndjson_reader.h), which cuts input
// files into chunks of whole lines.
//
// The input picks the chunk size (1..512 bytes, so nearly every line crosses a
// chunk boundary), the line limit (small, or the default), whether the caller
// moves each chunk's buffer away or leaves it to be recycled, and how the data
// is stored: plain, gzip (one or two members) or zstd (one or two frames),
// possibly with one byte damaged or cut short. The
// data is written to a memfd and read through /proc/self/fd. Every line must
// come out whole, in order, with its line number, exactly as a trivial split
// at '\n' says (BOM dropped, lines over the limit reported as oversize with
// their length and first 256 bytes); every chunk must keep kChunkPadding
// readable bytes after its data. Plain data that happens to start with a gzip
// or zstd magic number is decoded as such: then, as for damaged files, only
// the chunk invariants are checked and an error is allowed; a cut file must
// give a prefix of the lines.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/format/ndjson_reader.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::Chunk;
using nomnom::kChunkPadding;
using nomnom::NdjsonReader;
using nomnom::fuzz::Show;

struct Event {  // a kept line or an oversize one, in the order they are delivered
  uint64_t line = 0;
  bool oversize = false;
  uint64_t bytes = 0;  // oversize: full length
  std::string text;    // kept: the line; oversize: its prefix
  bool operator==(const Event& o) const {
    return line == o.line && oversize == o.oversize && bytes == o.bytes && text == o.text;
  }
};

std::vector<Event> Reference(std::string_view input, size_t max_line) {
  if (input.substr(0, 3) == "\xEF\xBB\xBF") input.remove_prefix(3);
  std::vector<Event> out;
  uint64_t number = 0;
  while (!input.empty()) {
    const size_t end = input.find('\n');
    const std::string_view line = input.substr(0, end);
    ++number;
    if (line.size() > max_line) {
      out.push_back(Event{number, true, line.size(), std::string(line.substr(0, 256))});
    } else {
      out.push_back(Event{number, false, 0, std::string(line)});
    }
    input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
  }
  return out;
}

std::string Gzip(std::string_view data) {
  z_stream z{};
  FUZZ_CHECK(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Zstd(std::string_view data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 1);
  FUZZ_CHECK(!ZSTD_isError(n), "ZSTD_compress");
  out.resize(n);
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
  nomnom::NdjsonReaderOptions options;
  options.chunk_bytes = in.ConsumeIntegralInRange<size_t>(1, 512);
  if (in.ConsumeBool()) options.max_line_bytes = in.ConsumeIntegralInRange<size_t>(0, 300);
  const bool move_out = in.ConsumeBool();
  // plain, gzip, 2 gzip members, zstd, 2 zstd frames, then the last two with
  // one byte damaged, or cut short.
  const int storage = in.ConsumeIntegralInRange(0, 8);
  const size_t split = in.ConsumeIntegral<uint16_t>();
  const auto damage = static_cast<char>(in.ConsumeIntegral<uint8_t>() | 1);
  const std::string text = in.ConsumeRemainingBytesAsString();

  std::string file;
  const std::string_view first = std::string_view(text).substr(0, std::min(split, text.size()));
  const std::string_view second = std::string_view(text).substr(first.size());
  switch (storage) {
    case 1:
      file = Gzip(text);
      break;
    case 2:
      file = Gzip(first) + Gzip(second);
      break;
    case 3:
      file = Zstd(text);
      break;
    case 4:
    case 6:
    case 8:
      file = Zstd(first) + Zstd(second);
      break;
    default:
      file = text;
  }
  if (storage == 5 || storage == 7) file = Gzip(first) + Gzip(second);
  const size_t at = split % std::max<size_t>(file.size(), 1);
  if ((storage == 5 || storage == 6) && !file.empty()) file[at] = static_cast<char>(file[at] ^ damage);
  if (storage == 7 || storage == 8) file.resize(at);
  // Cut short: the lines read are a prefix of the text's (the last one may be
  // cut). Damaged: anything may come out; only the chunk invariants hold.
  const bool cut = storage == 7 || storage == 8, damaged = storage == 5 || storage == 6;
  const bool gzip_magic = text.size() >= 2 && text.compare(0, 2, "\x1f\x8b") == 0;
  const bool zstd_magic = text.size() >= 4 && text.compare(0, 4, "\x28\xb5\x2f\xfd") == 0;
  const bool exact = (storage != 0 || !(gzip_magic || zstd_magic)) && !cut && !damaged;

  MemFile mem(file);
  auto opened = NdjsonReader::Open(mem.path(), options);
  FUZZ_CHECK(opened.ok(), "Open failed: " + opened.status().message());
  NdjsonReader& reader = **opened;

  std::vector<Event> got;
  uint64_t next_line = 1;
  Chunk chunk;
  bool error = false;
  for (int guard = 0;; ++guard) {
    FUZZ_CHECK(guard < 1000000, "the reader does not end");
    nomnom::Result<bool> more = reader.Next(&chunk);
    if (!more.ok()) {
      FUZZ_CHECK(!exact, "read error on valid input: " + more.status().message());
      FUZZ_CHECK(!reader.Next(&chunk).ok(), "Next() succeeded after an error");
      error = true;
      break;
    }
    for (const auto& o : chunk.oversize) {
      FUZZ_CHECK(o.line >= next_line, "oversize line " + std::to_string(o.line) + " out of order");
      FUZZ_CHECK(o.bytes > options.max_line_bytes && o.prefix.size() == std::min<uint64_t>(o.bytes, 256),
                 "bad oversize record for line " + std::to_string(o.line));
      got.push_back(Event{o.line, true, o.bytes, o.prefix});
      next_line = o.line + 1;
    }
    if (!*more) {
      FUZZ_CHECK(chunk.line_count == 0, "the last Next() returned lines");
      break;
    }
    FUZZ_CHECK(chunk.line_count > 0, "Next() returned true without lines");
    FUZZ_CHECK(chunk.first_line >= next_line, "chunk starts at line " + std::to_string(chunk.first_line) + ", line " +
                                                  std::to_string(next_line) + " was next");
    const std::string_view view = chunk.data.view();
    FUZZ_CHECK(!view.empty() && view.back() == '\n', "a chunk does not end with a newline");
    // The padding must be readable (ASan checks it).
    volatile char sink = 0;
    for (size_t i = 0; i < kChunkPadding; ++i) sink = static_cast<char>(sink ^ chunk.data.data()[view.size() + i]);
    uint64_t number = chunk.first_line;
    for (size_t pos = 0; pos < view.size();) {
      const size_t end = view.find('\n', pos);
      const std::string_view line = view.substr(pos, end - pos);
      FUZZ_CHECK(line.size() <= options.max_line_bytes, "a chunk holds an oversize line");
      got.push_back(Event{number++, false, 0, std::string(line)});
      pos = end + 1;
    }
    FUZZ_CHECK(number - chunk.first_line == chunk.line_count, "line_count " + std::to_string(chunk.line_count) +
                                                                  " but " + std::to_string(number - chunk.first_line) +
                                                                  " lines in the chunk");
    next_line = number;
    if (move_out) {
      Chunk taken = std::move(chunk);  // as the pipeline does; otherwise the buffer is recycled
    }
  }
  const std::vector<Event> want = Reference(text, options.max_line_bytes);
  // A cut that leaves less than the magic number makes a plain file.
  if (cut && file.size() >= (storage == 7 ? 2u : 4u)) {
    FUZZ_CHECK(got.size() <= want.size(), "more lines from a file cut to " + std::to_string(file.size()) +
                                              " bytes than in the whole text (storage " + std::to_string(storage) +
                                              ")");
    for (size_t i = 0; i < got.size(); ++i) {
      const bool last = i + 1 == got.size();
      FUZZ_CHECK(last ? got[i].line == want[i].line : got[i] == want[i],
                 "a cut file gave a line that is not the text's, at event " + std::to_string(i) + ": \"" +
                     Show(got[i].text) + "\"");
    }
  }
  if (!exact || error) return 0;

  for (size_t i = 0; i < std::max(want.size(), got.size()); ++i) {
    if (i < want.size() && i < got.size() && want[i] == got[i]) continue;
    auto show = [](const std::vector<Event>& v, size_t k) {
      if (k >= v.size()) return std::string("(nothing)");
      return std::string(v[k].oversize ? "oversize " : "") + "line " + std::to_string(v[k].line) + " \"" +
             Show(v[k].text) + "\"";
    };
    FUZZ_CHECK(false, "event " + std::to_string(i) + ": got " + show(got, i) + ", want " + show(want, i) +
                          " (chunk_bytes " + std::to_string(options.chunk_bytes) + ", max_line_bytes " +
                          std::to_string(options.max_line_bytes) + ")");
  }
  return 0;
}
