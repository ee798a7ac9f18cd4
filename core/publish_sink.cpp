#include "core/publish_sink.h"

#include "core/ingest_format.h"

namespace nomnom {

PublishSink::PublishSink(JetStreamClient& js, const Entity& entity, size_t max_rows, size_t max_bytes,
                         std::shared_ptr<PublishCounters> counters)
    : js_(js), entity_(entity), max_rows_(max_rows), max_bytes_(max_bytes), counters_(std::move(counters)) {}

void PublishSink::Publish(std::string body, uint32_t rows) {
  const std::string batch = NewUuid();
  OutgoingMessage m;
  m.subject = js_.EntitySubject(entity_.name);
  m.msg_id = ChunkId(batch, 0);
  m.headers = {{std::string(kHeaderEntity), entity_.name},
               {std::string(kHeaderBatch), batch},
               {std::string(kHeaderChunk), FormatChunkHeader(0, 1)},
               {std::string(kHeaderRows), std::to_string(rows)}};
  m.body = std::move(body);
  auto counters = counters_;
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

Result<BatchResult> PublishSink::Write(const std::vector<const EncodedPart*>& parts, const RejectFn&) {
  BatchResult result;
  std::string body;
  uint32_t rows = 0;
  for (const EncodedPart* part : parts) {
    for (const RowOrigin& o : part->origins) {
      if (rows > 0 && (rows >= max_rows_ || body.size() + o.raw.size() + 1 > max_bytes_)) {
        Publish(std::move(body), rows);
        body.clear();
        rows = 0;
      }
      body.append(o.raw);
      body.push_back('\n');
      ++rows;
      ++result.inserted;
    }
  }
  if (rows > 0) Publish(std::move(body), rows);
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
