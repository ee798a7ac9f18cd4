// JetStreamClient: one NATS connection + JetStream context (cnats / nats.c 3.4),
// the topology nomnom needs (main stream, dead-letter stream, durable pull
// consumer), bounded asynchronous publishing and pull fetching.
//
// Topology (one definition, JetStreamConfig):
//   * main stream `stream` on `stream_subjects`: file storage, work-queue
//     retention (a message leaves the stream when the consumer acks it),
//     discard new (a full stream refuses publishes rather than dropping
//     unconsumed messages), max_age, max_bytes, Nats-Msg-Id duplicate window.
//     The daemon publishes chunks to `<subject_prefix>.<entity>`.
//   * dead-letter stream `dlq_stream` on `dlq_subjects` (must not overlap the
//     main stream's subjects), same limits; dead letters go to
//     `<dlq_subject_prefix>.<entity>`.
//   * durable pull consumer `consumer` on the main stream: AckExplicit,
//     DeliverAll, `filter_subject`, ack_wait, max_ack_pending and
//     MaxDeliver = -1 (unlimited).
//
// Why MaxDeliver is unlimited on the server: once JetStream has delivered a
// message MaxDeliver times it silently stops redelivering it (the message
// stays in the stream, counted nowhere as pending). If a worker died while
// holding the last allowed delivery, that message would never reach
// PostgreSQL nor the dead-letter stream. So nomnom enforces `max_deliver`
// itself: a worker that fetches a message whose NumDelivered() exceeds
// max_deliver commits it alone and, only if that fails for its content,
// records and publishes it as a dead letter and only then Term()s it (see
// ingest_worker.h). A crash at any point leaves the message redeliverable.
//
// EnsureTopology() creates what is missing and verifies what exists; it never
// changes an existing stream or consumer (a conflict is an error naming the
// field and both values).
//
// Threads: every method may be called from any thread. PublishAsync callbacks
// run on a cnats thread and must be quick and must not throw; they must not
// call PublishAsync/Publish/Drain (that would block the thread that delivers
// acknowledgements). Fetch may be called concurrently: each concurrent call
// uses its own pull subscription (cnats allows one fetch at a time per
// subscription). FetchedMessages must be destroyed before their client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"

struct __natsMsg;  // cnats' natsMsg (nats/nats.h), kept out of this header

namespace nomnom {

struct JetStreamConfig {
  std::string url = "nats://127.0.0.1:4222";  // comma-separated list allowed
  std::string connection_name = "nomnom";
  std::string stream = "MESSAGES";                 // main stream
  std::string stream_subjects = "messages.>";      // one subject (wildcards allowed)
  std::string subject_prefix = "messages.ingest";  // chunks go to <prefix>.<entity>
  std::string consumer = "workers";                // durable pull consumer
  std::string filter_subject = "messages.ingest.>";
  int64_t max_age_ms = 24LL * 3600 * 1000;  // stream limits (seed: 24h, 1 GB), file storage
  int64_t max_bytes = 1LL << 30;
  int64_t duplicate_window_ms = 2 * 60 * 1000;  // Nats-Msg-Id dedup window
  int replicas = 1;  // of new streams (a JetStream cluster: 3); an existing stream's count is kept
  std::string dlq_stream = "MESSAGES_DLQ";  // dead letters; subjects must not overlap the main stream
  std::string dlq_subjects = "dlq.>";
  std::string dlq_subject_prefix = "dlq";
  int max_deliver = 3;  // enforced by nomnom, not JetStream (see above)
  int64_t ack_wait_ms = 30000;
  int max_ack_pending = 20000;
  int max_inflight_publishes = 256;   // bounded async publishes
  int64_t publish_timeout_ms = 5000;  // a publish not acknowledged by then fails (timeout)
  int64_t api_timeout_ms = 5000;      // stream/consumer requests and synchronous acks
  int64_t reconnect_wait_ms = 1000;   // between reconnect attempts (forever)
  // Written to the socket by the publishing (or acknowledging) thread itself
  // (cnats's SendAsap). Off, cnats buffers what is written and wakes its
  // flusher thread to send it: for a chunk larger than its buffer, what is
  // left after the bulk went out directly (its trailing CRLF at least), so a
  // thread hand-off per chunk. On: fewer context switches and less idle time
  // on a busy API (bench/README.md §5).
  bool send_asap = true;
  // Optional: told (from a cnats thread) when the connection is lost,
  // re-established or closed, and of asynchronous errors. Must be quick.
  std::function<void(const std::string&)> on_connection_event;
};

struct OutgoingMessage {
  std::string subject;
  std::string msg_id;  // Nats-Msg-Id (deduplication within the window); empty: none
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct PublishResult {
  Status status;           // OK, or why the message is not (known to be) stored
  bool duplicate = false;  // JetStream already had a message with this msg_id
  uint64_t stream_seq = 0;
};

// From the durable consumer's info. num_ack_pending counts messages delivered
// and not yet acknowledged (including nak'ed ones waiting to be redelivered);
// num_redelivered counts those of them delivered more than once, so it is a
// subset of num_ack_pending, not an addition to it.
struct ConsumerLag {
  uint64_t num_pending = 0;                                           // matching messages not yet delivered
  uint64_t num_ack_pending = 0;                                       // delivered, not yet acknowledged
  uint64_t num_redelivered = 0;                                       // of those, delivered more than once
  uint64_t Backlog() const { return num_pending + num_ack_pending; }  // work not yet done
};

struct StreamStats {
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
};

// A message fetched from the durable consumer (RAII over the natsMsg). Not
// thread-safe; must not outlive the JetStreamClient that fetched it.
class FetchedMessage {
 public:
  ~FetchedMessage();
  FetchedMessage(const FetchedMessage&) = delete;
  FetchedMessage& operator=(const FetchedMessage&) = delete;

  std::string_view subject() const;
  std::string_view body() const;
  // The first value of a header (case-sensitive name), or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
  // From the JetStream metadata in the reply subject (0 when absent).
  uint64_t NumDelivered() const { return num_delivered_; }
  uint64_t StreamSequence() const { return stream_seq_; }
  // When the server stored the message (ns since the epoch; 0 when absent).
  // With the stream name and sequence it names the message uniquely, even
  // across a re-created stream whose sequences start at 1 again.
  int64_t StoredAtNs() const { return stored_ns_; }

  // Synchronous ack: returns once JetStream confirmed it recorded the ack.
  Status Ack();
  // Sends the ack without waiting for JetStream's confirmation. Acks travel in
  // order on the connection, so a later synchronous Ack() confirms this one too.
  Status AckNoWait();
  // Asks for redelivery, after delay_ms when > 0 (fire-and-forget).
  Status Nak(int64_t delay_ms = 0);
  // Resets the ack deadline (ack_wait) while a slow transaction runs. Like
  // every method here, not to be called concurrently with another call on the
  // same message (cnats keeps the acked flag unlocked in the natsMsg).
  Status InProgress();
  // Tells JetStream never to redeliver this message.
  Status Term();

 private:
  friend class JetStreamClient;
  FetchedMessage(__natsMsg* msg, int64_t api_timeout_ms);
  Status Check(int status, std::string_view action) const;

  __natsMsg* msg_;
  int64_t api_timeout_ms_;
  uint64_t num_delivered_ = 0;
  uint64_t stream_seq_ = 0;
  int64_t stored_ns_ = 0;
};

class JetStreamClient {
 public:
  // Connects (the initial attempt fails fast with an error naming the URL);
  // afterwards reconnects forever in the background. Validates the config.
  static Result<std::unique_ptr<JetStreamClient>> Connect(const JetStreamConfig& config);
  // Closes the connection, fails the callbacks of publishes still in flight
  // (kAborted) and waits for callbacks running on cnats threads to return.
  // Call Drain() first to let in-flight publishes complete.
  ~JetStreamClient();
  JetStreamClient(const JetStreamClient&) = delete;
  JetStreamClient& operator=(const JetStreamClient&) = delete;

  // Checks a configuration without a server: names, positive limits, main and
  // DLQ subjects disjoint, filter_subject inside stream_subjects, and the
  // publish prefixes inside their stream/filter subjects.
  static Status ValidateConfig(const JetStreamConfig& config);
  // NATS subject matching ('*' one token, '>' one or more trailing tokens).
  // True when some subject matches both patterns.
  static bool SubjectsOverlap(std::string_view a, std::string_view b);
  // True when every subject matching `inner` also matches `outer`.
  static bool SubjectContains(std::string_view outer, std::string_view inner);
  // True when `token` can stand between two dots of a subject: non-empty, no
  // '.', '*', '>', whitespace or control characters. An entity name is one
  // (EntitySubject): anything else makes nats-server refuse the publish, or
  // drop the connection every publisher of the process shares.
  static bool ValidSubjectToken(std::string_view token);

  const JetStreamConfig& config() const;
  std::string EntitySubject(std::string_view entity) const;      // <subject_prefix>.<entity>
  std::string DeadLetterSubject(std::string_view entity) const;  // <dlq_subject_prefix>.<entity>

  // Creates the main stream, the DLQ stream and the durable consumer when
  // missing, or verifies existing ones against the config: kSchemaMismatch
  // naming each differing field with both values. Never modifies them.
  Status EnsureTopology();

  bool IsConnected() const;
  // The server's max_payload (largest message, headers included, in bytes) as
  // announced when connecting; 0 when not connected.
  int64_t MaxPayload() const;
  // Header `name` of the message stored at stream_seq in the main stream, or
  // nullopt when the message is gone or has no such header. Blocks (one
  // JetStream API request): not for publish callbacks.
  Result<std::optional<std::string>> StoredHeader(uint64_t stream_seq, const std::string& name);
  bool StreamExists();  // the main stream (for /ready); false on any error
  Result<ConsumerLag> Lag();
  Result<StreamStats> MainStreamStats();

  // Asynchronous publish. Blocks the caller while max_inflight_publishes
  // publishes are incomplete (unacknowledged, or their callback still running). `done` is called exactly once: normally
  // from a cnats thread with OK (+ duplicate, stream_seq) or the error (kConnection for a timeout, lost connection or
  // full reconnect buffer; kNotFound when no stream stores the subject; kInternal when JetStream rejected it); when the
  // message cannot even be handed to cnats (closed connection, invalid
  // message) it is called on the caller's thread before PublishAsync returns.
  void PublishAsync(OutgoingMessage msg, std::function<void(const PublishResult&)> done);
  // Synchronous publish (dead letters). `result` may be null.
  Status Publish(const OutgoingMessage& msg, PublishResult* result = nullptr);
  // Waits until every publish has completed (its callback returned);
  // kConnection if some remain after timeout_ms.
  Status Drain(int64_t timeout_ms);
  // Publishes whose callback has not returned yet.
  size_t InFlightPublishes() const;

  // Pulls up to max_messages (and up to max_bytes when > 0) from the durable
  // consumer, waiting up to expires_ms. An empty vector when nothing arrived
  // in time (not an error). Returns early with fewer messages when the
  // consumer has no more right now.
  Result<std::vector<std::unique_ptr<FetchedMessage>>> Fetch(int max_messages, int64_t max_bytes, int64_t expires_ms);

  struct Impl;  // internal (core/queue/nats_client_impl.h)

 private:
  explicit JetStreamClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nomnom
