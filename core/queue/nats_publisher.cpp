// JetStreamClient publishing: bounded asynchronous publishes with exactly-once
// completion callbacks, and the synchronous variant.
//
// cnats (3.4) gives every js_PublishMsgAsync message back to the context's
// AckHandler exactly once: with the pub ack, with the server's error, with
// NATS_NO_RESPONDERS when no stream listens, or with NATS_TIMEOUT when
// jsPubOptions.MaxWait passes without an answer (cnats' own timer; a late ack
// is then dropped by cnats because the message is no longer registered). It
// does not call the handler for messages still pending when the context is
// destroyed; ~JetStreamClient fails those itself.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <string>
#include <utility>

#include "core/base/log.h"
#include "core/queue/nats_client.h"
#include "core/queue/nats_client_impl.h"

namespace nomnom {
namespace nats_detail {

Status PublishFailure(natsStatus s, jsErrCode code, const char* text, const std::string& subject,
                      const std::string& msg_id, int64_t timeout_ms) {
  std::string what = "publish to '" + subject + "'";
  if (!msg_id.empty()) what += " (Nats-Msg-Id " + msg_id + ")";
  switch (s) {
    case NATS_NO_RESPONDERS:
      return Status::NotFound(what +
                              " failed: no JetStream stream stores this subject (no responders; "
                              "is the stream missing?)");
    case NATS_TIMEOUT:
      return Status::Connection(what + ": JetStream did not acknowledge it within " + std::to_string(timeout_ms) +
                                " ms (it may or may not be stored; retry with the same Nats-Msg-Id)");
    case NATS_INSUFFICIENT_BUFFER:
      return Status::Connection(what + " failed: NATS is disconnected and the reconnect buffer is full");
    case NATS_MAX_PAYLOAD:
      return Status::InvalidArgument(NatsErrorText(s, what + " failed", text));
    default:
      break;
  }
  if (s == NATS_ERR && static_cast<int>(code) != 0) {
    return Status::Internal(NatsErrorText(s, what + " rejected by JetStream", text, code));
  }
  return Status(NatsStatusCode(s, StatusCode::kInternal), NatsErrorText(s, what + " failed", text, code));
}

void OnPublishAck(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) noexcept {
  (void)js;
  std::shared_ptr<Shared> shared = FindShared(closure);
  PendingPublish pending;
  bool found = false;
  if (shared != nullptr) {
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      auto it = shared->inflight.find(msg);
      if (it != shared->inflight.end()) {
        pending = std::move(it->second);
        shared->inflight.erase(it);
        ++shared->completing;
        found = true;
      }
    }
  }
  natsMsg_Destroy(msg);  // ours since cnats 3.x when an AckHandler is set
  if (!found) return;    // the client is gone (its destructor failed the callback)

  PublishResult r;
  if (pa != nullptr) {
    r.duplicate = pa->Duplicate;
    r.stream_seq = pa->Sequence;
  } else {
    natsStatus err = pae != nullptr ? pae->Err : NATS_ERR;
    jsErrCode code = pae != nullptr ? pae->ErrCode : static_cast<jsErrCode>(0);
    const char* text = pae != nullptr && pae->ErrText != nullptr ? pae->ErrText : "";
    r.status = PublishFailure(err == NATS_OK ? NATS_ERR : err, code, text, pending.subject, pending.msg_id,
                              shared->publish_timeout_ms);
  }
  // A C library's callback: nothing may escape it (it is noexcept, and
  // nats.c would be left with a half-run callback).
  if (pending.done) {
    try {
      pending.done(r);
    } catch (const std::exception& ex) {
      LogError("publish completion failed: {}", ex.what());
    } catch (...) {
      LogError("publish completion failed");
    }
  }
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    --shared->completing;
  }
  shared->cv.notify_all();
}

}  // namespace nats_detail

using nats_detail::NatsErrorText;
using nats_detail::NatsStatusCode;
using nats_detail::PendingPublish;
using nats_detail::PublishFailure;

Result<natsMsg*> JetStreamClient::Impl::BuildMsg(const OutgoingMessage& m) const {
  if (m.subject.empty()) return Status::InvalidArgument("cannot publish a message without a subject");
  if (m.body.size() > static_cast<size_t>(INT_MAX)) {
    return Status::InvalidArgument("cannot publish " + std::to_string(m.body.size()) + " bytes to '" + m.subject +
                                   "': too large for one NATS message");
  }
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, m.subject.c_str(), nullptr, m.body.data(), static_cast<int>(m.body.size()));
  for (const auto& [key, value] : m.headers) {
    if (s != NATS_OK) break;
    if (key.empty()) {
      natsMsg_Destroy(msg);
      return Status::InvalidArgument("cannot publish to '" + m.subject + "': empty header name");
    }
    s = natsMsgHeader_Add(msg, key.c_str(), value.c_str());
  }
  if (s != NATS_OK) {
    std::string text = NatsErrorText(s, "cannot build the message for '" + m.subject + "'");
    natsMsg_Destroy(msg);
    return Status(NatsStatusCode(s, StatusCode::kInvalidArgument), text);
  }
  return msg;
}

jsPubOptions JetStreamClient::Impl::PublishOptions(const OutgoingMessage& m) const {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = config.publish_timeout_ms;
  if (!m.msg_id.empty()) po.MsgId = m.msg_id.c_str();
  return po;
}

void JetStreamClient::PublishAsync(OutgoingMessage m, std::function<void(const PublishResult&)> done) {
  Impl& im = *impl_;
  nats_detail::Shared& sh = *im.shared;
  auto fail_now = [](std::function<void(const PublishResult&)>& cb, Status st) {
    PublishResult r;
    r.status = std::move(st);
    if (cb) cb(r);
  };
  Result<natsMsg*> built = im.BuildMsg(m);
  if (!built.ok()) return fail_now(done, built.status());
  natsMsg* msg = built.value();
  {
    std::unique_lock<std::mutex> lock(sh.mu);
    sh.cv.wait(lock, [&] { return sh.closing || sh.inflight.size() + sh.completing < sh.max_inflight; });
    if (sh.closing) {
      lock.unlock();
      natsMsg_Destroy(msg);
      return fail_now(done, Status::Aborted("cannot publish to '" + m.subject + "': the JetStream client is closing"));
    }
    // Registered before cnats sees the message: its ack may arrive before
    // js_PublishMsgAsync returns.
    sh.inflight.emplace(msg, PendingPublish{std::move(done), m.subject, m.msg_id});
  }
  jsPubOptions po = im.PublishOptions(m);
  natsMsg* handed = msg;
  natsStatus s = js_PublishMsgAsync(im.js, &handed, &po);
  if (s == NATS_OK) return;  // cnats owns it now and will call OnPublishAck

  // cnats did not take the message, so its ack handler will never see it.
  Status failure =
      PublishFailure(s, static_cast<jsErrCode>(0), nullptr, m.subject, m.msg_id, im.config.publish_timeout_ms);
  PendingPublish pending;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(sh.mu);
    auto it = sh.inflight.find(msg);
    if (it != sh.inflight.end()) {
      pending = std::move(it->second);
      sh.inflight.erase(it);
      found = true;
    }
  }
  sh.cv.notify_all();
  natsMsg_Destroy(handed);
  if (found) fail_now(pending.done, std::move(failure));
}

Status JetStreamClient::Publish(const OutgoingMessage& m, PublishResult* result) {
  PublishResult local;
  PublishResult& r = result != nullptr ? *result : local;
  r = PublishResult{};
  Result<natsMsg*> built = impl_->BuildMsg(m);
  if (!built.ok()) {
    r.status = built.status();
    return r.status;
  }
  natsMsg* msg = built.value();
  jsPubOptions po = impl_->PublishOptions(m);
  jsPubAck* pa = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_PublishMsg(&pa, impl_->js, msg, &po, &code);
  if (s == NATS_OK) {
    r.duplicate = pa->Duplicate;
    r.stream_seq = pa->Sequence;
    jsPubAck_Destroy(pa);
  } else {
    r.status = PublishFailure(s, code, nullptr, m.subject, m.msg_id, impl_->config.publish_timeout_ms);
  }
  natsMsg_Destroy(msg);
  return r.status;
}

Status JetStreamClient::Drain(int64_t timeout_ms) {
  nats_detail::Shared& sh = *impl_->shared;
  std::unique_lock<std::mutex> lock(sh.mu);
  bool empty = sh.cv.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(0, timeout_ms)),
                              [&] { return sh.inflight.empty() && sh.completing == 0; });
  if (empty) return Status::Ok();
  return Status::Connection(std::to_string(sh.inflight.size() + sh.completing) +
                            " JetStream publishes still unacknowledged after " + std::to_string(timeout_ms) + " ms");
}

size_t JetStreamClient::InFlightPublishes() const {
  std::lock_guard<std::mutex> lock(impl_->shared->mu);
  return impl_->shared->inflight.size() + impl_->shared->completing;
}

}  // namespace nomnom
