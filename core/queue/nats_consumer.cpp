// JetStreamClient fetching from the durable pull consumer, and FetchedMessage.
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "core/queue/nats_client.h"
#include "core/queue/nats_client_impl.h"

namespace nomnom {

using nats_detail::NatsErrorText;
using nats_detail::NatsStatusCode;

namespace {

constexpr int64_t kNanosPerMilli = 1000 * 1000;

// One pull request. A no-wait request returns what is available now and ends
// with NATS_NOT_FOUND (404) when that is nothing; a waiting one ends with
// NATS_TIMEOUT when nothing came before it expired.
natsStatus FetchOnce(natsSubscription* sub, int batch, int64_t max_bytes, int64_t expires_ms, bool no_wait,
                     std::vector<natsMsg*>* out) {
  jsFetchRequest req;
  jsFetchRequest_Init(&req);
  req.Batch = batch;
  req.MaxBytes = max_bytes > 0 ? max_bytes : 0;
  req.Expires = expires_ms * kNanosPerMilli;
  req.NoWait = no_wait;
  natsMsgList list;
  std::memset(&list, 0, sizeof list);
  natsStatus s = natsSubscription_FetchRequest(&list, sub, &req);
  for (int i = 0; i < list.Count; ++i) {
    out->push_back(list.Msgs[i]);
    list.Msgs[i] = nullptr;  // the caller's now
  }
  natsMsgList_Destroy(&list);
  return s;
}

}  // namespace

FetchedMessage::FetchedMessage(natsMsg* msg, int64_t api_timeout_ms) : msg_(msg), api_timeout_ms_(api_timeout_ms) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg_) == NATS_OK) {
    num_delivered_ = meta->NumDelivered;
    stream_seq_ = meta->Sequence.Stream;
    stored_ns_ = meta->Timestamp;
    jsMsgMetaData_Destroy(meta);
  }
}

FetchedMessage::~FetchedMessage() { natsMsg_Destroy(msg_); }

std::string_view FetchedMessage::subject() const {
  const char* s = natsMsg_GetSubject(msg_);
  return s == nullptr ? std::string_view() : std::string_view(s);
}

std::string_view FetchedMessage::body() const {
  const char* data = natsMsg_GetData(msg_);
  int len = natsMsg_GetDataLength(msg_);
  if (data == nullptr || len <= 0) return {};
  return std::string_view(data, static_cast<size_t>(len));
}

std::optional<std::string> FetchedMessage::Header(std::string_view name) const {
  std::string key(name);
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg_, key.c_str(), &value) != NATS_OK || value == nullptr) return std::nullopt;
  return std::string(value);
}

Status FetchedMessage::Check(int status, std::string_view action) const {
  auto s = static_cast<natsStatus>(status);
  if (s == NATS_OK) return Status::Ok();
  return Status(NatsStatusCode(s, StatusCode::kInternal),
                NatsErrorText(s, "cannot " + std::string(action) + " JetStream message (stream sequence " +
                                     std::to_string(stream_seq_) + ", subject '" + std::string(subject()) + "')"));
}

Status FetchedMessage::Ack() {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = api_timeout_ms_;
  jsErrCode code = static_cast<jsErrCode>(0);
  return Check(natsMsg_AckSync(msg_, &jo, &code), "acknowledge");
}

Status FetchedMessage::AckNoWait() { return Check(natsMsg_Ack(msg_, nullptr), "acknowledge"); }

Status FetchedMessage::Nak(int64_t delay_ms) {
  natsStatus s = delay_ms > 0 ? natsMsg_NakWithDelay(msg_, delay_ms, nullptr) : natsMsg_Nak(msg_, nullptr);
  return Check(s, "nak");
}

Status FetchedMessage::InProgress() { return Check(natsMsg_InProgress(msg_, nullptr), "mark in progress"); }

Status FetchedMessage::Term() { return Check(natsMsg_Term(msg_, nullptr), "terminate"); }

Result<std::vector<std::unique_ptr<FetchedMessage>>> JetStreamClient::Fetch(int max_messages, int64_t max_bytes,
                                                                            int64_t expires_ms) {
  Impl& im = *impl_;
  const JetStreamConfig& c = im.config;
  if (max_messages <= 0) return Status::InvalidArgument("Fetch: max_messages must be positive");
  if (expires_ms <= 0) return Status::InvalidArgument("Fetch: expires_ms must be positive");

  // cnats refuses concurrent fetches on one subscription ("concurrent fetch
  // request not allowed"), so each concurrent caller takes its own from a pool.
  natsSubscription* sub = nullptr;
  {
    std::lock_guard<std::mutex> lock(im.subs_mu);
    if (!im.idle_subs.empty()) {
      sub = im.idle_subs.back();
      im.idle_subs.pop_back();
    }
  }
  if (sub == nullptr) {
    jsOptions jo = im.ApiOptions();
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = c.stream.c_str();
    so.Consumer = c.consumer.c_str();  // bind: never create or delete the consumer
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_PullSubscribe(&sub, im.js, c.filter_subject.c_str(), c.consumer.c_str(), &jo, &so, &code);
    if (s != NATS_OK) {
      std::string text = NatsErrorText(
          s, "cannot bind to JetStream consumer '" + c.consumer + "' on stream '" + c.stream + "'", nullptr, code);
      if (s == NATS_NOT_FOUND) text += " (EnsureTopology creates it)";
      return Status(NatsStatusCode(s, s == NATS_NOT_FOUND ? StatusCode::kNotFound : StatusCode::kInternal), text);
    }
    std::lock_guard<std::mutex> lock(im.subs_mu);
    im.all_subs.push_back(sub);
  }

  std::vector<natsMsg*> raw;
  // A pull request without no_wait only ends when the batch is full or it
  // expires, so a partial batch would always cost `expires_ms`. With no_wait
  // and expires, nats-server (2.9+) waits up to expires for the first message
  // and ends the request as soon as nothing more is available. Servers that
  // answer such a request with an immediate 404 get a wait for one message
  // then a no-wait request for what followed it.
  natsStatus s = FetchOnce(sub, max_messages, max_bytes, expires_ms, true, &raw);
  if (raw.empty() && s == NATS_NOT_FOUND) {
    s = FetchOnce(sub, 1, max_bytes, expires_ms, false, &raw);
    if (raw.size() == 1 && max_messages > 1) {
      int64_t left = max_bytes > 0 ? std::max<int64_t>(1, max_bytes - natsMsg_GetDataLength(raw[0])) : 0;
      s = FetchOnce(sub, max_messages - 1, left, expires_ms, true, &raw);
    }
  }
  std::vector<std::unique_ptr<FetchedMessage>> out;
  out.reserve(raw.size());
  for (natsMsg* m : raw) out.push_back(std::unique_ptr<FetchedMessage>(new FetchedMessage(m, c.api_timeout_ms)));
  std::string error_text;
  if (s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
    error_text =
        NatsErrorText(s, "cannot fetch from JetStream consumer '" + c.consumer + "' on stream '" + c.stream + "'");
  }
  {
    std::lock_guard<std::mutex> lock(im.subs_mu);
    im.idle_subs.push_back(sub);
  }
  // Messages received before an error are returned (they are the caller's to ack).
  if (error_text.empty() || !out.empty()) return out;
  return Status(NatsStatusCode(s, StatusCode::kInternal), error_text);
}

}  // namespace nomnom
