// JetStreamClient topology (EnsureTopology: create or verify the streams and
// the consumer) and the stream/consumer stats.
#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/queue/nats_client.h"
#include "core/queue/nats_client_impl.h"

namespace nomnom {
namespace nats_detail {

std::string ApiFailure(natsStatus s, jsErrCode code, const std::string& what) {
  std::string text = NatsErrorText(s, what, nullptr, code);
  if (s == NATS_NO_RESPONDERS) text += " (is JetStream enabled on the server? nats-server -js)";
  return text;
}

}  // namespace nats_detail

using nats_detail::ApiFailure;
using nats_detail::NatsStatusCode;

namespace {

constexpr int64_t kNanosPerMilli = 1000 * 1000;

const char* RetentionName(jsRetentionPolicy p) {
  switch (p) {
    case js_LimitsPolicy:
      return "limits";
    case js_InterestPolicy:
      return "interest";
    case js_WorkQueuePolicy:
      return "workqueue";
  }
  return "unknown";
}
const char* StorageName(jsStorageType t) { return t == js_FileStorage ? "file" : "memory"; }
const char* DiscardName(jsDiscardPolicy p) { return p == js_DiscardOld ? "old" : "new"; }
const char* AckPolicyName(jsAckPolicy p) {
  switch (p) {
    case js_AckExplicit:
      return "explicit";
    case js_AckNone:
      return "none";
    case js_AckAll:
      return "all";
  }
  return "unknown";
}
const char* DeliverPolicyName(jsDeliverPolicy p) {
  switch (p) {
    case js_DeliverAll:
      return "all";
    case js_DeliverLast:
      return "last";
    case js_DeliverNew:
      return "new";
    case js_DeliverByStartSequence:
      return "by_start_sequence";
    case js_DeliverByStartTime:
      return "by_start_time";
    case js_DeliverLastPerSubject:
      return "last_per_subject";
  }
  return "unknown";
}

std::string Millis(int64_t nanos) {
  if (nanos % kNanosPerMilli == 0) return std::to_string(nanos / kNanosPerMilli) + " ms";
  return std::to_string(nanos) + " ns";
}

std::string SubjectList(const char* const* subjects, int n) {
  std::vector<std::string> sorted;
  for (int i = 0; i < n; ++i) sorted.emplace_back(subjects[i] == nullptr ? "" : subjects[i]);
  std::sort(sorted.begin(), sorted.end());
  std::string out = "[";
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0) out += ", ";
    out += "\"" + sorted[i] + "\"";
  }
  return out + "]";
}

// Collects "field: server has X, nomnom wants Y" lines.
class Differences {
 public:
  template <typename T>
  void Check(const char* field, const T& server, const T& wanted) {
    if (server != wanted) Add(field, ToText(server), ToText(wanted));
  }
  void Add(const char* field, const std::string& server, const std::string& wanted) {
    lines_.push_back(std::string(field) + " is " + server + " on the server but " + wanted +
                     " in nomnom's configuration");
  }
  bool empty() const { return lines_.empty(); }
  std::string Join() const {
    std::string out;
    for (size_t i = 0; i < lines_.size(); ++i) out += (i > 0 ? "; " : "") + lines_[i];
    return out;
  }

 private:
  static std::string ToText(const std::string& s) { return "\"" + s + "\""; }
  static std::string ToText(int64_t v) { return std::to_string(v); }
  std::vector<std::string> lines_;
};

struct StreamSpec {
  const std::string* name;
  const std::string* subjects;
  const char* role;  // for messages
  jsRetentionPolicy retention;
  jsDiscardPolicy discard;
};

Status CompareStream(const jsStreamConfig& have, const JetStreamConfig& c, const StreamSpec& spec) {
  Differences d;
  std::string have_subjects = SubjectList(have.Subjects, have.SubjectsLen);
  const char* want[] = {spec.subjects->c_str()};
  std::string want_subjects = SubjectList(want, 1);
  if (have_subjects != want_subjects) d.Add("subjects", have_subjects, want_subjects);
  if (have.Retention != spec.retention)
    d.Add("retention", RetentionName(have.Retention), RetentionName(spec.retention));
  if (have.Storage != js_FileStorage) d.Add("storage", StorageName(have.Storage), "file");
  if (have.Discard != spec.discard) d.Add("discard", DiscardName(have.Discard), DiscardName(spec.discard));
  if (have.MaxAge != c.max_age_ms * kNanosPerMilli) {
    d.Add("max_age", Millis(have.MaxAge), Millis(c.max_age_ms * kNanosPerMilli));
  }
  d.Check<int64_t>("max_bytes", have.MaxBytes, c.max_bytes);
  if (have.Duplicates != c.duplicate_window_ms * kNanosPerMilli) {
    d.Add("duplicate_window", Millis(have.Duplicates), Millis(c.duplicate_window_ms * kNanosPerMilli));
  }
  if (d.empty()) return Status::Ok();
  return Status::SchemaMismatch("JetStream " + std::string(spec.role) + " stream '" + *spec.name +
                                "' already exists with a different definition: " + d.Join() +
                                ". nomnom never changes an existing stream: edit or delete it (nats stream "
                                "edit/rm) or change nomnom's configuration");
}

Status EnsureStream(JetStreamClient::Impl& im, const StreamSpec& spec) {
  const JetStreamConfig& c = im.config;
  jsOptions jo = im.ApiOptions();
  constexpr int kAttempts = 4;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    jsStreamInfo* si = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, im.js, spec.name->c_str(), &jo, &code);
    if (s == NATS_OK) {
      Status st = CompareStream(*si->Config, c, spec);
      // The replica count of an existing stream is used as it is (it may have
      // been scaled on purpose, e.g. with `nats stream edit --replicas`).
      if (st.ok() && si->Config->Replicas != std::max(1, c.replicas) && c.on_connection_event) {
        c.on_connection_event("JetStream " + std::string(spec.role) + " stream '" + *spec.name + "' has " +
                              std::to_string(si->Config->Replicas) + " replica(s), not the " +
                              std::to_string(std::max(1, c.replicas)) + " configured: using it as it is");
      }
      jsStreamInfo_Destroy(si);
      return st;
    }
    if (s != NATS_NOT_FOUND) {
      return Status(NatsStatusCode(s, StatusCode::kInternal),
                    ApiFailure(s, code, "cannot look up JetStream stream '" + *spec.name + "'"));
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {spec.subjects->c_str()};
    cfg.Name = spec.name->c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = spec.retention;
    cfg.Storage = js_FileStorage;
    cfg.Discard = spec.discard;
    cfg.MaxAge = c.max_age_ms * kNanosPerMilli;
    cfg.MaxBytes = c.max_bytes;
    cfg.Duplicates = c.duplicate_window_ms * kNanosPerMilli;
    cfg.Replicas = std::max(1, c.replicas);
    code = static_cast<jsErrCode>(0);
    s = js_AddStream(nullptr, im.js, &cfg, &jo, &code);
    if (s == NATS_OK) return Status::Ok();
    // Another nomnom may have created it meanwhile: verify that one instead.
    if (code == JSStreamNameExistErr && attempt + 1 < kAttempts) continue;
    // nats-server 2.9 removes <store>/<account>/streams when its last stream
    // is deleted; a stream created at that moment fails with "error creating
    // store for stream" (10049; the server logs "could not create storage
    // directory"). Transient: retry shortly.
    if (code == JSStreamCreateErr && attempt + 1 < kAttempts) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
      continue;
    }
    return Status(NatsStatusCode(s, StatusCode::kInternal), ApiFailure(s, code,
                                                                       "cannot create JetStream stream '" + *spec.name +
                                                                           "' on subjects '" + *spec.subjects + "'"));
  }
  return Status::Internal("JetStream stream '" + *spec.name + "' neither exists nor can be created");
}

Status CompareConsumer(const jsConsumerConfig& have, const JetStreamConfig& c) {
  Differences d;
  std::string deliver = have.DeliverSubject == nullptr ? "" : have.DeliverSubject;
  if (!deliver.empty()) d.Add("type", "push (deliver subject \"" + deliver + "\")", "pull");
  if (have.AckPolicy != js_AckExplicit) d.Add("ack_policy", AckPolicyName(have.AckPolicy), "explicit");
  if (have.DeliverPolicy != js_DeliverAll) d.Add("deliver_policy", DeliverPolicyName(have.DeliverPolicy), "all");
  d.Check<std::string>("filter_subject", have.FilterSubject == nullptr ? "" : have.FilterSubject, c.filter_subject);
  if (have.AckWait != c.ack_wait_ms * kNanosPerMilli) {
    d.Add("ack_wait", Millis(have.AckWait), Millis(c.ack_wait_ms * kNanosPerMilli));
  }
  // Anything but unlimited could silently strand messages (see nats_client.h).
  if (have.MaxDeliver > 0) d.Add("max_deliver", std::to_string(have.MaxDeliver), "-1 (unlimited)");
  d.Check<int64_t>("max_ack_pending", have.MaxAckPending, c.max_ack_pending);
  if (d.empty()) return Status::Ok();
  return Status::SchemaMismatch("JetStream consumer '" + c.consumer + "' on stream '" + c.stream +
                                "' already exists with a different definition: " + d.Join() +
                                ". nomnom never changes an existing consumer: delete it (nats consumer rm) "
                                "or change nomnom's configuration");
}

Status EnsureConsumer(JetStreamClient::Impl& im) {
  const JetStreamConfig& c = im.config;
  jsOptions jo = im.ApiOptions();
  for (int attempt = 0; attempt < 2; ++attempt) {
    jsConsumerInfo* ci = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_GetConsumerInfo(&ci, im.js, c.stream.c_str(), c.consumer.c_str(), &jo, &code);
    if (s == NATS_OK) {
      Status st = CompareConsumer(*ci->Config, c);
      jsConsumerInfo_Destroy(ci);
      return st;
    }
    if (s != NATS_NOT_FOUND) {
      return Status(
          NatsStatusCode(s, StatusCode::kInternal),
          ApiFailure(s, code, "cannot look up JetStream consumer '" + c.consumer + "' on stream '" + c.stream + "'"));
    }
    jsConsumerConfig cfg;
    jsConsumerConfig_Init(&cfg);
    cfg.Durable = c.consumer.c_str();
    cfg.AckPolicy = js_AckExplicit;
    cfg.DeliverPolicy = js_DeliverAll;
    cfg.FilterSubject = c.filter_subject.c_str();
    cfg.AckWait = c.ack_wait_ms * kNanosPerMilli;
    cfg.MaxDeliver = -1;
    cfg.MaxAckPending = c.max_ack_pending;
    code = static_cast<jsErrCode>(0);
    s = js_AddConsumer(nullptr, im.js, c.stream.c_str(), &cfg, &jo, &code);
    if (s == NATS_OK) return Status::Ok();
    if (attempt == 0 && (code == JSConsumerNameExistErr || code == JSConsumerExistingActiveErr)) continue;
    return Status(
        NatsStatusCode(s, StatusCode::kInternal),
        ApiFailure(s, code, "cannot create JetStream consumer '" + c.consumer + "' on stream '" + c.stream + "'"));
  }
  return Status::Internal("JetStream consumer '" + c.consumer + "' neither exists nor can be created");
}

}  // namespace

Status JetStreamClient::EnsureTopology() {
  Impl& im = *impl_;
  // The main stream is a work queue that refuses new messages when full: a
  // chunk leaves it only when a worker acknowledged it (after its commit), and
  // a full stream makes the API answer 503 instead of dropping a chunk to make
  // room. (nats-server 2.9 still drops the oldest message for a record that
  // passes its payload check but does not fit: publishers check the free
  // space themselves first, core/queue/stream_space.h.) Dead letters are an
  // archive: limits retention, the oldest go first (the table keeps them all).
  Status st =
      EnsureStream(im, {&im.config.stream, &im.config.stream_subjects, "main", js_WorkQueuePolicy, js_DiscardNew});
  if (st.ok()) {
    st = EnsureStream(im,
                      {&im.config.dlq_stream, &im.config.dlq_subjects, "dead-letter", js_LimitsPolicy, js_DiscardOld});
  }
  if (st.ok()) st = EnsureConsumer(im);
  return st;
}

Result<std::optional<std::string>> JetStreamClient::StoredHeader(uint64_t stream_seq, const std::string& name) {
  jsOptions jo = impl_->ApiOptions();
  natsMsg* msg = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&msg, impl_->js, impl_->config.stream.c_str(), stream_seq, &jo, &code);
  if (s == NATS_NOT_FOUND || code == JSNoMessageFoundErr) {
    natsMsg_Destroy(msg);
    return std::optional<std::string>();  // gone (acknowledged by a worker, or expired)
  }
  if (s != NATS_OK) {
    natsMsg_Destroy(msg);
    return Status::Connection(nats_detail::NatsErrorText(
        s, "reading message " + std::to_string(stream_seq) + " of stream " + impl_->config.stream, "", code));
  }
  const char* value = nullptr;
  std::optional<std::string> out;
  if (natsMsgHeader_Get(msg, name.c_str(), &value) == NATS_OK && value != nullptr) out = std::string(value);
  natsMsg_Destroy(msg);
  return out;
}

int64_t JetStreamClient::MaxPayload() const {
  return impl_->nc != nullptr ? natsConnection_GetMaxPayload(impl_->nc) : 0;
}

bool JetStreamClient::IsConnected() const {
  return impl_->nc != nullptr && natsConnection_Status(impl_->nc) == NATS_CONN_STATUS_CONNECTED;
}

bool JetStreamClient::StreamExists() {
  jsOptions jo = impl_->ApiOptions();
  jsStreamInfo* si = nullptr;
  natsStatus s = js_GetStreamInfo(&si, impl_->js, impl_->config.stream.c_str(), &jo, nullptr);
  jsStreamInfo_Destroy(si);
  return s == NATS_OK;
}

Result<ConsumerLag> JetStreamClient::Lag() {
  const JetStreamConfig& c = impl_->config;
  jsOptions jo = impl_->ApiOptions();
  jsConsumerInfo* ci = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&ci, impl_->js, c.stream.c_str(), c.consumer.c_str(), &jo, &code);
  if (s != NATS_OK) {
    return Status(
        NatsStatusCode(s, s == NATS_NOT_FOUND ? StatusCode::kNotFound : StatusCode::kInternal),
        ApiFailure(s, code, "cannot read JetStream consumer '" + c.consumer + "' on stream '" + c.stream + "'"));
  }
  ConsumerLag lag;
  lag.num_pending = ci->NumPending;
  lag.num_ack_pending = static_cast<uint64_t>(std::max<int64_t>(0, ci->NumAckPending));
  lag.num_redelivered = static_cast<uint64_t>(std::max<int64_t>(0, ci->NumRedelivered));
  jsConsumerInfo_Destroy(ci);
  return lag;
}

Result<StreamStats> JetStreamClient::MainStreamStats() {
  const JetStreamConfig& c = impl_->config;
  jsOptions jo = impl_->ApiOptions();
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, impl_->js, c.stream.c_str(), &jo, &code);
  if (s != NATS_OK) {
    return Status(NatsStatusCode(s, s == NATS_NOT_FOUND ? StatusCode::kNotFound : StatusCode::kInternal),
                  ApiFailure(s, code, "cannot read JetStream stream '" + c.stream + "'"));
  }
  StreamStats st;
  st.messages = si->State.Msgs;
  st.bytes = si->State.Bytes;
  st.first_seq = si->State.FirstSeq;
  st.last_seq = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return st;
}

}  // namespace nomnom
