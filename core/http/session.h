// Internal to core/http: one connection (Session), after Beast's
// advanced_server example. A Session reads a request (header, then body,
// within the size and time limits), routes it and checks the bearer token,
// gives it to the handler with a Responder, writes the answer, and waits for
// the next request on the same connection (keep-alive; pipelined requests
// one at a time, in order).
//
// Files: session.cpp reads, parses, dispatches and writes; responses.cpp
// takes the answers from the handlers' threads (PostResponse, ResponseBatch)
// and writes streaming responses (Server-Sent Events).
//
// Ownership: every pending operation holds a shared_ptr to its Session; the
// server's lists hold weak_ptrs. Threads: everything but PostResponse(),
// PostStreamData() and PostClose() runs on the session's io thread (its
// io_context, run by one thread: an implicit strand).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/http/beast.h"
#include "core/http/http_server.h"
#include "core/http/router.h"
#include "core/http/server_impl.h"
#include "core/http/text.h"

namespace nomnom::http::internal {

// Memory for one request's header fields, which Beast allocates one by one:
// a region of the connection, handed out in order and taken back all at once
// when the next request's parser is made (Reset), with the heap behind it for
// a header that does not fit. One connection's: used on its io thread only.
class FieldArena {
 public:
  void* Allocate(size_t n) {
    n = (n + kAlign - 1) & ~(kAlign - 1);
    if (n <= sizeof(region_) - used_) {
      void* p = region_ + used_;
      used_ += n;
      return p;
    }
    return ::operator new(n);
  }
  void Deallocate(void* p) noexcept {
    if (!Owns(p)) ::operator delete(p);
  }
  // Only when nothing allocated from the region is in use any more.
  void Reset() noexcept { used_ = 0; }

 private:
  static constexpr size_t kAlign = alignof(std::max_align_t);
  bool Owns(const void* p) const noexcept {
    const auto a = reinterpret_cast<uintptr_t>(p);
    const auto b = reinterpret_cast<uintptr_t>(region_);
    return a >= b && a < b + sizeof(region_);
  }
  alignas(kAlign) std::byte region_[1024];  // a typical request's fields with room to spare
  size_t used_ = 0;
};

// A standard allocator drawing on one of the memories here (FieldArena,
// ReadOpMemory): anything with Allocate(bytes) and Deallocate(pointer).
template <class T, class Memory>
class MemoryAllocator {
 public:
  using value_type = T;
  explicit MemoryAllocator(Memory* memory) noexcept : memory_(memory) {}
  template <class U>
  MemoryAllocator(const MemoryAllocator<U, Memory>& other) noexcept : memory_(other.memory_) {}  // NOLINT: rebinding
  T* allocate(size_t n) { return static_cast<T*>(memory_->Allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t) noexcept { memory_->Deallocate(p); }
  template <class U>
  bool operator==(const MemoryAllocator<U, Memory>& other) const noexcept {
    return memory_ == other.memory_;
  }

 private:
  template <class U, class M>
  friend class MemoryAllocator;
  Memory* memory_;
};

template <class T>
using FieldAllocator = MemoryAllocator<T, FieldArena>;

using RequestParser = bhttp::request_parser<bhttp::string_body, FieldAllocator<char>>;

// Memory for a connection's wait for its next request: asio allocates an
// operation for every async_read_some, and a connection has one such read
// at a time. Used on the connection's io thread only.
class ReadOpMemory {
 public:
  void* Allocate(size_t n) {
    if (!in_use_ && n <= sizeof(storage_)) {
      in_use_ = true;
      return storage_;
    }
    return ::operator new(n);
  }
  void Deallocate(void* p) noexcept {
    if (p == storage_) {
      in_use_ = false;
    } else {
      ::operator delete(p);
    }
  }

 private:
  alignas(std::max_align_t) std::byte storage_[512];
  bool in_use_ = false;
};

template <class T>
using ReadOpAllocator = MemoryAllocator<T, ReadOpMemory>;

// A completion handler whose operation lives in a ReadOpMemory (asio finds
// the allocator through allocator_type / get_allocator; it moves the handler
// out before freeing the memory, so the handler may own that memory's owner).
template <class Handler>
struct WithReadOpMemory {
  using allocator_type = ReadOpAllocator<char>;
  allocator_type get_allocator() const noexcept { return allocator_type(memory); }
  template <class... Args>
  void operator()(Args&&... args) {
    handler(std::forward<Args>(args)...);
  }
  ReadOpMemory* memory;
  Handler handler;
};
template <class Handler>
WithReadOpMemory<Handler> InReadOpMemory(ReadOpMemory* memory, Handler&& handler) {
  return WithReadOpMemory<Handler>{memory, std::forward<Handler>(handler)};
}

// The StreamWriter of a session's streaming response.
class SessionStream final : public StreamWriter {
 public:
  explicit SessionStream(std::weak_ptr<Session> session) : session_(std::move(session)) {}
  bool Write(std::shared_ptr<const std::string> data) override;
  bool IsOpen() const override { return open_.load(); }
  void Close() override;
  void MarkClosed() { open_.store(false); }

 private:
  std::weak_ptr<Session> session_;
  std::atomic<bool> open_{true};
};

// One connection (see the top of this file).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Server::Impl> impl, tcp::socket&& socket, size_t ioc);
  ~Session();

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Registers with the server (for Stop) and starts reading. Called on the
  // acceptor's thread right after construction.
  void Start();

  // On the io thread, from its sweep: closes the connection when its
  // deadline has passed (a pending read or write then fails).
  void CheckDeadline(Clock::time_point now) {
    if (phase_ != Phase::kClosed && deadline_ <= now) Close();
  }

  // Graceful stop: an idle connection is closed now, one with a request in
  // flight answers it with "Connection: close".
  void OnStop() {
    stop_requested_ = true;
    if (phase_ == Phase::kIdle || phase_ == Phase::kLingering || phase_ == Phase::kStreaming) Close();
  }

  // Stop timed out: close whatever this connection is doing.
  void ForceClose() { Close(); }

  net::any_io_executor executor() { return socket_.get_executor(); }

  // From any thread: answer request number seq of session (held by the
  // thread's ResponseBatch while one is open). impl and ioc are the
  // session's server and io_context index (see DeferredResponse).
  static void PostResponse(std::shared_ptr<Session> session, Server::Impl& impl, size_t ioc, uint64_t seq,
                           Response&& response);

  // From any thread: queue data on the streaming response (false: not posted,
  // the server is stopping).
  bool PostStreamData(std::shared_ptr<const std::string> data);
  void PostClose();

  // On the session's io thread: a held response (ResponseBatch).
  void Deliver(uint64_t seq, Response&& r) noexcept;

 private:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kStreaming, kLingering, kClosed };

  // Keeps the session alive until the handler answers (or drops every copy of
  // the Responder, which answers 500). Inline: OnRequest makes one per
  // request, and Call runs on the answering thread. The first call hands the session reference on with the response
  // (the answering thread need not touch the session's reference count).
  struct ResponderState {
    explicit ResponderState(Session& s)
        : session(s.shared_from_this()), impl(s.impl_.get()), ioc(s.ioc_), seq(s.seq_) {}
    ~ResponderState() {
      if (!called.load()) {
        PostResponse(std::move(session), *impl, ioc, seq, JsonError(500, "the request handler did not respond"));
      }
    }
    ResponderState(const ResponderState&) = delete;
    ResponderState& operator=(const ResponderState&) = delete;
    void Call(Response&& r) {
      if (!called.exchange(true)) PostResponse(std::move(session), *impl, ioc, seq, std::move(r));
    }
    std::shared_ptr<Session> session;
    Server::Impl* impl;
    size_t ioc;
    uint64_t seq;
    std::atomic<bool> called{false};
  };

  const ServerOptions& opts() const { return impl_->opts; }

  // ---- reading (session.cpp) ----
  // Waits for the first byte of the next request (idle timeout), unless a
  // pipelined request is already buffered.
  // after_response: called when a response has just been written (which
  // started the idle timeout).
  void DoIdle(bool after_response = false);
  void ReadIdle();
  void DoReadHeader();
  // One read deadline covers the whole request, counted from its first byte
  // (started_), armed by the first read that has to wait for it.
  void ArmReadDeadline(int ms = 0);
  void OnHeader(error_code ec);
  void DoReadBody();
  void OnReadError(error_code ec);

  // ---- dispatching (session.cpp) ----
  // The request read in full: the token check, the route, the handler.
  void OnRequest();
  // 404 when no route matched (route_ null), else 405 with Allow.
  Response NoHandlerResponse(std::string_view path, std::string_view method) const;
  bool Authorized(std::string_view authorization) const;

  // ---- writing (session.cpp) ----
  // An error answered before the request was read in full: the connection is
  // closed after it (with a lingering close, so the client sees the response).
  void WriteError(Response&& r);
  // Serializes and writes the response. static_body, when given, is sent
  // instead of r.body (embedded files, without a copy).
  void Write(Response&& r, std::optional<std::string_view> static_body = std::nullopt, bool linger = false);
  // Writes head_ and body: first straight to the socket (a response almost
  // always fits the socket's buffer: no operation to allocate, no completion
  // to queue), what is left asynchronously. Then OnWrite.
  void WriteHeadAndBody(std::string_view body);
  // The OnRequestDone hook for the request just answered.
  void ReportDone();
  void OnWrite(error_code ec);
  // After an error response sent while the client may still be sending: stop
  // sending, then read and discard for a while so that closing does not reset
  // the connection before the client has read the response.
  void Linger();
  void DoDiscard();
  void Close();

  // ---- answers and streaming responses (responses.cpp) ----
  // The handler's answer to request seq (ignored if stale or closed).
  void OnResponse(uint64_t seq, Response&& r);
  // The head of a streaming response: no Content-Length, the connection closes
  // when the stream ends.
  void WriteStreamHead(Response&& r);
  void OnStreamHead(error_code ec);
  // Reads (and drops) whatever the client sends, to notice it going away.
  void DoStreamRead();
  void OnStreamData(std::shared_ptr<const std::string> data);
  void DoStreamWrite();

  std::shared_ptr<Server::Impl> impl_;
  tcp::socket socket_;
  const size_t ioc_;  // index of the io_context (and sweep) it runs on
  // When the connection is closed unless the phase moves on (max: never).
  Clock::time_point deadline_ = Clock::time_point::max();
  void SetDeadlineAfter(Clock::duration d) { deadline_ = Clock::now() + d; }
  void SetDeadlineAt(Clock::time_point t) { deadline_ = t; }
  beast::flat_buffer buffer_;
  FieldArena fields_arena_;  // declared before parser_: outlives it
  std::optional<RequestParser> parser_;
  Request request_;              // the one handed to the handler, reused (OnRequest)
  ReadOpMemory read_op_memory_;  // DoIdle's read
  std::string remote_;
  std::string head_;  // the serialized response header
  std::string body_;  // the response body being written
  // A streaming response: its writer, the data waiting to be written (the
  // front one is being written while out_writing_), and their size.
  StreamStart stream_start_;
  std::shared_ptr<SessionStream> writer_;
  std::deque<std::shared_ptr<const std::string>> out_;
  size_t out_bytes_ = 0;
  bool out_writing_ = false;
  Phase phase_ = Phase::kIdle;
  uint64_t seq_ = 0;  // number of the request being handled
  const RouteEntry* route_ = nullptr;
  std::string_view param_;  // into the parser's target
  Clock::time_point started_{};
  int status_ = 0;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool close_after_write_ = false;
  bool linger_after_write_ = false;
  bool stop_requested_ = false;
  bool registered_ = false;
  bool read_deadline_set_ = false;
  bool drop_request_head_ = false;  // request_'s strings are over kKeptRequestHeadBytes
  std::list<std::weak_ptr<Session>>::iterator registration_;
};

}  // namespace nomnom::http::internal
