#include "core/format/ndjson_reader.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/test_env.h"

namespace {

using nomnom::Chunk;
using nomnom::ForEachPaddedLine;
using nomnom::kChunkPadding;
using nomnom::NdjsonReader;
using nomnom::NdjsonReaderOptions;
using nomnom::OversizeLine;
using nomnom::Status;
using nomnom::StatusCode;
using nomnom::testing::ReadFile;
using nomnom::testing::TempDir;

struct NumberedLine {
  uint64_t number = 0;
  std::string text;  // without the '\n'
  bool operator==(const NumberedLine& o) const { return number == o.number && text == o.text; }
};

struct Lines {
  std::vector<NumberedLine> kept;
  std::vector<OversizeLine> oversize;
};

// What the reader must deliver for `input`: the BOM dropped, lines split at
// '\n' (a last line without one still counts), lines longer than max_line
// reported instead of kept.
Lines Reference(std::string_view input, uint64_t max_line) {
  if (input.substr(0, 3) == "\xEF\xBB\xBF") input.remove_prefix(3);
  Lines out;
  uint64_t number = 0;
  while (!input.empty()) {
    size_t end = input.find('\n');
    std::string_view line = input.substr(0, end);
    ++number;
    if (line.size() > max_line) {
      out.oversize.push_back(OversizeLine{number, line.size(), std::string(line.substr(0, 256))});
    } else {
      out.kept.push_back(NumberedLine{number, std::string(line)});
    }
    input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
  }
  return out;
}

struct ReadOutcome {
  Status status;  // the first error, if any
  Lines lines;
  std::string concatenated;  // all chunk data
  size_t chunks = 0;
  size_t max_chunk_size = 0;
  size_t max_capacity = 0;
};

// Reads everything, checking the chunk invariants on the way. With move_out the
// caller takes every chunk's buffer (as the pipeline does); otherwise the same
// Chunk is reused.
ReadOutcome ReadAllFrom(NdjsonReader& reader, bool move_out = false) {
  ReadOutcome out;
  Chunk chunk;
  uint64_t next_line = 1;
  for (int guard = 0; guard < 10'000'000; ++guard) {
    nomnom::Result<bool> more = reader.Next(&chunk);
    if (!more.ok()) {
      out.status = more.status();
      return out;
    }
    // Lines between the previous chunk and this one are exactly the oversize ones.
    for (const OversizeLine& o : chunk.oversize) {
      CHECK(o.line == next_line);
      ++next_line;
      out.lines.oversize.push_back(o);
    }
    if (!*more) {
      CHECK(chunk.line_count == 0);
      // Past the end it stays at the end.
      nomnom::Result<bool> again = reader.Next(&chunk);
      REQUIRE(again.ok());
      CHECK_FALSE(*again);
      CHECK(chunk.oversize.empty());
      return out;
    }
    ++out.chunks;
    const std::string_view data = chunk.data.view();
    REQUIRE(chunk.line_count > 0);
    CHECK(chunk.first_line == next_line);
    REQUIRE_FALSE(data.empty());
    CHECK(data.back() == '\n');
    CHECK(static_cast<uint64_t>(std::count(data.begin(), data.end(), '\n')) == chunk.line_count);
    REQUIRE(chunk.data.capacity() >= chunk.data.size() + kChunkPadding);
    const std::string_view padding(chunk.data.data() + chunk.data.size(), kChunkPadding);
    CHECK(padding == std::string(kChunkPadding, '\0'));
    out.max_chunk_size = std::max(out.max_chunk_size, data.size());
    out.max_capacity = std::max(out.max_capacity, chunk.data.capacity());
    out.concatenated.append(data);
    uint64_t number = chunk.first_line;
    for (size_t pos = 0; pos < data.size();) {
      size_t end = data.find('\n', pos);
      out.lines.kept.push_back(NumberedLine{number++, std::string(data.substr(pos, end - pos))});
      pos = end + 1;
    }
    next_line = chunk.first_line + chunk.line_count;
    if (move_out) {
      nomnom::ByteBuffer taken = std::move(chunk.data);
    }
  }
  FAIL("the reader never reached the end");
  return out;
}

ReadOutcome ReadAll(const std::string& path, const NdjsonReaderOptions& options, bool move_out = false) {
  auto reader = NdjsonReader::Open(path, options);
  REQUIRE(reader.ok());
  return ReadAllFrom(**reader, move_out);
}

NdjsonReaderOptions Options(size_t chunk_bytes, size_t max_line_bytes = size_t{64} << 20) {
  NdjsonReaderOptions o;
  o.chunk_bytes = chunk_bytes;
  o.max_line_bytes = max_line_bytes;
  return o;
}

// Checks that reading `path` delivers exactly Reference(input).
void ExpectDelivers(const std::string& path, std::string_view input, const NdjsonReaderOptions& options,
                    bool move_out = false) {
  INFO("chunk_bytes=" << options.chunk_bytes << " max_line_bytes=" << options.max_line_bytes
                      << " move_out=" << move_out);
  ReadOutcome got = ReadAll(path, options, move_out);
  REQUIRE(got.status.ok());
  Lines want = Reference(input, options.max_line_bytes);
  CHECK(got.lines.kept == want.kept);
  REQUIRE(got.lines.oversize.size() == want.oversize.size());
  for (size_t i = 0; i < want.oversize.size(); ++i) {
    CHECK(got.lines.oversize[i].line == want.oversize[i].line);
    CHECK(got.lines.oversize[i].bytes == want.oversize[i].bytes);
    CHECK(got.lines.oversize[i].prefix == want.oversize[i].prefix);
  }
  // A chunk only outgrows chunk_bytes to finish one long line.
  size_t longest = 0;
  for (const NumberedLine& l : want.kept) longest = std::max(longest, l.text.size());
  CHECK(got.max_chunk_size <= options.chunk_bytes + longest + 1);
}

std::string RandomNdjson(std::mt19937_64& rng, size_t lines, size_t max_len) {
  static constexpr std::string_view kAlphabet = "{}\"abcxyz:,0123456789 \r[]";
  std::uniform_int_distribution<size_t> len_dist(0, max_len);
  std::uniform_int_distribution<size_t> char_dist(0, kAlphabet.size() - 1);
  std::string s;
  for (size_t i = 0; i < lines; ++i) {
    size_t len = rng() % 10 == 0 ? 0 : len_dist(rng);
    for (size_t j = 0; j < len; ++j) s.push_back(kAlphabet[char_dist(rng)]);
    s.push_back('\n');
  }
  return s;
}

std::string GzipFile(const TempDir& dir, const std::string& name, std::string_view content) {
  std::string path = dir.path() + "/" + name;
  gzFile gz = gzopen(path.c_str(), "wb6");
  REQUIRE(gz != nullptr);
  if (!content.empty()) REQUIRE(gzwrite(gz, content.data(), static_cast<unsigned>(content.size())) > 0);
  REQUIRE(gzclose(gz) == Z_OK);
  return path;
}

std::string GzipBytes(std::string_view content) {
  TempDir dir;
  return ReadFile(GzipFile(dir, "x.gz", content));
}

std::string ZstdBytes(std::string_view content) {
  std::string out(ZSTD_compressBound(content.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), content.data(), content.size(), 3);
  REQUIRE(ZSTD_isError(n) == 0);
  out.resize(n);
  return out;
}

// Points fd 0 at another file for the lifetime of the object.
class StdinRedirect {
 public:
  explicit StdinRedirect(int fd) : saved_(::dup(STDIN_FILENO)) {  // -1 when stdin was closed
    REQUIRE(::dup2(fd, STDIN_FILENO) == STDIN_FILENO);
    ::close(fd);
  }
  ~StdinRedirect() {
    if (saved_ >= 0) {
      ::dup2(saved_, STDIN_FILENO);
      ::close(saved_);
    } else {
      ::close(STDIN_FILENO);
    }
  }
  StdinRedirect(const StdinRedirect&) = delete;
  StdinRedirect& operator=(const StdinRedirect&) = delete;

 private:
  int saved_;
};

}  // namespace

TEST_CASE("NdjsonReader delivers every line across many chunk boundaries", "[ndjson_reader]") {
  TempDir dir;
  std::mt19937_64 rng(42);
  std::string input = RandomNdjson(rng, 500, 120);
  std::string with_newline = dir.Write("a.ndjson", input);
  input.pop_back();  // and a variant whose last line has no '\n'
  std::string without_newline = dir.Write("b.ndjson", input);
  for (size_t chunk_bytes : {size_t{1}, size_t{7}, size_t{64}, size_t{1000}, size_t{4} << 20}) {
    for (bool move_out : {false, true}) {
      ExpectDelivers(with_newline, input + "\n", Options(chunk_bytes), move_out);
      ExpectDelivers(without_newline, input, Options(chunk_bytes), move_out);
    }
  }
  // With small chunks there really were many chunks, each cut after a '\n'.
  ReadOutcome got = ReadAll(with_newline, Options(64));
  CHECK(got.chunks > 100);
  CHECK(got.concatenated == input + "\n");
}

TEST_CASE("NdjsonReader reads a plain file bigger than its read block", "[ndjson_reader]") {
  TempDir dir;
  std::mt19937_64 rng(7);
  std::string input = RandomNdjson(rng, 40000, 150);
  REQUIRE(input.size() > (size_t{2} << 20));
  std::string path = dir.Write("big.ndjson", input);
  auto reader = NdjsonReader::Open(path, Options(size_t{1} << 20));
  REQUIRE(reader.ok());
  CHECK((*reader)->compression() == NdjsonReader::Compression::kNone);
  REQUIRE((*reader)->raw_size().has_value());
  CHECK(*(*reader)->raw_size() == input.size());
  ReadOutcome got = ReadAllFrom(**reader);
  REQUIRE(got.status.ok());
  CHECK(got.concatenated == input);
  CHECK(got.lines.kept.size() == 40000);
  CHECK(got.chunks >= 2);
  CHECK(got.max_chunk_size <= (size_t{1} << 20));
  CHECK((*reader)->raw_bytes_read() == input.size());
  // A limit below the read block changes how much is read at once, not what.
  ExpectDelivers(path, input, Options(size_t{1} << 20, 200 << 10));
  ExpectDelivers(path, input, Options(size_t{1} << 20, 100));
}

TEST_CASE("NdjsonReader: empty input, only newlines, missing final newline", "[ndjson_reader]") {
  TempDir dir;
  SECTION("empty file") {
    std::string path = dir.Write("empty.ndjson", "");
    auto reader = NdjsonReader::Open(path, Options(64));
    REQUIRE(reader.ok());
    CHECK(*(*reader)->raw_size() == 0);
    Chunk chunk;
    auto more = (*reader)->Next(&chunk);
    REQUIRE(more.ok());
    CHECK_FALSE(*more);
    CHECK(chunk.line_count == 0);
    CHECK(chunk.oversize.empty());
  }
  SECTION("only newlines") {
    std::string path = dir.Write("nl.ndjson", "\n\n\n");
    for (size_t chunk_bytes : {size_t{1}, size_t{64}}) {
      ReadOutcome got = ReadAll(path, Options(chunk_bytes));
      REQUIRE(got.status.ok());
      CHECK(got.concatenated == "\n\n\n");
      CHECK(got.lines.kept == std::vector<NumberedLine>{{1, ""}, {2, ""}, {3, ""}});
    }
  }
  SECTION("no final newline") {
    std::string path = dir.Write("nofinal.ndjson", "{\"a\":1}\n\n{\"b\":2}");
    ReadOutcome got = ReadAll(path, Options(1 << 20));
    REQUIRE(got.status.ok());
    CHECK(got.chunks == 1);
    CHECK(got.concatenated == "{\"a\":1}\n\n{\"b\":2}\n");
    CHECK(got.lines.kept == std::vector<NumberedLine>{{1, "{\"a\":1}"}, {2, ""}, {3, "{\"b\":2}"}});
  }
  SECTION("a single line without newline") {
    std::string path = dir.Write("one.ndjson", "x");
    ReadOutcome got = ReadAll(path, Options(1));
    REQUIRE(got.status.ok());
    CHECK(got.concatenated == "x\n");
  }
}

TEST_CASE("NdjsonReader drops a leading BOM and keeps CR bytes", "[ndjson_reader]") {
  TempDir dir;
  SECTION("BOM at the start is dropped, elsewhere kept") {
    const std::string input = "\xEF\xBB\xBF{\"a\":1}\r\n\xEF\xBB\xBF{}\r\n";
    std::string path = dir.Write("bom.ndjson", input);
    for (size_t chunk_bytes : {size_t{1}, size_t{2}, size_t{64}}) {  // 1 and 2: the BOM arrives in pieces
      INFO("chunk_bytes=" << chunk_bytes);
      ReadOutcome got = ReadAll(path, Options(chunk_bytes));
      REQUIRE(got.status.ok());
      CHECK(got.concatenated == "{\"a\":1}\r\n\xEF\xBB\xBF{}\r\n");
      CHECK(got.lines.kept == std::vector<NumberedLine>{{1, "{\"a\":1}\r"}, {2, "\xEF\xBB\xBF{}\r"}});
    }
  }
  SECTION("a file that is only a BOM has no lines") {
    std::string path = dir.Write("bomonly.ndjson", "\xEF\xBB\xBF");
    ReadOutcome got = ReadAll(path, Options(64));
    REQUIRE(got.status.ok());
    CHECK(got.chunks == 0);
    CHECK(got.concatenated.empty());
  }
  SECTION("a short file that only looks like part of a BOM is kept") {
    std::string path = dir.Write("short.ndjson", "\xEF\xBB");
    ReadOutcome got = ReadAll(path, Options(64));
    REQUIRE(got.status.ok());
    CHECK(got.concatenated == "\xEF\xBB\n");
  }
  SECTION("CRLF lines keep their CR") {
    std::string path = dir.Write("crlf.ndjson", "a\r\nb\r\n\r\nc\r");
    ReadOutcome got = ReadAll(path, Options(3));
    REQUIRE(got.status.ok());
    CHECK(got.concatenated == "a\r\nb\r\n\r\nc\r\n");
    CHECK(got.lines.kept.size() == 4);
  }
}

TEST_CASE("NdjsonReader skips and reports oversize lines", "[ndjson_reader]") {
  TempDir dir;
  SECTION("numbering stays right around skipped lines") {
    const std::string long20(20, 'b');
    const std::string long30(30, 'd');
    const std::string input = "a\n" + long20 + "\nc\n\n" + long20 + "\n" + long20 + "\ne\n" + long30;
    std::string path = dir.Write("over.ndjson", input);
    for (size_t chunk_bytes : {size_t{1}, size_t{4}, size_t{16}, size_t{64}, size_t{1} << 20}) {
      for (bool move_out : {false, true}) ExpectDelivers(path, input, Options(chunk_bytes, 10), move_out);
    }
    ReadOutcome got = ReadAll(path, Options(64, 10));
    CHECK(got.lines.kept == std::vector<NumberedLine>{{1, "a"}, {3, "c"}, {4, ""}, {7, "e"}});
    REQUIRE(got.lines.oversize.size() == 4);
    CHECK(got.lines.oversize[0].line == 2);
    CHECK(got.lines.oversize[0].bytes == 20);
    CHECK(got.lines.oversize[0].prefix == long20);
    CHECK(got.lines.oversize[1].line == 5);
    CHECK(got.lines.oversize[2].line == 6);
    CHECK(got.lines.oversize[3].line == 8);  // the last line, without '\n'
    CHECK(got.lines.oversize[3].bytes == 30);
  }
  SECTION("a file that is one oversize line reports it on the final call") {
    std::string path = dir.Write("one.ndjson", std::string(100, 'x') + "\n");
    auto reader = NdjsonReader::Open(path, Options(64, 50));
    REQUIRE(reader.ok());
    Chunk chunk;
    auto more = (*reader)->Next(&chunk);
    REQUIRE(more.ok());
    CHECK_FALSE(*more);
    REQUIRE(chunk.oversize.size() == 1);
    CHECK(chunk.oversize[0].line == 1);
    CHECK(chunk.oversize[0].bytes == 100);
  }
  SECTION("a huge line is streamed past, not buffered") {
    std::string huge(size_t{5} << 20, 'h');
    huge[0] = '{';
    const std::string input = "{\"first\":1}\n" + huge + "\n{\"after\":2}\n";
    std::string path = dir.Write("huge.ndjson", input);
    ReadOutcome got = ReadAll(path, Options(size_t{64} << 10, size_t{1} << 20));
    REQUIRE(got.status.ok());
    CHECK(got.lines.kept == std::vector<NumberedLine>{{1, "{\"first\":1}"}, {3, "{\"after\":2}"}});
    REQUIRE(got.lines.oversize.size() == 1);
    CHECK(got.lines.oversize[0].line == 2);
    CHECK(got.lines.oversize[0].bytes == huge.size());
    CHECK(got.lines.oversize[0].prefix == huge.substr(0, 256));
    // Memory stayed about chunk_bytes plus one max line, far below the line's 5 MiB.
    CHECK(got.max_capacity < (size_t{3} << 20));
  }
  SECTION("a long line below the limit is kept whole") {
    std::string long_line(300000, 'q');
    const std::string input = "a\n" + long_line + "\nb\n";
    std::string path = dir.Write("long.ndjson", input);
    ExpectDelivers(path, input, Options(64, 400000));
    ExpectDelivers(path, input, Options(64, 300000));  // exactly at the limit
    ExpectDelivers(path, input, Options(64, 299999));  // one byte over
  }
  SECTION("random inputs with a small limit") {
    std::mt19937_64 rng(1234);
    for (int round = 0; round < 20; ++round) {
      std::string input = RandomNdjson(rng, 200, 80);
      if (round % 2 == 1) input.pop_back();
      std::string path = dir.Write("r" + std::to_string(round) + ".ndjson", input);
      for (size_t chunk_bytes : {size_t{1}, size_t{33}, size_t{256}, size_t{1} << 20}) {
        ExpectDelivers(path, input, Options(chunk_bytes, 40), round % 3 == 0);
      }
    }
  }
}

TEST_CASE("NdjsonReader decompresses gzip, including multi-member files", "[ndjson_reader]") {
  TempDir dir;
  std::mt19937_64 rng(99);
  const std::string part1 = RandomNdjson(rng, 300, 100);
  const std::string part2 = RandomNdjson(rng, 300, 100);
  SECTION("one member gives the same chunks as the plain file") {
    std::string plain = dir.Write("p.ndjson", part1);
    std::string gz = GzipFile(dir, "p.ndjson.gz", part1);
    auto reader = NdjsonReader::Open(gz, Options(64));
    REQUIRE(reader.ok());
    CHECK((*reader)->compression() == NdjsonReader::Compression::kGzip);
    ReadOutcome from_gz = ReadAllFrom(**reader);
    REQUIRE(from_gz.status.ok());
    ReadOutcome from_plain = ReadAll(plain, Options(64));
    CHECK(from_gz.concatenated == from_plain.concatenated);
    CHECK(from_gz.lines.kept == from_plain.lines.kept);
    CHECK(from_gz.concatenated == part1);
    CHECK((*reader)->raw_bytes_read() == ReadFile(gz).size());
    CHECK(*(*reader)->raw_size() == ReadFile(gz).size());
  }
  SECTION("two concatenated members") {
    const std::string bytes = GzipBytes(part1) + GzipBytes(part2);
    std::string gz = dir.Write("two.ndjson.gz", bytes);
    for (size_t chunk_bytes : {size_t{1}, size_t{64}, size_t{1} << 20}) {
      ExpectDelivers(gz, part1 + part2, Options(chunk_bytes));
    }
  }
  SECTION("a member with an empty payload between others, BOM and no final newline") {
    const std::string first = "\xEF\xBB\xBF{\"a\":1}\n{\"b\"";
    const std::string bytes = GzipBytes(first) + GzipBytes("") + GzipBytes(":2}");
    std::string gz = dir.Write("parts.ndjson.gz", bytes);
    ExpectDelivers(gz, first + ":2}", Options(5));
    CHECK(ReadAll(gz, Options(5)).concatenated == "{\"a\":1}\n{\"b\":2}\n");
  }
  SECTION("compressed input bigger than the read block") {
    std::string big = RandomNdjson(rng, 30000, 150);
    std::string gz = GzipFile(dir, "big.ndjson.gz", big);
    REQUIRE(ReadFile(gz).size() > (size_t{1} << 20));
    ExpectDelivers(gz, big, Options(size_t{256} << 10));
  }
}

TEST_CASE("NdjsonReader decompresses zstd, including several frames", "[ndjson_reader]") {
  TempDir dir;
  std::mt19937_64 rng(5);
  const std::string part1 = RandomNdjson(rng, 300, 100);
  const std::string part2 = RandomNdjson(rng, 300, 100);
  SECTION("one frame gives the same chunks as the plain file") {
    std::string plain = dir.Write("p.ndjson", part1);
    std::string zst = dir.Write("p.ndjson.zst", ZstdBytes(part1));
    auto reader = NdjsonReader::Open(zst, Options(64));
    REQUIRE(reader.ok());
    CHECK((*reader)->compression() == NdjsonReader::Compression::kZstd);
    ReadOutcome from_zst = ReadAllFrom(**reader);
    REQUIRE(from_zst.status.ok());
    ReadOutcome from_plain = ReadAll(plain, Options(64));
    CHECK(from_zst.concatenated == from_plain.concatenated);
    CHECK(from_zst.lines.kept == from_plain.lines.kept);
    CHECK((*reader)->raw_bytes_read() == ReadFile(zst).size());
  }
  SECTION("two frames") {
    std::string zst = dir.Write("two.ndjson.zst", ZstdBytes(part1) + ZstdBytes(part2));
    for (size_t chunk_bytes : {size_t{1}, size_t{64}, size_t{1} << 20}) {
      ExpectDelivers(zst, part1 + part2, Options(chunk_bytes));
    }
  }
  SECTION("oversize lines inside compressed input") {
    std::string input = "a\n" + std::string(5000, 'z') + "\nb";
    std::string zst = dir.Write("over.ndjson.zst", ZstdBytes(input));
    ExpectDelivers(zst, input, Options(64, 100));
  }
  SECTION("compressed input bigger than the read block") {
    std::string big = RandomNdjson(rng, 30000, 150);
    std::string zst = dir.Write("big.ndjson.zst", ZstdBytes(big));
    REQUIRE(ReadFile(zst).size() > (size_t{1} << 20));
    ExpectDelivers(zst, big, Options(size_t{256} << 10));
  }
}

TEST_CASE("NdjsonReader reports corrupt and truncated compressed input", "[ndjson_reader]") {
  TempDir dir;
  std::mt19937_64 rng(11);
  const std::string input = RandomNdjson(rng, 2000, 100);
  auto expect_error = [](const std::string& path, const std::string& what) {
    ReadOutcome got = ReadAll(path, Options(1024));
    REQUIRE_FALSE(got.status.ok());
    CHECK(got.status.code() == StatusCode::kIo);
    CHECK_THAT(got.status.message(), Catch::Contains(path) && Catch::Contains(what));
    // The error sticks.
    auto reader = NdjsonReader::Open(path, Options(1024));
    REQUIRE(reader.ok());
    Chunk chunk;
    nomnom::Result<bool> more = true;
    while (more.ok() && *more) more = (*reader)->Next(&chunk);
    REQUIRE_FALSE(more.ok());
    CHECK_FALSE((*reader)->Next(&chunk).ok());
  };
  SECTION("truncated gzip") {
    std::string gz = GzipBytes(input);
    std::string path = dir.Write("orders.ndjson.gz", gz.substr(0, gz.size() / 2));
    expect_error(path, "gzip data is truncated");
  }
  SECTION("gzip cut just after its magic") {
    std::string path = dir.Write("magic.ndjson.gz", "\x1f\x8b");
    expect_error(path, "gzip data is truncated");
  }
  SECTION("gzip with a bad checksum") {
    std::string gz = GzipBytes(input);
    gz[gz.size() - 8] = static_cast<char>(gz[gz.size() - 8] ^ 0x55);  // the CRC32 trailer
    std::string path = dir.Write("crc.ndjson.gz", gz);
    expect_error(path, "corrupt gzip data: incorrect data check");
  }
  SECTION("gzip followed by garbage") {
    std::string path = dir.Write("garbage.ndjson.gz", GzipBytes(input) + "not gzip");
    expect_error(path, "corrupt gzip data");
  }
  SECTION("truncated zstd") {
    std::string zst = ZstdBytes(input);
    std::string path = dir.Write("orders.ndjson.zst", zst.substr(0, zst.size() / 2));
    expect_error(path, "zstd data is truncated");
  }
  SECTION("corrupt zstd frame header") {
    std::string zst = ZstdBytes(input);
    zst[4] = static_cast<char>(zst[4] | 0x08);  // a reserved bit of the frame header descriptor
    std::string path = dir.Write("bad.ndjson.zst", zst);
    expect_error(path, "corrupt zstd data");
  }
}

TEST_CASE("NdjsonReader open errors name the path", "[ndjson_reader]") {
  TempDir dir;
  SECTION("missing file") {
    const std::string path = dir.path() + "/missing.ndjson";
    auto reader = NdjsonReader::Open(path, Options(64));
    REQUIRE_FALSE(reader.ok());
    CHECK(reader.status().code() == StatusCode::kIo);
    CHECK_THAT(reader.status().message(), Catch::Contains(path) && Catch::Contains(std::strerror(ENOENT)));
  }
  SECTION("directory") {
    auto reader = NdjsonReader::Open(dir.path(), Options(64));
    REQUIRE_FALSE(reader.ok());
    CHECK_THAT(reader.status().message(), Catch::Contains(dir.path()));
  }
}

TEST_CASE("NdjsonReader reads standard input for \"-\"", "[ndjson_reader]") {
  TempDir dir;
  SECTION("stdin redirected from a file") {
    const std::string input = "{\"a\":1}\n{\"b\":2}\n{\"c\":3}";
    std::string path = dir.Write("in.ndjson", input);
    int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    StdinRedirect redirect(fd);
    auto reader = NdjsonReader::Open("-", Options(10));
    REQUIRE(reader.ok());
    CHECK((*reader)->path() == "-");
    REQUIRE((*reader)->raw_size().has_value());
    CHECK(*(*reader)->raw_size() == input.size());
    ReadOutcome got = ReadAllFrom(**reader);
    REQUIRE(got.status.ok());
    CHECK(got.concatenated == input + "\n");
    CHECK(got.lines.kept.size() == 3);
  }
  SECTION("gzip through a pipe") {
    const std::string input = "\xEF\xBB\xBF{\"x\":1}\n\n{\"y\":2}\n";
    const std::string gz = GzipBytes(input);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    REQUIRE(::write(fds[1], gz.data(), gz.size()) == static_cast<ssize_t>(gz.size()));
    ::close(fds[1]);
    StdinRedirect redirect(fds[0]);
    auto reader = NdjsonReader::Open("-", Options(4));
    REQUIRE(reader.ok());
    CHECK((*reader)->compression() == NdjsonReader::Compression::kGzip);
    CHECK_FALSE((*reader)->raw_size().has_value());
    ReadOutcome got = ReadAllFrom(**reader);
    REQUIRE(got.status.ok());
    CHECK(got.lines.kept == std::vector<NumberedLine>{{1, "{\"x\":1}"}, {2, ""}, {3, "{\"y\":2}"}});
    CHECK((*reader)->raw_bytes_read() == gz.size());
  }
}

TEST_CASE("padded line walk: line numbers, blank lines, a last line without newline, readable bytes",
          "[ndjson_reader]") {
  std::string text = "a\n\nbb\r\nccc";
  const size_t size = text.size();
  text.append(8, ' ');
  std::vector<std::pair<std::string, uint64_t>> seen;
  ForEachPaddedLine(text, size, [&](std::string_view line, uint64_t no, size_t readable) {
    CHECK(readable == static_cast<size_t>(text.data() + text.size() - line.data()));
    seen.emplace_back(std::string(line), no);
    return true;
  });
  REQUIRE(seen.size() == 4);
  CHECK(seen[0] == std::make_pair(std::string("a"), uint64_t{1}));
  CHECK(seen[1] == std::make_pair(std::string(""), uint64_t{2}));
  CHECK(seen[2] == std::make_pair(std::string("bb\r"), uint64_t{3}));
  CHECK(seen[3] == std::make_pair(std::string("ccc"), uint64_t{4}));
  int calls = 0;
  ForEachPaddedLine(text, size, [&](std::string_view, uint64_t, size_t) { return ++calls < 2; });
  CHECK(calls == 2);
}
