// NdjsonReader implementation.
//
// Layers, bottom up:
//   InputFile    an fd (owned, or borrowed stdin) read with read(2); counts raw bytes.
//   ByteSource   the decoded byte stream: PlainSource, GzipSource or ZstdSource.
//                Sources write straight into the caller's buffer (the chunk).
//   FileNdjsonReader  cuts the stream into chunks of whole lines.
//
// Chunk assembly: each Next() starts from the carried-over partial line, reads
// blocks straight into chunk.data until it holds about chunk_bytes, then cuts
// after the last '\n' (memrchr) and carries the rest to the next call. Lines are
// counted with a SIMD newline count over each block, so there is no per-line
// work in the common case. Per-line work (memchr) happens only when a line
// could be longer than max_line_bytes, i.e. when the bytes since the last known
// line start exceed max_line_bytes; reads are kept to about max_line_bytes / 2
// so that this stays rare for a small limit too (below ~128 KiB it is not).
//
// Oversize lines never sit inside a chunk, so a chunk is always a contiguous
// range of line numbers: a chunk that already holds lines ends just before an
// oversize line, and the next call reports it (in its `oversize`) and skips it,
// streaming past its bytes without keeping them.
#include "core/format/ndjson_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace nomnom {
namespace {

// Size of one read(2) and of the compressed-input buffers.
constexpr size_t kReadBlock = size_t{1} << 20;
// Smallest decoded block read into a chunk (see FileNdjsonReader::read_block_).
constexpr size_t kMinReadBlock = size_t{64} << 10;
// Bytes needed to recognise the compression format.
constexpr size_t kMagicBytes = 4;
// How much of an oversize line is kept for the reject record.
constexpr size_t kOversizePrefixBytes = 256;
constexpr char kUtf8Bom[] = "\xEF\xBB\xBF";
constexpr size_t kUtf8BomBytes = 3;

std::string DisplayName(const std::string& path) { return path == "-" ? "<stdin>" : path; }

std::unique_ptr<char[]> NewBlock() { return std::make_unique_for_overwrite<char[]>(kReadBlock); }

// Number of '\n' bytes in [p, p + n).
size_t CountNewlines(const char* p, size_t n) {
  size_t count = 0;
#if defined(__SSE2__)
  const __m128i newline = _mm_set1_epi8('\n');
  const __m128i zero = _mm_setzero_si128();
  while (n >= 16) {
    // Byte counters overflow after 255 matches, so fold them every 255 blocks.
    const size_t blocks = std::min<size_t>(n / 16, 255);
    __m128i acc = zero;
    for (size_t i = 0; i < blocks; ++i) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i * 16));
      acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(v, newline));  // a match is -1
    }
    const __m128i sums = _mm_sad_epu8(acc, zero);
    count += static_cast<size_t>(_mm_cvtsi128_si32(sums)) + static_cast<size_t>(_mm_extract_epi16(sums, 4));
    p += blocks * 16;
    n -= blocks * 16;
  }
#endif
  for (size_t i = 0; i < n; ++i) count += p[i] == '\n' ? 1 : 0;
  return count;
}

// Grows b to hold at least `need` bytes, geometrically so a growing long line
// does not reallocate on every read.
void EnsureCapacity(ByteBuffer* b, size_t need) {
  if (need <= b->capacity()) return;
  b->Reserve(std::max(need, b->capacity() + b->capacity() / 2));
}

// The underlying file descriptor. Closes it unless it is borrowed (stdin).
class InputFile {
 public:
  InputFile(int fd, bool owned, std::string name) : fd_(fd), owned_(owned), name_(std::move(name)) {}
  ~InputFile() {
    if (owned_) ::close(fd_);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  int fd() const { return fd_; }
  uint64_t bytes_read() const { return bytes_read_; }

  // Reads at most cap bytes; 0 means end of file.
  Result<size_t> Read(char* dst, size_t cap) {
    while (true) {
      const ssize_t n = ::read(fd_, dst, cap);
      if (n >= 0) {
        bytes_read_ += static_cast<uint64_t>(n);
        return static_cast<size_t>(n);
      }
      if (errno != EINTR) return Status::Io(name_ + ": read failed: " + std::strerror(errno));
    }
  }

  // Reads until at least min bytes are in dst or the file ends.
  Result<size_t> ReadAtLeast(char* dst, size_t min, size_t cap) {
    size_t total = 0;
    while (total < min) {
      Result<size_t> n = Read(dst + total, cap - total);
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      total += *n;
    }
    return total;
  }

 private:
  int fd_;
  bool owned_;
  std::string name_;
  uint64_t bytes_read_ = 0;
};

// The decoded input stream.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Writes at most cap (> 0) decoded bytes to dst; returns how many, 0 at the end.
  virtual Result<size_t> Read(char* dst, size_t cap) = 0;
};

// Uncompressed input: first the bytes already read to sniff the format, then
// read(2) straight into the caller's buffer.
class PlainSource final : public ByteSource {
 public:
  PlainSource(InputFile* file, std::unique_ptr<char[]> head, size_t head_size)
      : file_(file), head_(std::move(head)), head_size_(head_size) {}

  Result<size_t> Read(char* dst, size_t cap) override {
    if (head_ != nullptr) {
      const size_t n = std::min(cap, head_size_ - head_pos_);
      std::memcpy(dst, head_.get() + head_pos_, n);
      head_pos_ += n;
      if (head_pos_ == head_size_) head_.reset();
      if (n > 0) return n;
    }
    return file_->Read(dst, cap);
  }

 private:
  InputFile* file_;
  std::unique_ptr<char[]> head_;
  size_t head_size_;
  size_t head_pos_ = 0;
};

// gzip input, possibly several concatenated members (as written by pigz, or by
// `cat a.gz b.gz`).
class GzipSource final : public ByteSource {
 public:
  // `in` holds the first in_size compressed bytes and is reused as the input buffer.
  GzipSource(InputFile* file, std::string name, std::unique_ptr<char[]> in, size_t in_size)
      : file_(file), name_(std::move(name)), in_(std::move(in)) {
    stream_.next_in = reinterpret_cast<Bytef*>(in_.get());
    stream_.avail_in = static_cast<uInt>(in_size);
  }
  ~GzipSource() override {
    if (initialized_) inflateEnd(&stream_);
  }
  GzipSource(const GzipSource&) = delete;
  GzipSource& operator=(const GzipSource&) = delete;

  Status Init() {
    // 15 + 16: the largest window, gzip format only.
    const int rc = inflateInit2_(&stream_, 15 + 16, ZLIB_VERSION, static_cast<int>(sizeof(z_stream)));
    if (rc != Z_OK) return Status::Internal(name_ + ": cannot initialise zlib (error " + std::to_string(rc) + ")");
    initialized_ = true;
    return Status::Ok();
  }

  Result<size_t> Read(char* dst, size_t cap) override {
    const uInt out_cap = static_cast<uInt>(std::min<size_t>(cap, UINT_MAX));
    while (true) {
      if (stream_.avail_in == 0 && !input_eof_) {
        Result<size_t> n = file_->Read(in_.get(), kReadBlock);
        if (!n.ok()) return n.status();
        if (*n == 0) input_eof_ = true;
        stream_.next_in = reinterpret_cast<Bytef*>(in_.get());
        stream_.avail_in = static_cast<uInt>(*n);
      }
      if (stream_.avail_in == 0) {  // and the file has ended
        if (in_member_) return Status::Io(name_ + ": gzip data is truncated");
        return size_t{0};
      }
      if (!in_member_) {  // more input after a member: the next member starts
        if (inflateReset(&stream_) != Z_OK) return Status::Internal(name_ + ": cannot reset zlib");
        in_member_ = true;
      }
      stream_.next_out = reinterpret_cast<Bytef*>(dst);
      stream_.avail_out = out_cap;
      const int rc = inflate(&stream_, Z_NO_FLUSH);
      const size_t produced = out_cap - stream_.avail_out;
      if (rc == Z_STREAM_END) {
        in_member_ = false;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {  // Z_BUF_ERROR: needs more input
        std::string what = stream_.msg != nullptr ? stream_.msg
                           : rc == Z_NEED_DICT    ? "needs a preset dictionary"
                                                  : "zlib error " + std::to_string(rc);
        return Status::Io(name_ + ": corrupt gzip data: " + what);
      }
      if (produced > 0) return produced;
    }
  }

 private:
  InputFile* file_;
  std::string name_;
  std::unique_ptr<char[]> in_;
  z_stream stream_{};
  bool initialized_ = false;
  bool in_member_ = true;  // the magic bytes said a member starts here
  bool input_eof_ = false;
};

// zstd input; ZSTD_decompressStream moves across concatenated (and skippable)
// frames by itself.
class ZstdSource final : public ByteSource {
 public:
  ZstdSource(InputFile* file, std::string name, std::unique_ptr<char[]> in, size_t in_size)
      : file_(file), name_(std::move(name)), in_(std::move(in)), input_{in_.get(), in_size, 0} {}

  Status Init() {
    dctx_.reset(ZSTD_createDCtx());
    if (dctx_ == nullptr) return Status::Internal(name_ + ": cannot create a zstd context");
    return Status::Ok();
  }

  Result<size_t> Read(char* dst, size_t cap) override {
    ZSTD_outBuffer out{dst, cap, 0};
    while (true) {
      if (input_.pos == input_.size && !input_eof_) {
        Result<size_t> n = file_->Read(in_.get(), kReadBlock);
        if (!n.ok()) return n.status();
        if (*n == 0) input_eof_ = true;
        input_ = ZSTD_inBuffer{in_.get(), *n, 0};
      }
      const bool input_done = input_.pos == input_.size && input_eof_;
      if (input_done && !frame_open_) return size_t{0};
      const size_t rc = ZSTD_decompressStream(dctx_.get(), &out, &input_);
      if (ZSTD_isError(rc) != 0) return Status::Io(name_ + ": corrupt zstd data: " + ZSTD_getErrorName(rc));
      frame_open_ = rc != 0;  // 0: a frame ended and everything is flushed
      if (out.pos > 0) return out.pos;
      if (input_done) return Status::Io(name_ + ": zstd data is truncated");
    }
  }

 private:
  struct DctxDeleter {
    void operator()(ZSTD_DCtx* p) const { ZSTD_freeDCtx(p); }
  };

  InputFile* file_;
  std::string name_;
  std::unique_ptr<char[]> in_;
  ZSTD_inBuffer input_;
  std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx_;
  bool frame_open_ = true;  // the magic bytes said a frame starts here
  bool input_eof_ = false;
};

class FileNdjsonReader final : public NdjsonReader {
 public:
  FileNdjsonReader(std::string path, const NdjsonReaderOptions& options, std::unique_ptr<InputFile> file,
                   std::unique_ptr<ByteSource> source, Compression compression, std::optional<uint64_t> raw_size)
      : NdjsonReader(std::move(path)),
        chunk_bytes_(std::max<size_t>(options.chunk_bytes, 1)),
        max_line_bytes_(options.max_line_bytes),
        read_block_(std::clamp(options.max_line_bytes / 2, kMinReadBlock, kReadBlock)),
        file_(std::move(file)),
        source_(std::move(source)),
        compression_(compression),
        raw_size_(raw_size) {}

  Result<bool> Next(Chunk* chunk) override;
  uint64_t raw_bytes_read() const override { return file_->bytes_read(); }
  std::optional<uint64_t> raw_size() const override { return raw_size_; }
  Compression compression() const override { return compression_; }

 private:
  // Progress through chunk.data during one Next() call.
  struct FillState {
    size_t line_start = 0;  // where the line after the last counted '\n' starts
    size_t scanned = 0;     // bytes before this offset have been scanned
    uint64_t lines = 0;     // '\n' bytes before line_start
  };
  enum class FillEnd { kCut, kInputEnd };
  enum class ScanEnd { kContinue, kCut };

  Result<FillEnd> Fill(Chunk* chunk, FillState* state);
  bool SettleBom(ByteBuffer* data);
  ScanEnd Scan(Chunk* chunk, FillState* state);
  ScanEnd ScanLineByLine(Chunk* chunk, FillState* state);
  void FinishSkip(Chunk* chunk);

  const size_t chunk_bytes_;
  const size_t max_line_bytes_;
  // Most decoded bytes read at once: kReadBlock, less for a small max_line_bytes
  // so that one read plus a short partial line still fits the fast-path test.
  const size_t read_block_;
  std::unique_ptr<InputFile> file_;
  std::unique_ptr<ByteSource> source_;  // uses *file_, so declared after it
  const Compression compression_;
  const std::optional<uint64_t> raw_size_;

  ByteBuffer carry_;        // input after the last returned chunk (starts at a line start)
  uint64_t next_line_ = 1;  // line number of the first line in carry_
  bool eof_ = false;        // the source has ended
  bool bom_checked_ = false;
  bool skipping_ = false;  // streaming past the oversize line skip_
  OversizeLine skip_;
  Status error_;  // sticky: once reading failed, Next() keeps failing
};

Result<bool> FileNdjsonReader::Next(Chunk* chunk) {
  if (!error_.ok()) return error_;
  chunk->oversize.clear();
  chunk->line_count = 0;
  chunk->first_line = next_line_;
  // The carried bytes become the start of this chunk; the caller's old buffer
  // (if it left one) is recycled for the next carry.
  std::swap(chunk->data, carry_);
  carry_.clear();
  ByteBuffer& data = chunk->data;
  EnsureCapacity(&data, chunk_bytes_ + 1 + kChunkPadding);

  FillState state;
  Result<FillEnd> end = Fill(chunk, &state);
  if (!end.ok()) {
    error_ = end.status();
    data.clear();
    std::memset(data.data(), 0, kChunkPadding);
    return error_;
  }
  if (*end == FillEnd::kInputEnd && state.line_start < data.size()) {
    // The last line has no '\n' (Scan already turned a too-long one into a skip).
    EnsureCapacity(&data, data.size() + 1 + kChunkPadding);
    data.PutU8('\n');
    ++state.lines;
    state.line_start = data.size();
  }
  carry_.Append(data.data() + state.line_start, data.size() - state.line_start);
  data.Truncate(state.line_start);
  EnsureCapacity(&data, data.size() + kChunkPadding);
  std::memset(data.data() + data.size(), 0, kChunkPadding);
  chunk->line_count = state.lines;
  next_line_ = chunk->first_line + state.lines;
  return state.lines > 0;
}

Result<FileNdjsonReader::FillEnd> FileNdjsonReader::Fill(Chunk* chunk, FillState* state) {
  ByteBuffer& data = chunk->data;
  while (true) {
    if (!skipping_ && SettleBom(&data)) {
      if (Scan(chunk, state) == ScanEnd::kCut) return FillEnd::kCut;
      if (!skipping_ && state->lines > 0 && data.size() >= chunk_bytes_) return FillEnd::kCut;
    }
    if (eof_) {
      if (skipping_) FinishSkip(chunk);  // the oversize line was the last one, without '\n'
      return FillEnd::kInputEnd;
    }

    // Read up to chunk_bytes; past it only while a long line is still open.
    const size_t start = data.size();
    const size_t want = skipping_ || start >= chunk_bytes_ ? std::min(read_block_, chunk_bytes_)
                                                           : std::min(read_block_, chunk_bytes_ - start);
    EnsureCapacity(&data, start + want + 1 + kChunkPadding);
    Result<size_t> got = source_->Read(data.data() + start, want);
    if (!got.ok()) return got.status();
    const size_t n = *got;
    if (n == 0) {
      eof_ = true;
      continue;
    }
    if (!skipping_) {
      data.Commit(n);
      continue;
    }
    // Skipping: the bytes just read are not committed; look for the line's end.
    const char* begin = data.data() + start;
    const void* newline = std::memchr(begin, '\n', n);
    const size_t line_rest = newline != nullptr ? static_cast<size_t>(static_cast<const char*>(newline) - begin) : n;
    skip_.bytes += line_rest;
    if (skip_.prefix.size() < kOversizePrefixBytes) {
      skip_.prefix.append(begin, std::min(line_rest, kOversizePrefixBytes - skip_.prefix.size()));
    }
    if (newline == nullptr) continue;
    FinishSkip(chunk);
    const size_t after = n - line_rest - 1;
    std::memmove(data.data() + start, begin + line_rest + 1, after);
    data.Commit(after);
  }
}

// Drops a UTF-8 BOM at the start of the input. Returns false while fewer than 3
// bytes have been read and more may come (the scan then waits).
bool FileNdjsonReader::SettleBom(ByteBuffer* data) {
  if (bom_checked_) return true;
  if (data->size() < kUtf8BomBytes && !eof_) return false;
  bom_checked_ = true;
  if (data->size() >= kUtf8BomBytes && std::memcmp(data->data(), kUtf8Bom, kUtf8BomBytes) == 0) {
    std::memmove(data->data(), data->data() + kUtf8BomBytes, data->size() - kUtf8BomBytes);
    data->Truncate(data->size() - kUtf8BomBytes);
  }
  return true;
}

// Counts the lines completed by the bytes read since the last scan.
FileNdjsonReader::ScanEnd FileNdjsonReader::Scan(Chunk* chunk, FillState* state) {
  const char* base = chunk->data.data();
  const size_t size = chunk->data.size();
  if (state->scanned >= size) return ScanEnd::kContinue;
  // Every line touching the new bytes lies within [line_start, size); if that
  // span fits in max_line_bytes, none of them can be oversize.
  if (size - state->line_start > max_line_bytes_) return ScanLineByLine(chunk, state);
  const void* last = memrchr(base + state->scanned, '\n', size - state->scanned);
  if (last != nullptr) {
    const size_t end = static_cast<size_t>(static_cast<const char*>(last) - base) + 1;
    state->lines += CountNewlines(base + state->scanned, end - state->scanned);
    state->line_start = end;
  }
  state->scanned = size;
  return ScanEnd::kContinue;
}

// The slow path of Scan: walks line by line to find the oversize ones. An
// oversize line after other lines ends the chunk (it stays in the carry and the
// next call handles it); one at the chunk's start is reported and dropped, or,
// when its end has not been read yet, skipped by Fill.
FileNdjsonReader::ScanEnd FileNdjsonReader::ScanLineByLine(Chunk* chunk, FillState* state) {
  ByteBuffer& data = chunk->data;
  size_t search = state->scanned;
  while (true) {
    char* base = data.data();
    const size_t size = data.size();
    const void* newline = search < size ? std::memchr(base + search, '\n', size - search) : nullptr;
    const size_t line_end = newline != nullptr ? static_cast<size_t>(static_cast<const char*>(newline) - base) : size;
    const size_t length = line_end - state->line_start;
    if (length <= max_line_bytes_) {
      if (newline == nullptr) break;
      ++state->lines;
      state->line_start = line_end + 1;
      search = state->line_start;
      continue;
    }
    if (state->lines > 0) {
      state->scanned = state->line_start;
      return ScanEnd::kCut;
    }
    // lines == 0, so line_start == 0 and this is chunk->first_line.
    OversizeLine oversize{chunk->first_line, length,
                          std::string(base + state->line_start, std::min(length, kOversizePrefixBytes))};
    if (newline == nullptr) {
      skip_ = std::move(oversize);
      skipping_ = true;
      data.Truncate(state->line_start);
      state->scanned = state->line_start;
      return ScanEnd::kContinue;
    }
    chunk->oversize.push_back(std::move(oversize));
    ++chunk->first_line;
    const size_t rest = size - line_end - 1;
    std::memmove(base + state->line_start, base + line_end + 1, rest);
    data.Truncate(state->line_start + rest);
    search = state->line_start;
  }
  state->scanned = data.size();
  return ScanEnd::kContinue;
}

// The skipped line has ended: report it and number the following lines after it.
void FileNdjsonReader::FinishSkip(Chunk* chunk) {
  chunk->first_line = skip_.line + 1;
  chunk->oversize.push_back(std::move(skip_));
  skip_ = OversizeLine{};
  skipping_ = false;
}

}  // namespace

Result<std::unique_ptr<NdjsonReader>> NdjsonReader::Open(const std::string& path, const NdjsonReaderOptions& options) {
  const std::string name = DisplayName(path);
  const bool is_stdin = path == "-";
  int fd = STDIN_FILENO;
  if (!is_stdin) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::Io(name + ": cannot open: " + std::strerror(errno));
  }
  auto file = std::make_unique<InputFile>(fd, !is_stdin, name);

  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::Io(name + ": cannot stat: " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return Status::Io(name + ": is a directory");
  std::optional<uint64_t> raw_size;
  if (S_ISREG(st.st_mode)) {
    // stdin may be a file already partly read; only the rest will be read.
    const off_t pos = is_stdin ? ::lseek(fd, 0, SEEK_CUR) : 0;
    const off_t remaining = st.st_size - std::max<off_t>(pos, 0);
    raw_size = static_cast<uint64_t>(std::max<off_t>(remaining, 0));
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }

  std::unique_ptr<char[]> head = NewBlock();
  Result<size_t> head_size = file->ReadAtLeast(head.get(), kMagicBytes, kReadBlock);
  if (!head_size.ok()) return head_size.status();
  const auto* magic = reinterpret_cast<const unsigned char*>(head.get());
  const size_t n = *head_size;

  std::unique_ptr<ByteSource> source;
  Compression compression = Compression::kNone;
  if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    auto gzip = std::make_unique<GzipSource>(file.get(), name, std::move(head), n);
    if (Status s = gzip->Init(); !s.ok()) return s;
    source = std::move(gzip);
    compression = Compression::kGzip;
  } else if (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
    auto zstd = std::make_unique<ZstdSource>(file.get(), name, std::move(head), n);
    if (Status s = zstd->Init(); !s.ok()) return s;
    source = std::move(zstd);
    compression = Compression::kZstd;
  } else {
    source = std::make_unique<PlainSource>(file.get(), std::move(head), n);
  }
  return std::unique_ptr<NdjsonReader>(
      std::make_unique<FileNdjsonReader>(path, options, std::move(file), std::move(source), compression, raw_size));
}

}  // namespace nomnom
