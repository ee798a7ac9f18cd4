// ChunkPublisher: hands chunk messages to JetStream for nomnomd's handlers.
//
//   * AddRow: a validated /ingest/message row joins its entity's open chunk,
//     which is sealed when it is full (rows or bytes, core/queue/chunk_writer.h) or
//     its linger time is over, so concurrent messages share one publish. A
//     row is an NDJSON line, or a binary COPY tuple for a pgcopy1 chunk
//     (core/format/pgcopy_chunk.h; the chunk then carries the entity's schema);
//   * Publish: a finished chunk message (/ingest/batch) is queued as it is.
//
// One publisher thread takes sealed chunks from the queue and publishes them
// asynchronously (JetStreamClient::PublishAsync, which blocks while too many
// publishes are in flight: back-pressure). Overloaded() is true while more
// than max_queued_bytes wait; handlers then answer 503 instead of queueing.
//
// Callbacks run on a cnats thread (or on the caller's, when publishing cannot
// start), exactly once each, and must be quick and must not throw (an
// exception is caught and logged; the other callbacks still run).
//
// Thread-safety: AddRow, Publish and Overloaded may be called from any
// thread. Start once; Shutdown seals what is open, publishes everything
// queued and stops the thread (it does not wait for acknowledgements: call
// JetStreamClient::Drain). After Shutdown, AddRow and Publish fail their
// callback with kAborted. The JetStreamClient and MetricsRegistry must
// outlive the publisher.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/base/metrics.h"
#include "core/queue/chunk_writer.h"
#include "core/queue/nats_client.h"
#include "core/queue/stream_space.h"

namespace nomnom {

struct ChunkPublisherOptions {
  ChunkLimits limits;                           // before the server's max_payload caps max_bytes
  int linger_ms = 1;                            // how long an open chunk waits for more rows
  size_t max_queued_bytes = size_t{256} << 20;  // beyond this, Overloaded()
  // The main stream's max_bytes (0: unchecked): a chunk whose stored record
  // would not fit is failed (kAborted, "stream is full") instead of being
  // published (core/queue/stream_space.h says why).
  int64_t stream_max_bytes = 0;
  // Called once per chunk of AddRow rows that JetStream stored, before the
  // rows' callbacks (on the same thread; quick, must not throw): for what
  // is done per chunk rather than per row (counters, status bookkeeping).
  std::function<void(const std::string& entity, const std::string& batch_id, uint32_t rows)> on_rows_stored;
  // Runs the row callbacks of one chunk (calls run() exactly once). nomnomd
  // wraps them in an http::ResponseBatch, so that the rows of a chunk are
  // answered with one hand-over per io thread. Default: run().
  std::function<void(const std::function<void()>& run)> around_row_callbacks;
};

class ChunkPublisher {
 public:
  // For a row added with AddRow: its chunk's batch id and the row's index in it.
  using RowDone = std::function<void(const PublishResult& result, const std::string& batch_id, uint32_t row)>;
  using Done = std::function<void(const PublishResult& result)>;

  ChunkPublisher(JetStreamClient& js, ChunkPublisherOptions options, MetricsRegistry& metrics);
  ~ChunkPublisher();
  ChunkPublisher(const ChunkPublisher&) = delete;
  ChunkPublisher& operator=(const ChunkPublisher&) = delete;

  void Start();
  void Shutdown();

  // The largest chunk body for this entity (the configured size, capped by
  // the server's max_payload, less the pgcopy1 headers for that format). A
  // row must fit in it (an NDJSON row with its newline) to be added or
  // published.
  size_t BodyLimit(std::string_view entity, PublishFormat format = PublishFormat::kNdjson) const;
  ChunkLimits LimitsFor(std::string_view entity) const;

  // kNdjson: row is one validated JSON object on one line, without its
  // newline, and row.size() + 1 <= BodyLimit(entity). kPgCopy1: row is the
  // entity's binary COPY tuple, schema its SchemaFingerprint, and row.size()
  // <= BodyLimit(entity, kPgCopy1). An entity's rows are expected in one
  // format; a row in another seals the open chunk first.
  void AddRow(const std::string& entity, std::string_view row, RowDone done,
              PublishFormat format = PublishFormat::kNdjson, std::string_view schema = {});
  void Publish(OutgoingMessage msg, Done done);
  bool Overloaded() const;

 private:
  struct Waiter {
    RowDone done;
    uint32_t row;
  };
  struct OpenChunk {
    std::string batch_id;
    PublishFormat format = PublishFormat::kNdjson;
    std::string schema;  // kPgCopy1
    std::string body;
    uint32_t rows = 0;
    std::vector<Waiter> waiters;
    std::chrono::steady_clock::time_point deadline;
  };
  struct Queued {
    OutgoingMessage msg;
    Done done;
  };

  void SealLocked(const std::string& entity);  // mu_ held
  void EnqueueLocked(Queued q);                // mu_ held
  void Main();
  Done Instrument(Done done);  // adds the ack-latency and outcome metrics

  JetStreamClient& js_;
  const ChunkPublisherOptions options_;
  MetricCounter& chunks_published_;
  MetricCounter& publish_errors_;
  MetricHistogram& publish_ack_seconds_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, OpenChunk> open_;  // by entity; guarded by mu_
  std::deque<Queued> queue_;               // guarded by mu_
  // Written under mu_; read without it by Overloaded(), which every request
  // asks (a lock there made the io threads queue on mu_).
  std::atomic<size_t> queued_bytes_{0};
  bool stopping_ = false;         // guarded by mu_
  size_t last_sealed_bytes_ = 0;  // guarded by mu_: the size of the last AddRow chunk sealed
  size_t last_sealed_rows_ = 0;   // guarded by mu_
  std::thread thread_;
  StreamSpaceGuard space_;  // publisher thread only
};

}  // namespace nomnom
