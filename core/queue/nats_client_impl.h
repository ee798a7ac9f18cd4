// Internals shared by nats_client.cpp, nats_topology.cpp, nats_publisher.cpp and
// nats_consumer.cpp.
// Not part of nomnom_core's interface.
#pragma once

#include <nats/nats.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/queue/nats_client.h"

namespace nomnom::nats_detail {

struct PendingPublish {
  std::function<void(const PublishResult&)> done;
  std::string subject;
  std::string msg_id;
};

// State reached from cnats callbacks. cnats callbacks get a `void*` closure;
// it is an id into a process-wide registry rather than a pointer, so a
// callback that runs while (or after) its client is destroyed finds nothing
// instead of freed memory.
struct Shared {
  std::mutex mu;
  std::condition_variable cv;  // signalled when an in-flight publish completes
  // Keyed by the natsMsg handed to js_PublishMsgAsync: cnats gives the same
  // pointer back to the ack handler, and the entry is erased before the
  // message is destroyed, so a key is never reused while present.
  std::unordered_map<natsMsg*, PendingPublish> inflight;
  // Taken out of `inflight`, callback not yet returned (Drain and the
  // destructor wait for these too).
  size_t completing = 0;
  bool closing = false;
  size_t max_inflight = 1;
  int64_t publish_timeout_ms = 0;
  std::function<void(const std::string&)> on_event;  // immutable after Connect
};

uint64_t RegisterShared(std::shared_ptr<Shared> shared);
std::shared_ptr<Shared> FindShared(void* closure);
void UnregisterShared(uint64_t id);
void* ClosureFor(uint64_t id);

// cnats jsPubOptions.AckHandler.
void OnPublishAck(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) noexcept;

// "what: <cnats status text>[: <detail>] [(JetStream error N)]". The detail is
// the calling thread's last cnats error text when not given.
std::string NatsErrorText(natsStatus s, std::string_view what, const char* detail = nullptr,
                          jsErrCode code = static_cast<jsErrCode>(0));
// The Status of a failed publish of `subject` / `msg_id` (text: cnats' error
// text, or null for the thread's last cnats error).
Status PublishFailure(natsStatus s, jsErrCode code, const char* text, const std::string& subject,
                      const std::string& msg_id, int64_t timeout_ms);
// Text for a failed JetStream API request (hints at -js on no responders).
std::string ApiFailure(natsStatus s, jsErrCode code, const std::string& what);
// Maps transport statuses to kConnection, the rest to `otherwise`.
StatusCode NatsStatusCode(natsStatus s, StatusCode otherwise);
// The URL with any password replaced by "***".
std::string RedactUrl(std::string_view url);

}  // namespace nomnom::nats_detail

namespace nomnom {

struct JetStreamClient::Impl {
  JetStreamConfig config;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  uint64_t shared_id = 0;
  std::shared_ptr<nats_detail::Shared> shared;

  std::mutex subs_mu;
  std::vector<natsSubscription*> idle_subs;  // pull subscriptions not fetching now
  std::vector<natsSubscription*> all_subs;

  // jsOptions for management requests (Wait = api_timeout_ms).
  jsOptions ApiOptions() const;
  // Builds a natsMsg (subject, headers, body); Nats-Msg-Id is set by jsPubOptions.
  Result<natsMsg*> BuildMsg(const OutgoingMessage& msg) const;
  jsPubOptions PublishOptions(const OutgoingMessage& msg) const;
};

}  // namespace nomnom
