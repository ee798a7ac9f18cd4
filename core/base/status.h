// Status and Result<T>: errors as values at module boundaries.
//
// A Status is either OK or carries a code and a human-readable message. Result<T>
// holds either a value or a non-OK Status. Both are cheap to move and are not
// thread-safe (use them as values).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace nomnom {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad configuration, flags or input the caller controls
  kNotFound,         // a file, entity or table that does not exist
  kIo,               // reading or writing a file failed
  kDatabase,         // PostgreSQL reported an error that is not about one row
  kConnection,       // PostgreSQL or NATS could not be reached / connection lost
  kSchemaMismatch,   // an existing table does not match the entity
  kAborted,          // stopped on purpose (e.g. --max-errors exceeded, cancelled)
  kConflict,         // someone else got there first (e.g. a chunk another worker committed meanwhile)
  kUnavailable,      // a dependency is temporarily unable: timeouts, lock waits, serialization
                     // failures, exhausted resources, a server shutting down; retrying later helps
  kInternal,
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Io(std::string m) { return {StatusCode::kIo, std::move(m)}; }
  static Status Database(std::string m) { return {StatusCode::kDatabase, std::move(m)}; }
  static Status Connection(std::string m) { return {StatusCode::kConnection, std::move(m)}; }
  static Status SchemaMismatch(std::string m) { return {StatusCode::kSchemaMismatch, std::move(m)}; }
  static Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
  static Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "a Result built from a Status must carry an error");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace nomnom
