#include "core/publish_sink.h"

#include "core/ingest_format.h"

namespace nomnom {

PublishSink::PublishSink(JetStreamClient& js, const Entity& entity, size_t max_rows, size_t max_bytes,
                         std::shared_ptr<PublishCounters> counters)
    : js_(js),
      entity_(entity),
      limits_{max_rows, ChunkBodyLimit(js.MaxPayload(), entity.name, max_bytes)},
      counters_(std::move(counters)),
      space_(js, js.config().max_bytes) {}

void PublishSink::Publish(ChunkBody chunk) {
  // Each chunk is a batch of its own: its id is what /ingest/status knows.
  const std::string batch = NewUuid();
  const uint32_t rows = chunk.rows;
  OutgoingMessage m =
      MakeChunkMessage(js_.EntitySubject(entity_.name), entity_.name, batch, 0, 1, rows, std::move(chunk.body));
  auto counters = counters_;
  if (Status room = space_.Admit(m); !room.ok()) {
    counters->failures.fetch_add(1);
    std::lock_guard<std::mutex> lock(counters->mu);
    if (counters->first_error.empty()) counters->first_error = room.message();
    return;
  }
  js_.PublishAsync(std::move(m), [counters, rows](const PublishResult& r) {
    if (!r.status.ok()) {
      counters->failures.fetch_add(1);
      std::lock_guard<std::mutex> lock(counters->mu);
      if (counters->first_error.empty()) counters->first_error = r.status.message();
      return;
    }
    if (r.duplicate) counters->duplicates.fetch_add(1);
    counters->chunks_acked.fetch_add(1);
    counters->rows_acked.fetch_add(rows);
  });
}

Result<BatchResult> PublishSink::Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject) {
  BatchResult result;
  ChunkWriter writer(limits_);
  for (const EncodedPart* part : parts) {
    for (const RowOrigin& o : part->origins) {
      if (!writer.Add(o.raw)) {
        on_reject(o, RowTooLargeError(o.raw.size() + 1, limits_.max_bytes));
        ++result.rejected;
        continue;
      }
      ++result.inserted;
      for (ChunkBody& c : writer.TakeFull()) Publish(std::move(c));
    }
  }
  for (ChunkBody& c : writer.TakeAll()) Publish(std::move(c));
  return result;
}

Status PublishSink::Finish() {
  if (Status s = js_.Drain(60000); !s.ok()) return s;
  if (counters_->failures.load() > 0) {
    std::lock_guard<std::mutex> lock(counters_->mu);
    return Status::Connection(std::to_string(counters_->failures.load()) +
                              " chunk(s) were not stored by JetStream: " + counters_->first_error);
  }
  return Status::Ok();
}

}  // namespace nomnom
