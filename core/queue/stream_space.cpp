#include "core/queue/stream_space.h"

#include <string>

namespace nomnom {

uint64_t StreamSpaceGuard::RecordBytes(const OutgoingMessage& m) {
  // Payload, subject, the Nats-Msg-Id header, the other headers (name, ": ",
  // value, CRLF) and the store's framing (~50 bytes; 160 to be safe).
  uint64_t n = m.body.size() + m.subject.size() + m.msg_id.size() + 32 + 160;
  for (const auto& [k, v] : m.headers) n += k.size() + v.size() + 4;
  return n;
}

Status StreamSpaceGuard::Admit(const OutgoingMessage& msg) {
  if (max_bytes_ <= 0) return Status::Ok();
  const auto max = static_cast<uint64_t>(max_bytes_);
  const uint64_t record = RecordBytes(msg);
  if (!read_ || known_ + since_ + record > max / 10 * 9 || since_ > (uint64_t{64} << 20)) {
    if (auto st = js_.MainStreamStats(); st.ok()) {
      known_ = st->bytes;
      since_ = 0;
      read_ = true;
    }
  }
  if (known_ + since_ + record > max) {
    return Status::Aborted("the JetStream stream is full (" + std::to_string(known_ + since_) + " of " +
                           std::to_string(max) + " bytes used, this chunk needs " + std::to_string(record) +
                           "); retry once workers have drained it");
  }
  since_ += record;
  return Status::Ok();
}

}  // namespace nomnom
