// JetStreamClient: connection, lifetime, configuration checks. Topology and
// stats are in nats_topology.cpp, publishing in nats_publisher.cpp, fetching
// in nats_consumer.cpp.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/queue/nats_client.h"
#include "core/queue/nats_client_impl.h"

namespace nomnom {
namespace nats_detail {
namespace {

// Never destroyed: cnats threads may still run callbacks during static
// destruction at exit.
std::mutex g_registry_mu;
std::unordered_map<uint64_t, std::shared_ptr<Shared>>& Registry() {
  static auto* registry = new std::unordered_map<uint64_t, std::shared_ptr<Shared>>();
  return *registry;
}
std::atomic<uint64_t> g_next_id{1};

}  // namespace

uint64_t RegisterShared(std::shared_ptr<Shared> shared) {
  uint64_t id = g_next_id.fetch_add(1);
  std::lock_guard<std::mutex> lock(g_registry_mu);
  Registry().emplace(id, std::move(shared));
  return id;
}

std::shared_ptr<Shared> FindShared(void* closure) {
  auto id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(closure));
  std::lock_guard<std::mutex> lock(g_registry_mu);
  auto it = Registry().find(id);
  return it == Registry().end() ? nullptr : it->second;
}

void UnregisterShared(uint64_t id) {
  std::shared_ptr<Shared> keep;  // destroyed outside the registry lock
  std::lock_guard<std::mutex> lock(g_registry_mu);
  auto it = Registry().find(id);
  if (it != Registry().end()) {
    keep = std::move(it->second);
    Registry().erase(it);
  }
}

void* ClosureFor(uint64_t id) { return reinterpret_cast<void*>(static_cast<uintptr_t>(id)); }

std::string NatsErrorText(natsStatus s, std::string_view what, const char* detail, jsErrCode code) {
  std::string out(what);
  out += ": ";
  out += natsStatus_GetText(s);
  if (detail == nullptr) {
    natsStatus last = NATS_OK;
    detail = nats_GetLastError(&last);
  }
  if (detail != nullptr && *detail != '\0' && std::string_view(detail) != natsStatus_GetText(s)) {
    out += ": ";
    out += detail;
  }
  if (static_cast<int>(code) != 0) out += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  return out;
}

StatusCode NatsStatusCode(natsStatus s, StatusCode otherwise) {
  switch (s) {
    case NATS_IO_ERROR:
    case NATS_CONNECTION_CLOSED:
    case NATS_NO_SERVER:
    case NATS_STALE_CONNECTION:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_SECURE_CONNECTION_WANTED:
    case NATS_SECURE_CONNECTION_REQUIRED:
    case NATS_SSL_ERROR:
    case NATS_TIMEOUT:
    case NATS_NOT_YET_CONNECTED:
    case NATS_DRAINING:
      return StatusCode::kConnection;
    default:
      return otherwise;
  }
}

std::string RedactUrl(std::string_view url) {
  // nats://user:password@host:port[,nats://...]: hide each password.
  std::string out;
  size_t start = 0;
  while (start <= url.size()) {
    size_t end = url.find(',', start);
    if (end == std::string_view::npos) end = url.size();
    std::string_view one = url.substr(start, end - start);
    size_t scheme = one.find("://");
    size_t auth_start = scheme == std::string_view::npos ? 0 : scheme + 3;
    size_t at = one.find('@', auth_start);
    size_t colon = one.find(':', auth_start);
    if (!out.empty() || start > 0) out += ',';
    if (at != std::string_view::npos && colon != std::string_view::npos && colon < at) {
      out += one.substr(0, colon + 1);
      out += "***";
      out += one.substr(at);
    } else {
      out += one;
    }
    start = end + 1;
  }
  return out;
}

}  // namespace nats_detail

using nats_detail::NatsErrorText;
using nats_detail::NatsStatusCode;
using nats_detail::RedactUrl;

namespace {

std::vector<std::string_view> Tokens(std::string_view subject) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t dot = subject.find('.', start);
    if (dot == std::string_view::npos) {
      out.push_back(subject.substr(start));
      return out;
    }
    out.push_back(subject.substr(start, dot - start));
    start = dot + 1;
  }
}

// A subject filter: non-empty tokens, no whitespace, '>' only last, wildcards whole tokens.
bool ValidSubject(std::string_view subject, bool allow_wildcards) {
  if (subject.empty()) return false;
  auto tokens = Tokens(subject);
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string_view t = tokens[i];
    if (t.empty()) return false;
    for (char c : t) {
      if (std::isspace(static_cast<unsigned char>(c))) return false;
    }
    bool wild = t == "*" || t == ">";
    if (wild && !allow_wildcards) return false;
    if (t == ">" && i + 1 != tokens.size()) return false;
    if (!wild && (t.find('*') != std::string_view::npos || t.find('>') != std::string_view::npos)) {
      return false;
    }
  }
  return true;
}

// Stream and consumer names: no '.', '*', '>', whitespace or path separators.
bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' || std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

// "a, nats://b:4222,c" -> {"nats://a", "nats://b:4222", "nats://c"}.
std::vector<std::string> SplitServerList(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view one = list.substr(start, end - start);
    while (!one.empty() && std::isspace(static_cast<unsigned char>(one.front()))) one.remove_prefix(1);
    while (!one.empty() && std::isspace(static_cast<unsigned char>(one.back()))) one.remove_suffix(1);
    if (!one.empty())
      out.push_back(one.find("://") == std::string_view::npos ? "nats://" + std::string(one) : std::string(one));
    start = end + 1;
  }
  return out;
}

void ConnectionEvent(natsConnection* nc, void* closure, const char* what) {
  auto shared = nats_detail::FindShared(closure);
  if (shared == nullptr || !shared->on_event) return;
  char url[256] = {0};
  std::string text = what;
  if (nc != nullptr && natsConnection_GetConnectedUrl(nc, url, sizeof url) == NATS_OK && url[0] != '\0') {
    text += std::string(" (") + RedactUrl(url) + ")";
  }
  shared->on_event(text);
}

void OnDisconnected(natsConnection* nc, void* closure) {
  auto shared = nats_detail::FindShared(closure);
  if (shared == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    if (shared->closing) return;  // closed on purpose by ~JetStreamClient
  }
  ConnectionEvent(nc, closure, "NATS connection lost; reconnecting");
}
void OnReconnected(natsConnection* nc, void* closure) { ConnectionEvent(nc, closure, "NATS reconnected"); }
void OnClosed(natsConnection* nc, void* closure) {
  auto shared = nats_detail::FindShared(closure);
  if (shared == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    if (shared->closing) return;  // closed on purpose by ~JetStreamClient
  }
  ConnectionEvent(nc, closure, "NATS connection closed");
}
void OnAsyncError(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure) {
  (void)sub;
  ConnectionEvent(nc, closure, (std::string("NATS asynchronous error: ") + natsStatus_GetText(err)).c_str());
}

}  // namespace

jsOptions JetStreamClient::Impl::ApiOptions() const {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = config.api_timeout_ms;
  return o;
}

JetStreamClient::JetStreamClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<JetStreamClient>> JetStreamClient::Connect(const JetStreamConfig& config) {
  Status valid = ValidateConfig(config);
  if (!valid.ok()) return valid;

  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->shared = std::make_shared<nats_detail::Shared>();
  impl->shared->max_inflight = static_cast<size_t>(config.max_inflight_publishes);
  impl->shared->publish_timeout_ms = config.publish_timeout_ms;
  impl->shared->on_event = config.on_connection_event;
  impl->shared_id = nats_detail::RegisterShared(impl->shared);
  // From here the destructor releases everything (registry entry included).
  std::unique_ptr<JetStreamClient> client(new JetStreamClient(std::move(impl)));
  Impl& im = *client->impl_;
  const std::string url = RedactUrl(config.url);
  void* closure = nats_detail::ClosureFor(im.shared_id);

  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  // A comma-separated list (the NATS CLI's convention) is the server pool:
  // the first reachable one is used, the others are reconnect targets.
  const std::vector<std::string> servers = SplitServerList(config.url);
  std::vector<const char*> server_ptrs;
  for (const auto& one : servers) server_ptrs.push_back(one.c_str());
  if (s == NATS_OK) s = natsOptions_SetServers(opts, server_ptrs.data(), static_cast<int>(server_ptrs.size()));
  if (s == NATS_OK) s = natsOptions_SetName(opts, config.connection_name.c_str());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, config.reconnect_wait_ms);
  // Requests in flight (management, sync publish, AckSync) fail at once on a
  // disconnect instead of waiting for their timeout.
  if (s == NATS_OK) s = natsOptions_SetFailRequestsOnDisconnect(opts, true);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, OnDisconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, OnReconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, OnClosed, closure);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, OnAsyncError, closure);
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, config.send_asap);
  if (s != NATS_OK) {
    std::string text = NatsErrorText(s, "invalid NATS options for " + url);
    natsOptions_Destroy(opts);
    return Status::InvalidArgument(text);
  }
  s = natsConnection_Connect(&im.nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    im.nc = nullptr;
    return Status::Connection(NatsErrorText(s, "cannot connect to NATS at " + url) +
                              " (is nats-server running there with JetStream enabled, -js?)");
  }

  jsOptions jo = im.ApiOptions();
  jo.PublishAsync.AckHandler = nats_detail::OnPublishAck;
  jo.PublishAsync.AckHandlerClosure = closure;
  jo.PublishAsync.MaxPending = 0;  // bounded by Shared::max_inflight instead
  s = natsConnection_JetStream(&im.js, im.nc, &jo);
  if (s != NATS_OK) {
    im.js = nullptr;
    return Status::Internal(NatsErrorText(s, "cannot create a JetStream context on " + url));
  }
  return client;
}

JetStreamClient::~JetStreamClient() {
  if (!impl_) return;
  Impl& im = *impl_;
  {
    std::lock_guard<std::mutex> lock(im.shared->mu);
    im.shared->closing = true;
  }
  im.shared->cv.notify_all();
  {
    std::lock_guard<std::mutex> lock(im.subs_mu);
    for (natsSubscription* sub : im.all_subs) natsSubscription_Destroy(sub);
    im.all_subs.clear();
    im.idle_subs.clear();
  }
  // jsCtx_Destroy frees the messages cnats still holds without calling the ack
  // handler; a handler already running finds its entry (or not) under the lock.
  if (im.js != nullptr) jsCtx_Destroy(im.js);
  if (im.nc != nullptr) natsConnection_Destroy(im.nc);
  nats_detail::UnregisterShared(im.shared_id);

  std::unordered_map<natsMsg*, nats_detail::PendingPublish> left;
  {
    std::lock_guard<std::mutex> lock(im.shared->mu);
    left.swap(im.shared->inflight);
  }
  im.shared->cv.notify_all();
  for (auto& [msg, pending] : left) {
    PublishResult r;
    r.status =
        Status::Aborted("JetStream client closed before the publish to '" + pending.subject + "' was acknowledged");
    if (pending.done) pending.done(r);
  }
  // Callbacks already running on cnats threads may use what the caller frees
  // after this destructor: wait for them (no new ones can start now).
  std::unique_lock<std::mutex> lock(im.shared->mu);
  im.shared->cv.wait(lock, [&] { return im.shared->completing == 0; });
}

const JetStreamConfig& JetStreamClient::config() const { return impl_->config; }

std::string JetStreamClient::EntitySubject(std::string_view entity) const {
  return impl_->config.subject_prefix + "." + std::string(entity);
}

std::string JetStreamClient::DeadLetterSubject(std::string_view entity) const {
  return impl_->config.dlq_subject_prefix + "." + std::string(entity);
}

bool JetStreamClient::SubjectsOverlap(std::string_view a, std::string_view b) {
  auto ta = Tokens(a), tb = Tokens(b);
  for (size_t i = 0;; ++i) {
    if (i == ta.size() && i == tb.size()) return true;
    if (i == ta.size() || i == tb.size()) return false;
    if (ta[i] == ">" || tb[i] == ">") return true;  // both still have a token here
    if (ta[i] == "*" || tb[i] == "*" || ta[i] == tb[i]) continue;
    return false;
  }
}

bool JetStreamClient::SubjectContains(std::string_view outer, std::string_view inner) {
  auto to = Tokens(outer), ti = Tokens(inner);
  for (size_t i = 0;; ++i) {
    if (i == to.size() && i == ti.size()) return true;
    if (i == to.size() || i == ti.size()) return false;
    if (to[i] == ">") return true;
    if (ti[i] == ">") return false;  // outer is '*' or a literal: narrower
    if (to[i] == "*") continue;
    if (ti[i] == "*" || ti[i] != to[i]) return false;
  }
}

bool JetStreamClient::ValidSubjectToken(std::string_view token) {
  if (token.empty()) return false;
  for (char c : token) {
    if (c == '.' || c == '*' || c == '>' || std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

Status JetStreamClient::ValidateConfig(const JetStreamConfig& c) {
  auto bad = [](const std::string& m) { return Status::InvalidArgument("JetStream configuration: " + m); };
  if (SplitServerList(c.url).empty()) return bad("the NATS URL is empty");
  for (const auto* n : {&c.stream, &c.dlq_stream, &c.consumer}) {
    if (!ValidName(*n)) {
      return bad("'" + *n +
                 "' is not a valid stream/consumer name (non-empty, no '.', '*', '>', "
                 "'/', '\\' or whitespace)");
    }
  }
  if (c.stream == c.dlq_stream) return bad("the main and dead-letter streams are both named '" + c.stream + "'");
  for (const auto* s : {&c.stream_subjects, &c.filter_subject, &c.dlq_subjects}) {
    if (!ValidSubject(*s, true)) return bad("'" + *s + "' is not a valid subject");
  }
  for (const auto* s : {&c.subject_prefix, &c.dlq_subject_prefix}) {
    if (!ValidSubject(*s, false)) return bad("'" + *s + "' is not a valid subject prefix (no wildcards)");
  }
  if (SubjectsOverlap(c.stream_subjects, c.dlq_subjects)) {
    return bad("the dead-letter subjects '" + c.dlq_subjects + "' overlap the main stream's subjects '" +
               c.stream_subjects + "'; a dead letter would be stored in both streams");
  }
  if (!SubjectContains(c.stream_subjects, c.filter_subject)) {
    return bad("the consumer's filter subject '" + c.filter_subject + "' is not inside the stream's subjects '" +
               c.stream_subjects + "'");
  }
  if (!SubjectContains(c.filter_subject, c.subject_prefix + ".x")) {
    return bad("messages published to '" + c.subject_prefix +
               ".<entity>' would not match the consumer's "
               "filter subject '" +
               c.filter_subject + "'");
  }
  if (!SubjectContains(c.dlq_subjects, c.dlq_subject_prefix + ".x")) {
    return bad("dead letters published to '" + c.dlq_subject_prefix +
               ".<entity>' would not be stored: "
               "outside the dead-letter subjects '" +
               c.dlq_subjects + "'");
  }
  if (c.max_age_ms <= 0) return bad("max_age_ms must be positive");
  if (c.max_bytes <= 0) return bad("max_bytes must be positive");
  if (c.duplicate_window_ms <= 0) return bad("duplicate_window_ms must be positive");
  if (c.duplicate_window_ms > c.max_age_ms) return bad("duplicate_window_ms must not exceed max_age_ms");
  if (c.max_deliver < 1) return bad("max_deliver must be at least 1");
  if (c.ack_wait_ms <= 0) return bad("ack_wait_ms must be positive");
  if (c.max_ack_pending <= 0) return bad("max_ack_pending must be positive");
  if (c.max_inflight_publishes <= 0) return bad("max_inflight_publishes must be positive");
  if (c.publish_timeout_ms <= 0) return bad("publish_timeout_ms must be positive");
  if (c.api_timeout_ms <= 0) return bad("api_timeout_ms must be positive");
  if (c.reconnect_wait_ms < 0) return bad("reconnect_wait_ms must not be negative");
  return Status::Ok();
}

}  // namespace nomnom
