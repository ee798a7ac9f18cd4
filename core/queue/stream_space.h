// StreamSpaceGuard: refuses a chunk whose stored record would not fit the
// main stream's free space, before it is published.
//
// Why: nats-server 2.9 (Debian's) compares only a message's payload with a
// stream's free space (max_bytes), but stores the whole record (subject,
// headers, ~50 bytes of framing) and makes room for it by dropping the OLDEST
// message, even with discard "new". A chunk JetStream had acknowledged would be
// lost. So publishers check the free space themselves: the stream's size is
// read from the server whenever the estimate (last size read + records
// published since, which over-counts because workers remove acknowledged
// chunks) comes within 10 % of the limit, so near the limit every publish is
// checked against a fresh size. Another process publishing to the same stream
// between that read and this publish can still cross the boundary: keep
// max_bytes well above the expected backlog.
//
// Not thread-safe: one guard per publishing thread. The client must outlive it.
#pragma once

#include <cstdint>

#include "core/base/status.h"
#include "core/queue/nats_client.h"

namespace nomnom {

class StreamSpaceGuard {
 public:
  // max_bytes <= 0: no check.
  StreamSpaceGuard(JetStreamClient& js, int64_t max_bytes) : js_(js), max_bytes_(max_bytes) {}

  // OK when msg's record fits (and counts it as published), else kAborted
  // with a message saying the stream is full.
  Status Admit(const OutgoingMessage& msg);

  // What nats-server's file store keeps for msg, generously estimated.
  static uint64_t RecordBytes(const OutgoingMessage& msg);

 private:
  JetStreamClient& js_;
  const int64_t max_bytes_;
  uint64_t known_ = 0;  // the stream's bytes when last read
  uint64_t since_ = 0;  // record bytes admitted since
  bool read_ = false;
};

}  // namespace nomnom
