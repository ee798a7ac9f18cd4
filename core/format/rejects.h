// Rejected rows: what was wrong, where, and the original line.
//
// RejectSink receives every rejected row of a load. RejectFileWriter is the
// --rejects FILE implementation: one JSON object per line,
//   {"file":"orders.ndjson","line":42,"error":"field 'x': ...","raw":"<the line>"}
// The raw line is JSON text; bytes that are not valid UTF-8 are written as the
// four characters \xNN (so "raw" stays valid JSON and loses nothing).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/base/status.h"
#include "core/base/utf8.h"  // EscapeInvalidUtf8, used with rejects

namespace nomnom {

struct RejectRecord {
  std::string file;   // input path as given ("-" for stdin)
  uint64_t line = 0;  // 1-based line number in that input
  std::string error;  // readable reason
  std::string raw;    // the original line (without its newline), possibly truncated
};

// Receives rejected rows; implementations must be thread-safe.
class RejectSink {
 public:
  virtual ~RejectSink() = default;
  virtual Status Write(const RejectRecord& r) = 0;
  virtual Status Flush() { return Status::Ok(); }
};

// Writes rejects as NDJSON to a file. Thread-safe (a mutex per write).
class RejectFileWriter : public RejectSink {
 public:
  static Result<std::unique_ptr<RejectFileWriter>> Open(const std::string& path);
  ~RejectFileWriter() override;
  Status Write(const RejectRecord& r) override;
  Status Flush() override;

 private:
  RejectFileWriter(std::FILE* f, std::string path) : file_(f), path_(std::move(path)) {}
  std::mutex mu_;
  std::FILE* file_;  // guarded by mu_
  std::string path_;
};

// Formats one reject as a JSON object (no trailing newline).
std::string RejectToJson(const RejectRecord& r);

}  // namespace nomnom
