#include "core/rejects.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

namespace nomnom {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t ValidUtf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3Fu);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    return 0;
  }
  return n;
}

}  // namespace

std::string EscapeInvalidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < s.size();) {
    const size_t n = ValidUtf8Length(s, i);
    if (n == 0) {
      const auto c = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

std::string RejectToJson(const RejectRecord& r) {
  nlohmann::ordered_json j;
  j["file"] = EscapeInvalidUtf8(r.file);
  j["line"] = r.line;
  j["error"] = EscapeInvalidUtf8(r.error);
  j["raw"] = EscapeInvalidUtf8(r.raw);
  return j.dump();
}

Result<std::unique_ptr<RejectFileWriter>> RejectFileWriter::Open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return Status::Io("cannot open rejects file " + path + ": " + std::strerror(errno));
  return std::unique_ptr<RejectFileWriter>(new RejectFileWriter(f, path));
}

RejectFileWriter::~RejectFileWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

Status RejectFileWriter::Write(const RejectRecord& r) {
  std::string line = RejectToJson(r);
  line.push_back('\n');
  std::lock_guard<std::mutex> lock(mu_);
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size()) {
    return Status::Io("cannot write rejects file " + path_ + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status RejectFileWriter::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (std::fflush(file_) != 0) return Status::Io("cannot write rejects file " + path_ + ": " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace nomnom
