#include "core/queue/publish_sink.h"

#include "core/format/pgcopy_chunk.h"
#include "core/queue/ingest_format.h"

namespace nomnom {

PublishSink::PublishSink(JetStreamClient& js, const Entity& entity, size_t max_rows, size_t max_bytes,
                         std::shared_ptr<PublishCounters> counters, PublishFormat format)
    : js_(js),
      entity_(entity),
      // The two extra headers of pgcopy1 chunks (and their separators) come
      // off the body's room.
      limits_{max_rows, ChunkBodyLimit(js.MaxPayload() - (format == PublishFormat::kPgCopy1 ? kPgCopyHeaderBytes : 0),
                                       entity.name, max_bytes)},
      counters_(std::move(counters)),
      format_(format),
      schema_(format == PublishFormat::kPgCopy1 ? SchemaFingerprint(entity) : std::string()),
      space_(js, js.config().max_bytes) {}

void PublishSink::Publish(ChunkBody chunk) {
  // Each chunk is a batch of its own: its id is what /ingest/status knows.
  const std::string batch = NewUuid();
  const uint32_t rows = chunk.rows;
  OutgoingMessage m = MakeChunkMessage(js_.EntitySubject(entity_.name), entity_.name, batch, 0, 1, rows,
                                       std::move(chunk.body), ChunkEncoding{format_, schema_, {}});
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
  // NDJSON chunks carry each row's line; pgcopy1 chunks its tuple as encoded
  // here, so the worker does not parse or encode it again.
  const bool binary = format_ == PublishFormat::kPgCopy1;
  BatchResult result;
  ChunkWriter writer(limits_, format_);
  for (const EncodedPart* part : parts) {
    const std::string_view tuples = part->tuples.view();
    for (size_t r = 0; r < part->rows(); ++r) {
      std::string_view row = part->origins[r].raw;
      if (binary) {
        const size_t end = r + 1 < part->rows() ? part->offsets[r + 1] : tuples.size();
        row = tuples.substr(part->offsets[r], end - part->offsets[r]);
      }
      if (!writer.Add(row)) {
        on_reject(part->origins[r], RowTooLargeError(row.size() + (binary ? 0 : 1), limits_.max_bytes));
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
