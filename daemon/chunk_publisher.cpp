#include "daemon/chunk_publisher.h"

#include <algorithm>
#include <memory>

#include "core/base/log.h"
#include "core/queue/ingest_format.h"

namespace nomnom {

namespace {

using Clock = std::chrono::steady_clock;

// Runs a completion callback; nothing thrown by it escapes (callers are
// cnats callbacks and the publisher thread).
template <typename Fn, typename... Args>
void RunCallback(const Fn& fn, Args&&... args) noexcept {
  try {
    fn(std::forward<Args>(args)...);
  } catch (const std::exception& ex) {
    LogError("publish completion callback failed: {}", ex.what());
  } catch (...) {
    LogError("publish completion callback failed");
  }
}

PublishResult Failed(Status s) {
  PublishResult r;
  r.status = std::move(s);
  return r;
}

}  // namespace

ChunkPublisher::ChunkPublisher(JetStreamClient& js, ChunkPublisherOptions options, MetricsRegistry& metrics)
    : js_(js),
      options_(options),
      chunks_published_(
          metrics.Counter("nomnom_jetstream_chunks_published_total", "Chunk messages acknowledged by JetStream")),
      publish_errors_(metrics.Counter("nomnom_jetstream_publish_errors_total", "Chunk publishes that failed")),
      publish_ack_seconds_(metrics.Histogram("nomnom_jetstream_publish_ack_seconds",
                                             "Time from handing a chunk to JetStream to its acknowledgement")),
      space_(js, options_.stream_max_bytes) {}

ChunkPublisher::~ChunkPublisher() { Shutdown(); }

void ChunkPublisher::Start() {
  thread_ = std::thread([this] { Main(); });
}

size_t ChunkPublisher::BodyLimit(std::string_view entity, PublishFormat format) const {
  // pgcopy1's two extra headers come off the body's room.
  const int64_t payload = js_.MaxPayload() - (format == PublishFormat::kPgCopy1 ? kPgCopyHeaderBytes : 0);
  return ChunkBodyLimit(payload, entity, options_.limits.max_bytes);
}

ChunkLimits ChunkPublisher::LimitsFor(std::string_view entity) const {
  return ChunkLimits{options_.limits.max_rows, BodyLimit(entity)};
}

ChunkPublisher::Done ChunkPublisher::Instrument(Done done) {
  const auto handed = Clock::now();
  return [this, handed, done = std::move(done)](const PublishResult& r) {
    publish_ack_seconds_.Observe(std::chrono::duration<double>(Clock::now() - handed).count());
    if (r.status.ok()) {
      chunks_published_.Inc();
    } else {
      publish_errors_.Inc();
    }
    RunCallback(done, r);
  };
}

void ChunkPublisher::EnqueueLocked(Queued q) {
  queued_bytes_ += q.msg.body.size();
  queue_.push_back(std::move(q));
}

void ChunkPublisher::Publish(OutgoingMessage msg, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      EnqueueLocked(Queued{std::move(msg), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  RunCallback(done, Failed(Status::Aborted("shutting down")));
}

void ChunkPublisher::AddRow(const std::string& entity, std::string_view row, RowDone done, PublishFormat format,
                            std::string_view schema) {
  const size_t limit = BodyLimit(entity, format);
  const size_t row_bytes = row.size() + (format == PublishFormat::kNdjson ? 1 : 0);
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    lock.unlock();
    RunCallback(done, Failed(Status::Aborted("shutting down")), std::string(), uint32_t{0});
    return;
  }
  auto it = open_.find(entity);
  // A row that would overflow the open chunk, or is in another format, seals it first.
  if (it != open_.end() && (it->second.body.size() + row_bytes > limit || it->second.format != format)) {
    SealLocked(entity);
    it = open_.end();
  }
  bool notify = false;
  if (it == open_.end()) {
    it = open_.try_emplace(entity).first;
    it->second.batch_id = NewUuid();
    it->second.format = format;
    if (format == PublishFormat::kPgCopy1) it->second.schema.assign(schema);
    // Room for as much as the last chunk held: one allocation per chunk
    // rather than a doubling series (each large one also makes malloc
    // consolidate the io thread's freed small blocks).
    it->second.body.reserve(std::min(limit, last_sealed_bytes_ + last_sealed_bytes_ / 8));
    it->second.waiters.reserve(last_sealed_rows_ + last_sealed_rows_ / 8);
    it->second.deadline = Clock::now() + std::chrono::milliseconds(options_.linger_ms);
    notify = true;  // the thread must learn the new deadline
  }
  OpenChunk& chunk = it->second;
  chunk.body.append(row);
  if (format == PublishFormat::kNdjson) chunk.body.push_back('\n');
  chunk.waiters.push_back(Waiter{std::move(done), chunk.rows});
  ++chunk.rows;
  if (chunk.rows >= options_.limits.max_rows || chunk.body.size() >= limit) {
    SealLocked(entity);
    notify = true;
  }
  if (notify) cv_.notify_one();
}

void ChunkPublisher::SealLocked(const std::string& entity) {
  auto it = open_.find(entity);
  if (it == open_.end()) return;
  OpenChunk chunk = std::move(it->second);
  open_.erase(it);
  last_sealed_bytes_ = chunk.body.size();
  last_sealed_rows_ = chunk.rows;
  auto waiters = std::make_shared<std::vector<Waiter>>(std::move(chunk.waiters));
  Queued q;
  q.msg = MakeChunkMessage(js_.EntitySubject(entity), entity, chunk.batch_id, 0, 1, chunk.rows, std::move(chunk.body),
                           ChunkEncoding{chunk.format, chunk.schema, {}});
  const uint32_t rows = chunk.rows;
  q.done = [this, waiters, entity, rows, batch_id = chunk.batch_id](const PublishResult& r) {
    if (r.status.ok() && options_.on_rows_stored) RunCallback(options_.on_rows_stored, entity, batch_id, rows);
    bool ran = false;
    auto run = [&] {
      if (ran) return;
      ran = true;
      for (const Waiter& w : *waiters) RunCallback(w.done, r, batch_id, w.row);
    };
    if (options_.around_row_callbacks) {
      try {
        options_.around_row_callbacks(run);
        return;
      } catch (const std::exception& ex) {
        LogError("publish completion wrapper failed: {}", ex.what());
      } catch (...) {
        LogError("publish completion wrapper failed");
      }
    }
    run();
  };
  EnqueueLocked(std::move(q));
}

bool ChunkPublisher::Overloaded() const {
  return queued_bytes_.load(std::memory_order_relaxed) > options_.max_queued_bytes;
}

void ChunkPublisher::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    std::vector<std::string> names;
    for (const auto& [name, _] : open_) names.push_back(name);
    for (const auto& n : names) SealLocked(n);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Never started: answer what was queued.
  std::deque<Queued> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(queue_);
    queued_bytes_ = 0;
  }
  for (auto& q : left) RunCallback(q.done, Failed(Status::Aborted("shutting down")));
}

void ChunkPublisher::Main() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Seal chunks whose linger time is over.
    const auto now = Clock::now();
    auto next_deadline = Clock::time_point::max();
    std::vector<std::string> due;
    for (const auto& [name, chunk] : open_) {
      if (chunk.deadline <= now) {
        due.push_back(name);
      } else {
        next_deadline = std::min(next_deadline, chunk.deadline);
      }
    }
    for (const auto& n : due) SealLocked(n);
    if (!queue_.empty()) {
      Queued q = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= q.msg.body.size();
      lock.unlock();
      if (Status room = space_.Admit(q.msg); !room.ok()) {
        publish_errors_.Inc();
        RunCallback(q.done, Failed(std::move(room)));
      } else {
        // May block while too many publishes are in flight: back-pressure.
        js_.PublishAsync(std::move(q.msg), Instrument(std::move(q.done)));
      }
      lock.lock();
      continue;
    }
    if (stopping_ && open_.empty()) return;
    if (next_deadline == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next_deadline);
    }
  }
}

}  // namespace nomnom
