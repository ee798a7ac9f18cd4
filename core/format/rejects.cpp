#include "core/format/rejects.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/base/utf8.h"

namespace nomnom {

std::string RejectToJson(const RejectRecord& r) {
  nlohmann::ordered_json j;
  j["file"] = EscapeInvalidUtf8(r.file);
  j["line"] = r.line;
  j["error"] = EscapeInvalidUtf8(r.error);
  j["raw"] = EscapeInvalidUtf8(r.raw);
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
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
