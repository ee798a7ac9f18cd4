// NdjsonReader: reads one NDJSON input (a file, or "-" for stdin) as a
// sequence of chunks made of whole lines, with bounded memory.
//
// Input may be plain, gzip (.gz, possibly multi-member) or zstd (.zst); the
// format is detected from the first bytes, not the file name, so compressed
// stdin works too. A UTF-8 byte order mark at the very start is dropped.
//
// Each chunk holds complete lines only; every line in it ends with '\n' (one is
// appended to a last line that lacks it), and the buffer has at least
// kChunkPadding readable bytes after size() so simdjson can parse lines in
// place. A line longer than max_line_bytes is not put in any chunk: it is
// reported in the next chunk's `oversize` list (line number and its first
// bytes) and skipped, so one bad line never stops the input. The lines of a
// chunk are consecutive (first_line .. first_line + line_count - 1, blank lines
// included); oversize lines only ever fall between chunks.
//
// Thread-safety: an NdjsonReader is used by one thread. Chunks are plain values
// that can be moved to other threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/base/status.h"

namespace nomnom {

// simdjson needs SIMDJSON_PADDING (64) readable bytes after the input.
inline constexpr size_t kChunkPadding = 64;

struct OversizeLine {
  uint64_t line = 0;   // 1-based line number
  uint64_t bytes = 0;  // its full length, without the newline
  std::string prefix;  // its first bytes (at most 256), for the reject record
  // A CSV record spanning lines (core/format/delimited_reader.h): the line it ends
  // on; 0 for a single line.
  uint64_t last_line = 0;
};

struct Chunk {
  uint64_t first_line = 0;             // 1-based line number of the first line in `data`
  uint64_t line_count = 0;             // number of lines in `data` ('\n' bytes), blank lines included
  ByteBuffer data;                     // whole lines, each ending in '\n'; padded, see above
  std::vector<OversizeLine> oversize;  // lines skipped since the previous chunk
};

struct NdjsonReaderOptions {
  size_t chunk_bytes = 4 << 20;      // target chunk size (a chunk may be larger for one long line)
  size_t max_line_bytes = 64 << 20;  // longer lines are skipped and reported
};

class NdjsonReader {
 public:
  enum class Compression { kNone, kGzip, kZstd };

  // Opens path ("-" means standard input). Fails with a Status naming the path
  // when it cannot be opened.
  static Result<std::unique_ptr<NdjsonReader>> Open(const std::string& path, const NdjsonReaderOptions& options);
  virtual ~NdjsonReader() = default;

  // Fills *chunk with the next lines. Returns true when *chunk was filled,
  // false at the end of the input (then *chunk may still carry `oversize`
  // entries to report), or a Status for a read or decompression error (naming
  // the path and, for corrupt compressed data, what was wrong). A buffer left
  // in chunk->data (e.g. the previous chunk's, if the caller did not move it
  // away) is recycled rather than freed. After an error, Next() keeps failing.
  virtual Result<bool> Next(Chunk* chunk) = 0;

  // Bytes read from the underlying file so far (compressed bytes for
  // compressed input), for progress reporting.
  virtual uint64_t raw_bytes_read() const = 0;
  // Size of the underlying file when known (regular files), for progress.
  virtual std::optional<uint64_t> raw_size() const = 0;
  virtual Compression compression() const = 0;
  const std::string& path() const { return path_; }

 protected:
  explicit NdjsonReader(std::string path) : path_(std::move(path)) {}

 private:
  std::string path_;
};

// Calls fn(line, line_no, readable) for each line of padded[0, size): lines
// end at '\n' or at size and are passed without the '\n'; line_no counts from
// 1, blank lines included; readable is how many bytes may be read from
// line.data() (to the end of `padded`, so simdjson may parse in place when
// padded holds kChunkPadding bytes after size). fn returns false to stop.
template <typename Fn>
void ForEachPaddedLine(std::string_view padded, size_t size, Fn&& fn) {
  const char* p = padded.data();
  const char* end = p + size;
  uint64_t line_no = 0;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (nl == nullptr) nl = end;
    const std::string_view line(p, static_cast<size_t>(nl - p));
    const size_t readable = static_cast<size_t>(padded.data() + padded.size() - p);
    p = nl + 1;
    if (!fn(line, ++line_no, readable)) return;
  }
}

}  // namespace nomnom
