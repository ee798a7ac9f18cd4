// Answers: a Responder called on any thread hands its response to the
// session's io thread (Session::PostResponse), one by one or, under a
// ResponseBatch, one hand-over per io thread for many; and streaming
// responses (Server-Sent Events: the head, then queued writes).
#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/http/session.h"

namespace nomnom::http {
namespace internal {
namespace {

// The responses held by this thread's ResponseBatch (http_server.h). The
// server and the io_context are known without touching the session (its
// memory is the io thread's: reading it from the answering thread costs cache
// misses on every response).
struct DeferredResponse {
  std::shared_ptr<Session> session;
  Server::Impl* impl;
  size_t ioc;  // index of the session's io_context
  uint64_t seq;
  Response response;
};
struct ResponseBatchState {
  int depth = 0;
  std::vector<DeferredResponse> held;
};
thread_local ResponseBatchState t_response_batch;
// Counts a post under way (Server::Impl::posting, which Stop() waits for)
// for its scope, exceptions included.
struct Posting {
  std::atomic<int>& n;
  explicit Posting(std::atomic<int>& c) : n(c) { n.fetch_add(1); }
  ~Posting() { n.fetch_sub(1); }
  Posting(const Posting&) = delete;
  Posting& operator=(const Posting&) = delete;
};
// Held responses whose room a thread keeps from one batch to the next.
constexpr size_t kKeptBatchResponses = 4096;

// Hands held responses over: one post per io_context, each keeping the order
// in which they were given.
void HandOver(std::vector<DeferredResponse>& held) noexcept {
  try {
    while (!held.empty()) {
      Server::Impl& impl = *held.front().impl;
      const size_t ioc = held.front().ioc;
      auto same = [&impl, ioc](const DeferredResponse& d) { return d.impl == &impl && d.ioc == ioc; };
      std::vector<DeferredResponse> group;
      group.reserve(static_cast<size_t>(std::count_if(held.begin(), held.end(), same)));
      // Take this io_context's responses; the others stay, in order, for the next round.
      size_t keep = 0;
      for (size_t i = 0; i < held.size(); ++i) {
        if (same(held[i])) {
          group.push_back(std::move(held[i]));
        } else {
          if (keep != i) held[keep] = std::move(held[i]);
          ++keep;
        }
      }
      held.resize(keep);
      const Posting posting(impl.posting);  // Stop() waits for posts under way
      if (!impl.reject_posts.load()) {
        net::post(impl.iocs[ioc]->get_executor(), [g = std::move(group)]() mutable {
          for (DeferredResponse& d : g) d.session->Deliver(d.seq, std::move(d.response));
        });
      }
    }
  } catch (...) {
    // Out of memory: what is still held goes one by one.
    for (DeferredResponse& d : held) {
      if (d.session) Session::PostResponse(std::move(d.session), *d.impl, d.ioc, d.seq, std::move(d.response));
    }
    held.clear();
  }
}

}  // namespace

void Session::PostResponse(std::shared_ptr<Session> session, Server::Impl& impl, size_t ioc, uint64_t seq,
                           Response&& response) {
  ResponseBatchState& batch = t_response_batch;
  if (batch.depth > 0) {
    try {
      // May throw: then posted alone. (Geometric: reserving size() + 1 would copy them all every time.)
      if (batch.held.size() == batch.held.capacity()) batch.held.reserve(std::max<size_t>(64, 2 * batch.held.size()));
      batch.held.push_back(DeferredResponse{std::move(session), &impl, ioc, seq, std::move(response)});
      return;
    } catch (...) {
    }
  }
  // The session (which keeps impl alive) must outlive the dispatch, which
  // may run the handler here.
  const std::shared_ptr<Session> keep = session;
  // Stop() waits for posts under way; counted down even if the dispatch,
  // which may write the answer here, throws.
  const Posting posting(impl.posting);
  if (!impl.reject_posts.load()) {
    net::dispatch(impl.iocs[ioc]->get_executor(), [self = std::move(session), seq, r = std::move(response)]() mutable {
      self->OnResponse(seq, std::move(r));
    });
  }
}

bool Session::PostStreamData(std::shared_ptr<const std::string> data) {
  Server::Impl& impl = *impl_;
  const Posting posting(impl.posting);
  const bool ok = !impl.reject_posts.load();
  if (ok) {
    net::dispatch(socket_.get_executor(),
                  [self = shared_from_this(), d = std::move(data)]() mutable { self->OnStreamData(std::move(d)); });
  }
  return ok;
}

void Session::PostClose() {
  Server::Impl& impl = *impl_;
  const Posting posting(impl.posting);
  if (!impl.reject_posts.load()) net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->Close(); });
}

void Session::Deliver(uint64_t seq, Response&& r) noexcept {
  try {
    OnResponse(seq, std::move(r));
  } catch (const std::exception& e) {
    impl_->Log(std::string("writing a response failed: ") + e.what());
    Close();
  } catch (...) {
    impl_->Log("writing a response failed");
    Close();
  }
}

void Session::OnResponse(uint64_t seq, Response&& r) {
  if (phase_ != Phase::kHandling || seq != seq_) return;  // closed meanwhile, or a stale answer
  Write(std::move(r));
}

void Session::WriteStreamHead(Response&& r) {
  status_ = r.status;
  close_after_write_ = true;
  linger_after_write_ = false;
  stream_start_ = std::move(r.stream);
  head_.clear();
  head_ += "HTTP/1.1 ";
  AppendUnsigned(head_, static_cast<uint64_t>(r.status));
  head_ += ' ';
  std::string_view reason = SV(bhttp::obsolete_reason(static_cast<bhttp::status>(r.status)));
  head_ += reason == "<unknown-status>" ? std::string_view("Unknown") : reason;
  head_ += "\r\nServer: nomnomd\r\nContent-Type: ";
  head_ += r.content_type.empty() || !HeaderValueIsSafe(r.content_type) ? std::string_view("text/event-stream")
                                                                        : std::string_view(r.content_type);
  head_ += "\r\n";
  AppendExtraHeaders(head_, r.headers);
  head_ += "Connection: close\r\n\r\n";
  phase_ = Phase::kWriting;
  SetDeadlineAfter(std::chrono::milliseconds(opts().idle_timeout_ms));
  net::async_write(socket_, net::buffer(head_.data(), head_.size()),
                   [self = shared_from_this()](error_code ec, size_t) { self->OnStreamHead(ec); });
}

void Session::OnStreamHead(error_code ec) {
  ReportDone();
  request_ = Request();  // a stream lasts: keep nothing of the request that opened it
  StreamStart start = std::move(stream_start_);
  stream_start_ = nullptr;
  if (phase_ == Phase::kClosed) return;
  if (ec || stop_requested_ || impl_->stopping.load()) return Close();
  phase_ = Phase::kStreaming;
  // No deadline: the queue limit cuts off a client that stops reading.
  deadline_ = Clock::time_point::max();
  writer_ = std::make_shared<SessionStream>(weak_from_this());
  DoStreamRead();
  try {
    start(writer_);
  } catch (const std::exception& e) {
    impl_->Log(std::string("stream start threw: ") + e.what());
    Close();
  } catch (...) {
    impl_->Log("stream start threw");
    Close();
  }
}

void Session::DoStreamRead() {
  buffer_.clear();
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](error_code ec, size_t) {
    if (ec || self->phase_ != Phase::kStreaming) return self->Close();
    self->DoStreamRead();
  });
}

void Session::OnStreamData(std::shared_ptr<const std::string> data) {
  if (phase_ != Phase::kStreaming || !data || data->empty()) return;
  if (out_bytes_ + data->size() > opts().max_stream_queue_bytes) {
    impl_->Log("stream to " + remote_ + ": the client is not reading; disconnected");
    return Close();
  }
  out_bytes_ += data->size();
  out_.push_back(std::move(data));
  if (!out_writing_) DoStreamWrite();
}

void Session::DoStreamWrite() {
  out_writing_ = true;
  const std::string& front = *out_.front();
  net::async_write(socket_, net::buffer(front.data(), front.size()),
                   [self = shared_from_this()](error_code ec, size_t) {
                     self->out_bytes_ -= self->out_.front()->size();
                     self->out_.pop_front();
                     self->out_writing_ = false;
                     if (ec || self->phase_ != Phase::kStreaming) return self->Close();
                     if (!self->out_.empty()) self->DoStreamWrite();
                   });
}

bool SessionStream::Write(std::shared_ptr<const std::string> data) {
  if (!open_.load()) return false;
  auto s = session_.lock();
  if (!s || !s->PostStreamData(std::move(data))) {
    open_.store(false);
    return false;
  }
  return true;
}

void SessionStream::Close() {
  open_.store(false);
  if (auto s = session_.lock()) s->PostClose();
}

}  // namespace internal

// ---------------------------------------------------------------------------
// ResponseBatch

ResponseBatch::ResponseBatch() noexcept { ++internal::t_response_batch.depth; }

ResponseBatch::~ResponseBatch() {
  internal::ResponseBatchState& batch = internal::t_response_batch;
  if (--batch.depth > 0) return;
  std::vector<internal::DeferredResponse> held;
  held.swap(batch.held);
  internal::HandOver(held);
  // The next batch reuses the memory (a chunk's answers: growing the vector
  // anew for every chunk was several large allocations each time), up to a
  // typical chunk's size.
  held.clear();
  if (batch.held.capacity() == 0 && held.capacity() <= internal::kKeptBatchResponses) batch.held.swap(held);
}

}  // namespace nomnom::http
