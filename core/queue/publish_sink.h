// PublishSink: a RowSink that publishes validated rows to JetStream as chunk
// messages (core/queue/chunk_writer.h, the same split nomnomd uses) for the workers,
// instead of writing PostgreSQL: `nomnom load --via-nats`. Each chunk is its
// own batch (a UUID), at most max_rows rows and max_bytes bytes (capped by the
// server's max_payload); a row too large for any chunk is rejected. Publishing is asynchronous and
// bounded by the client's in-flight limit; Finish() waits for every
// acknowledgement and fails if any chunk was not stored.
//
// Format kPgCopy1: the chunk bodies are the rows' binary COPY tuples the
// pipeline already encoded (core/format/pgcopy_chunk.h) with the Nomnom-Format and
// Nomnom-Schema headers, instead of their NDJSON lines; only for entities
// without derived entities (the caller checks).
//
// Thread-safety: one PublishSink per sink thread; the JetStreamClient is
// shared and must outlive it.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "core/format/row_sink.h"
#include "core/format/schema.h"
#include "core/queue/chunk_writer.h"
#include "core/queue/nats_client.h"
#include "core/queue/stream_space.h"

namespace nomnom {

struct PublishCounters {
  std::atomic<uint64_t> chunks_acked{0};
  std::atomic<uint64_t> rows_acked{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> failures{0};
  std::mutex mu;
  std::string first_error;  // guarded by mu
};

class PublishSink : public RowSink {
 public:
  PublishSink(JetStreamClient& js, const Entity& entity, size_t max_rows, size_t max_bytes,
              std::shared_ptr<PublishCounters> counters, PublishFormat format = PublishFormat::kNdjson);
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject) override;
  Status Finish() override;

 private:
  void Publish(ChunkBody chunk);

  JetStreamClient& js_;
  const Entity& entity_;
  ChunkLimits limits_;
  std::shared_ptr<PublishCounters> counters_;
  PublishFormat format_;
  std::string schema_;      // kPgCopy1: SchemaFingerprint(entity)
  StreamSpaceGuard space_;  // a chunk that would not fit the stream fails the load
};

}  // namespace nomnom
