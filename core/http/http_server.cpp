#include "core/http/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

// GCC 12 reports -Wnull-dereference false positives inside Asio's scheduler
// (code inlined from system headers): silence them for the Boost headers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#pragma GCC diagnostic pop

#include "core/base/utf8.h"

namespace nomnom::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;

namespace {

std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

// ASCII case folding: what HTTP's case-insensitive tokens need (and no
// locale look-up per character).
constexpr char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; '+' is a space when plus_is_space. A malformed escape is kept as is.
std::string Decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

void ParseQuery(std::string_view q, std::map<std::string, std::string>& out) {
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string name = Decode(pair.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? std::string() : Decode(pair.substr(eq + 1), true);
    out.insert_or_assign(std::move(name), std::move(value));
  }
}

// Compares in time that depends on the lengths only, not on where they differ.
bool ConstantTimeEquals(std::string_view given, std::string_view expected) {
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = static_cast<unsigned char>(diff | (g ^ static_cast<unsigned char>(expected[i])));
  }
  return diff == 0;
}

bool IsIngestPath(std::string_view path) { return path == "/ingest" || path.starts_with("/ingest/"); }

bool HeaderValueIsSafe(std::string_view s) {
  return s.find_first_of("\r\n") == std::string_view::npos && s.find('\0') == std::string_view::npos;
}

bool HeaderNameIsSafe(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == ':') return false;
  }
  return true;
}

// The handler's extra header fields, without the ones the server sets itself
// or any that could split the head.
void AppendExtraHeaders(std::string& head, const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (!HeaderNameIsSafe(name) || !HeaderValueIsSafe(value) || IEquals(name, "Server") ||
        IEquals(name, "Content-Length") || IEquals(name, "Connection") || IEquals(name, "Transfer-Encoding") ||
        IEquals(name, "Content-Type")) {
      continue;
    }
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
}

std::string_view ContentTypeFor(std::string_view path) {
  auto ends = [&](std::string_view ext) { return path.ends_with(ext); };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".json")) return "application/json";
  if (ends(".png")) return "image/png";
  if (ends(".txt") || ends("/LICENSE") || ends("/NOTICE")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

void AppendUnsigned(std::string& out, uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(res.ptr - buf));
}

constexpr size_t kFirstReadBytes = 4096;
// A connection keeps its last request body's buffer for the next one up to
// this size (a typical /ingest/message body; 10,000 idle connections: 20 MB),
// and its last request's other strings (target, headers) up to this size; a
// larger request's are let go after its response.
constexpr size_t kKeptRequestBodyBytes = 2048;
constexpr size_t kKeptRequestHeadBytes = 2048;

// Bytes the strings of a request's target and header fields hold.
size_t HeadCapacity(const Request& r) {
  size_t n = r.method.capacity() + r.path.capacity() + r.remote.capacity();
  for (const auto& [name, value] : r.headers) n += name.capacity() + value.capacity();
  return n;
}
// A request for an unknown route or method whose body announces at most this
// many bytes has its body read (and dropped) so that the connection, and the
// requests pipelined after it, go on. A larger or chunked body is not read.
constexpr uint64_t kDrainBodyBytes = 64 << 10;

// A request's method as a metrics label: a known one, or "other".
std::string_view BoundedMethod(std::string_view m) {
  for (std::string_view known : {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    if (m == known) return known;
  }
  return "other";
}
constexpr int kLingerMs = 2000;

}  // namespace

// ---------------------------------------------------------------------------
// Public helpers

std::string Request::header(std::string_view name) const { return std::string(header_view(name)); }

std::string_view Request::header_view(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return v;
  }
  return {};
}

std::string JsonQuote(std::string_view raw) {
  // Bytes that are not UTF-8 (a path or header as a client sent it) are
  // written as the text \xNN, so the result is always valid JSON.
  const std::string text = EscapeInvalidUtf8(raw);
  const std::string_view s = text;
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

Response JsonError(int status, std::string_view message) {
  Response r;
  r.status = status;
  r.body = "{\"error\":" + JsonQuote(message) + "}";
  return r;
}

// ---------------------------------------------------------------------------
// Routing

namespace {

struct StaticContent {
  std::string content_type;
  std::string_view body;
};

struct MethodRoute {
  std::string method;
  Handler handler;
  std::optional<StaticContent> content;  // served directly, without a handler
};

struct RouteEntry {
  std::string pattern;
  std::string prefix;  // parameter routes: the pattern up to "{"
  std::string param;   // parameter routes: the parameter name
  std::vector<MethodRoute> methods;

  const MethodRoute* Find(std::string_view method) const {
    for (const auto& m : methods) {
      if (m.method == method) return &m;
    }
    if (method == "HEAD") return Find("GET");
    return nullptr;
  }
  std::string Allow() const {
    std::string out;
    bool has_get = false;
    bool has_head = false;
    for (const auto& m : methods) {
      if (!out.empty()) out += ", ";
      out += m.method;
      has_get = has_get || m.method == "GET";
      has_head = has_head || m.method == "HEAD";
    }
    if (has_get && !has_head) out += ", HEAD";
    return out;
  }
  void Set(MethodRoute route) {
    for (auto& m : methods) {
      if (m.method == route.method) {
        m = std::move(route);
        return;
      }
    }
    methods.push_back(std::move(route));
  }
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Session;

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

}  // namespace

// ---------------------------------------------------------------------------
// Server state shared by the sessions (which keep it alive: a Responder held by
// a handler may outlive the Server object).

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  explicit Impl(ServerOptions o) : opts(std::move(o)) {}

  ServerOptions opts;
  std::unordered_map<std::string, RouteEntry, StringHash, std::equal_to<>> exact;
  std::vector<RouteEntry> parameterized;
  std::function<void(std::string_view, std::string_view, int, double)> on_done;

  std::vector<std::unique_ptr<net::io_context>> iocs;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> accept_retry;
  std::vector<std::thread> threads;
  size_t next_ioc = 0;  // acceptor's thread only
  uint16_t bound_port = 0;

  // Timeouts: every session has one deadline (its phase's: idle, header,
  // request, write, linger), checked on its io thread by that thread's sweep
  // timer every sweep_period, rather than a timer armed and cancelled around
  // every read and write.
  struct Sweep {
    std::optional<net::steady_timer> timer;
    std::vector<std::weak_ptr<Session>> sessions;  // this io thread's; touched on it only
  };
  std::vector<Sweep> sweeps;  // one per io_context
  Clock::duration sweep_period{};
  std::atomic<bool> sweep_stop{false};
  void ArmSweep(size_t i);
  void SweepSessions(size_t i);

  std::atomic<bool> stopping{false};      // graceful stop under way: no keep-alive
  std::atomic<bool> reject_posts{false};  // io threads stopping: drop responses
  std::atomic<int> posting{0};            // responses being posted right now

  std::mutex mu;  // guards the fields below
  std::condition_variable cv;
  std::list<std::weak_ptr<Session>> sessions;
  int threads_running = 0;
  bool started = false;
  bool stopped = false;

  void Log(std::string_view line) const {
    if (opts.log) {
      opts.log(line);
    } else {
      std::fprintf(stderr, "nomnomd: %.*s\n", static_cast<int>(line.size()), line.data());
    }
  }

  // The route for path, and the raw parameter value for parameter routes.
  const RouteEntry* Match(std::string_view path, std::string_view& param_value) const {
    if (auto it = exact.find(path); it != exact.end()) return &it->second;
    for (const auto& r : parameterized) {
      if (path.size() > r.prefix.size() && path.starts_with(r.prefix)) {
        std::string_view rest = path.substr(r.prefix.size());
        if (rest.find('/') == std::string_view::npos) {
          param_value = rest;
          return &r;
        }
      }
    }
    return nullptr;
  }

  void DoAccept();
  void OnAccept(error_code ec, tcp::socket socket, size_t ioc);
  void RejectConnection(tcp::socket socket);
};

namespace {

// ---------------------------------------------------------------------------
// One connection. Everything but PostResponse() runs on the session's executor
// (its io_context, run by a single thread: an implicit strand).

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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Server::Impl> impl, tcp::socket&& socket, size_t ioc)
      : impl_(std::move(impl)), socket_(std::move(socket)), ioc_(ioc) {
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      remote_ = ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
      remote_ += ':';
      remote_ += std::to_string(ep.port());
    }
    socket_.set_option(tcp::no_delay(true), ec);
  }

  ~Session() {
    std::lock_guard lock(impl_->mu);
    if (registered_) impl_->sessions.erase(registration_);
    if (impl_->sessions.empty()) impl_->cv.notify_all();
  }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Registers with the server (for Stop) and starts reading. Called on the
  // acceptor's thread right after construction.
  void Start() {
    {
      std::lock_guard lock(impl_->mu);
      registration_ = impl_->sessions.insert(impl_->sessions.end(), weak_from_this());
      registered_ = true;
    }
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      self->impl_->sweeps[self->ioc_].sessions.push_back(self);
      self->DoIdle();
    });
  }

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
      net::dispatch(
          impl.iocs[ioc]->get_executor(),
          [self = std::move(session), seq, r = std::move(response)]() mutable { self->OnResponse(seq, std::move(r)); });
    }
  }

  // From any thread: queue data on the streaming response (false: not posted,
  // the server is stopping).
  bool PostStreamData(std::shared_ptr<const std::string> data) {
    Server::Impl& impl = *impl_;
    const Posting posting(impl.posting);
    const bool ok = !impl.reject_posts.load();
    if (ok) {
      net::dispatch(socket_.get_executor(),
                    [self = shared_from_this(), d = std::move(data)]() mutable { self->OnStreamData(std::move(d)); });
    }
    return ok;
  }
  void PostClose() {
    Server::Impl& impl = *impl_;
    const Posting posting(impl.posting);
    if (!impl.reject_posts.load())
      net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }

  // On the session's io thread: a held response (ResponseBatch).
  void Deliver(uint64_t seq, Response&& r) noexcept {
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

 private:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kStreaming, kLingering, kClosed };

  // Keeps the session alive until the handler answers (or drops every copy of
  // the Responder, which answers 500).
  // The first call hands the session reference on with the response (the
  // answering thread need not touch the session's reference count).
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

  // Waits for the first byte of the next request (idle timeout), unless a
  // pipelined request is already buffered.
  // after_response: called when a response has just been written (which
  // started the idle timeout).
  void DoIdle(bool after_response = false) {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kIdle;
    if (stop_requested_ || impl_->stopping.load()) return Close();
    if (buffer_.size() > 0) return DoReadHeader();
    if (!after_response) {
      SetDeadlineAfter(std::chrono::milliseconds(opts().idle_timeout_ms));
      return ReadIdle();
    }
    // The client has only just been sent its answer, and asio's read tries
    // the socket before waiting on it: started now, that recv() would find
    // nothing (a failed system call per request). Started after what this
    // io thread has queued (the other answers of a batch, then a poll), it
    // finds the next request already there more often than not.
    // (Posted to the io_context's own executor, not the socket's type-erased
    // one: that one cannot take the handler's allocator and would allocate.)
    net::post(impl_->iocs[ioc_]->get_executor(), InReadOpMemory(&read_op_memory_, [self = shared_from_this()] {
                if (self->phase_ == Phase::kIdle) self->ReadIdle();
              }));
  }

  void ReadIdle() {
    socket_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            InReadOpMemory(&read_op_memory_, [self = shared_from_this()](error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec || n == 0) return self->Close();
                              self->DoReadHeader();
                            }));
  }

  void DoReadHeader() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kReading;
    started_ = Clock::now();
    route_ = nullptr;
    param_ = {};
    parser_.reset();
    fields_arena_.Reset();
    parser_.emplace(std::piecewise_construct, std::make_tuple(), std::make_tuple(FieldAllocator<char>(&fields_arena_)));
    // The last request's body buffer takes this one's body (small ones only:
    // OnWrite lets go of a large one).
    parser_->get().body().swap(request_.body);
    parser_->get().body().clear();
    parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(opts().max_header_bytes, UINT32_MAX)));
    parser_->body_limit(static_cast<std::uint64_t>(opts().max_body_bytes));
    read_deadline_set_ = false;
    // Most requests arrive whole in one read: parse what is buffered here,
    // without a round trip through the io_context per parsing step.
    if (buffer_.size() > 0) {
      error_code ec;
      const size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      if (ec != bhttp::error::need_more) return OnHeader(ec);
    }
    ArmReadDeadline(std::min(opts().header_timeout_ms, opts().read_timeout_ms));
    bhttp::async_read_header(socket_, buffer_, *parser_,
                             [self = shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  // One read deadline covers the whole request, counted from its first byte
  // (started_), armed by the first read that has to wait for it.
  void ArmReadDeadline(int ms = 0) {
    if (read_deadline_set_) return;
    read_deadline_set_ = true;
    SetDeadlineAt(started_ + std::chrono::milliseconds(ms > 0 ? ms : opts().read_timeout_ms));
  }

  void OnHeader(error_code ec) {
    if (phase_ == Phase::kClosed) return;
    if (ec) return OnReadError(ec);
    const auto& req = parser_->get();
    std::string_view target = SV(req.target());
    std::string_view path = target.substr(0, target.find('?'));
    route_ = impl_->Match(path, param_);
    if (parser_->is_done()) return OnRequest();
    // A body is coming: refuse an unauthenticated one before reading it (the
    // connection is closed after the 401, the body unread), and before telling
    // whether the route exists (as for a request without a body).
    if (!opts().bearer_token.empty() && IsIngestPath(path) && !Authorized(SV(req[bhttp::field::authorization]))) {
      Response r = JsonError(401, "missing or invalid bearer token");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"nomnomd\"");
      return WriteError(std::move(r));
    }
    // A body is coming. Answer what no body can change before reading it: an
    // unknown route, a method the route does not take (the connection is then
    // closed, the body unread). A small body is read instead, and the
    // connection kept (OnRequest answers).
    if (route_ == nullptr || route_->Find(SV(req.method_string())) == nullptr) {
      auto length = parser_->content_length();
      if (!length || *length > kDrainBodyBytes) return WriteError(NoHandlerResponse(path, SV(req.method_string())));
    }
    // The body gets the rest of the read timeout (the header's own, shorter
    // deadline no longer applies).
    read_deadline_set_ = false;
    if (IEquals(Trim(SV(req[bhttp::field::expect])), "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      ArmReadDeadline();
      return net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](error_code wec, size_t) {
                                if (wec) return self->Close();
                                self->DoReadBody();
                              });
    }
    DoReadBody();
  }

  void DoReadBody() {
    if (phase_ == Phase::kClosed) return;
    if (buffer_.size() > 0) {  // the body, or some of it, came with the header
      error_code ec;
      const size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      if (ec && ec != bhttp::error::need_more) return OnReadError(ec);
      if (parser_->is_done()) return OnRequest();
    }
    ArmReadDeadline();
    bhttp::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](error_code ec, size_t) {
      if (self->phase_ == Phase::kClosed) return;
      if (ec) return self->OnReadError(ec);
      self->OnRequest();
    });
  }

  void OnReadError(error_code ec) {
    if (ec == bhttp::error::body_limit && !opts().bearer_token.empty()) {
      // The header is parsed: an unauthenticated request gets 401, whatever its size.
      const auto& req = parser_->get();
      const std::string_view target = SV(req.target());
      if (IsIngestPath(target.substr(0, target.find('?'))) && !Authorized(SV(req[bhttp::field::authorization]))) {
        Response r = JsonError(401, "missing or invalid bearer token");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"nomnomd\"");
        return WriteError(std::move(r));
      }
    }
    if (ec == bhttp::error::body_limit) {
      // Raised once the header is parsed (a Content-Length over the limit, or a
      // chunked body growing over it). No handler would take it anyway: 404/405.
      const auto& req = parser_->get();
      const std::string_view target = SV(req.target());
      const std::string_view path = target.substr(0, target.find('?'));
      route_ = impl_->Match(path, param_);
      if (route_ == nullptr || route_->Find(SV(req.method_string())) == nullptr) {
        return WriteError(NoHandlerResponse(path, SV(req.method_string())));
      }
      Response r =
          JsonError(413, "request body exceeds the limit of " + std::to_string(opts().max_body_bytes) + " bytes");
      r.body.pop_back();
      r.body += ",\"limit\":" + std::to_string(opts().max_body_bytes) + "}";
      return WriteError(std::move(r));
    }
    if (ec == bhttp::error::header_limit) {
      return WriteError(
          JsonError(431, "request header exceeds the limit of " + std::to_string(opts().max_header_bytes) + " bytes"));
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      return WriteError(JsonError(400, "malformed request: " + ec.message()));
    }
    // Timeout (tcp_stream closed the socket), reset, or the peer went away.
    Close();
  }

  // An error answered before the request was read in full: the connection is
  // closed after it (with a lingering close, so the client sees the response).
  void WriteError(Response&& r) {
    phase_ = Phase::kHandling;
    keep_alive_ = false;
    head_request_ = false;
    version_ = 11;
    Write(std::move(r), std::nullopt, /*linger=*/true);
  }

  void OnRequest() {
    phase_ = Phase::kHandling;
    deadline_ = Clock::time_point::max();  // nothing is read or written while the handler works
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    head_request_ = msg.method() == bhttp::verb::head;
    std::string_view method = SV(msg.method_string());
    std::string_view target = SV(msg.target());
    size_t qpos = target.find('?');
    std::string_view path = target.substr(0, qpos);

    if (!opts().bearer_token.empty() && IsIngestPath(path) && !Authorized(SV(msg[bhttp::field::authorization]))) {
      Response r = JsonError(401, "missing or invalid bearer token");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"nomnomd\"");
      return Write(std::move(r));
    }
    const MethodRoute* mr = route_ ? route_->Find(method) : nullptr;
    if (mr == nullptr) return Write(NoHandlerResponse(path, method));
    if (mr->content) {
      Response r;
      r.content_type = mr->content->content_type;
      r.headers.emplace_back("Cache-Control", "public, max-age=3600");
      return Write(std::move(r), mr->content->body);
    }

    // The connection's Request, refilled in place: its strings and vectors
    // keep their capacity from one request to the next (a handler that moves
    // it away just leaves the next one to allocate).
    Request& req = request_;
    req.method.assign(method);
    const std::string req_method(method);  // short: no allocation
    req.path.assign(path);
    req.query.clear();
    if (qpos != std::string_view::npos) ParseQuery(target.substr(qpos + 1), req.query);
    if (!route_->param.empty()) req.query.insert_or_assign(route_->param, Decode(param_, false));
    req.remote.assign(remote_);
    size_t nfields = 0;
    for (const auto& f : msg) {
      if (nfields < req.headers.size()) {
        req.headers[nfields].first.assign(SV(f.name_string()));
        req.headers[nfields].second.assign(SV(f.value()));
      } else {
        req.headers.emplace_back(SV(f.name_string()), SV(f.value()));
      }
      ++nfields;
    }
    req.headers.resize(nfields);
    req.body = std::move(msg.body());
    // Measured now, while these strings are in the cache (OnWrite lets them go).
    drop_request_head_ = HeadCapacity(req) > kKeptRequestHeadBytes;

    auto state = std::make_shared<ResponderState>(*this);
    // The parser (and so `method`) may be gone when the handler returns: a
    // response it gave at once has been written and the next request begun.
    const RouteEntry* route = route_;
    try {
      mr->handler(std::move(req), [state](Response r) { state->Call(std::move(r)); });
    } catch (const std::exception& e) {
      impl_->Log("handler for " + req_method + " " + route->pattern + " threw: " + e.what());
      state->Call(JsonError(500, "internal server error"));
    } catch (...) {
      impl_->Log("handler for " + req_method + " " + route->pattern + " threw");
      state->Call(JsonError(500, "internal server error"));
    }
  }

  // 404 when no route matched (route_ null), else 405 with Allow.
  Response NoHandlerResponse(std::string_view path, std::string_view method) const {
    if (route_ == nullptr) return JsonError(404, "no route for " + std::string(path));
    Response r = JsonError(405, "method " + std::string(method) + " not allowed on " + route_->pattern);
    r.headers.emplace_back("Allow", route_->Allow());
    return r;
  }

  bool Authorized(std::string_view authorization) const {
    authorization = Trim(authorization);
    constexpr std::string_view kScheme = "bearer ";
    if (authorization.size() < kScheme.size() || !IEquals(authorization.substr(0, kScheme.size()), kScheme)) {
      return false;
    }
    return ConstantTimeEquals(Trim(authorization.substr(kScheme.size())), opts().bearer_token);
  }

  void OnResponse(uint64_t seq, Response&& r) {
    if (phase_ != Phase::kHandling || seq != seq_) return;  // closed meanwhile, or a stale answer
    Write(std::move(r));
  }

  // Serializes and writes the response. static_body, when given, is sent
  // instead of r.body (embedded files, without a copy).
  void Write(Response&& r, std::optional<std::string_view> static_body = std::nullopt, bool linger = false) {
    if (r.stream && r.status >= 200 && r.status <= 299 && r.status != 204 && !head_request_ && !linger) {
      return WriteStreamHead(std::move(r));
    }
    int status = r.status;
    if (status < 100 || status > 599) status = 500;  // a real HTTP status (also the metrics label)
    status_ = status;
    const bool no_body_allowed = status < 200 || status == 204 || status == 304;
    bool keep = keep_alive_ && !linger && !stop_requested_ && !impl_->stopping.load();
    close_after_write_ = !keep;
    linger_after_write_ = linger;

    body_ = std::move(r.body);
    std::string_view body = static_body ? *static_body : std::string_view(body_);
    if (no_body_allowed) body = {};

    head_.clear();
    head_ += "HTTP/1.1 ";
    AppendUnsigned(head_, static_cast<uint64_t>(status));
    head_ += ' ';
    std::string_view reason = SV(bhttp::obsolete_reason(static_cast<bhttp::status>(status)));
    head_ += reason == "<unknown-status>" ? std::string_view("Unknown") : reason;
    head_ += "\r\nServer: nomnomd\r\n";
    if (!no_body_allowed) {
      if (r.content_type.empty()) {
        head_ += "Content-Type: application/json\r\n";
      } else if (HeaderValueIsSafe(r.content_type)) {
        head_ += "Content-Type: ";
        head_ += r.content_type;
        head_ += "\r\n";
      }
    }
    AppendExtraHeaders(head_, r.headers);
    if (status >= 200 && status != 204) {
      head_ += "Content-Length: ";
      AppendUnsigned(head_, body.size());
      head_ += "\r\n";
    }
    if (!keep) {
      head_ += "Connection: close\r\n";
    } else if (version_ < 11) {
      head_ += "Connection: keep-alive\r\n";
    }
    head_ += "\r\n";
    if (head_request_) body = {};

    phase_ = Phase::kWriting;
    SetDeadlineAfter(std::chrono::milliseconds(opts().idle_timeout_ms));
    WriteHeadAndBody(body);
  }

  // Writes head_ and body: first straight to the socket (a response almost
  // always fits the socket's buffer: no operation to allocate, no completion
  // to queue), what is left asynchronously. Then OnWrite.
  void WriteHeadAndBody(std::string_view body) {
    std::array<net::const_buffer, 2> buffers{net::buffer(head_.data(), head_.size()),
                                             net::buffer(body.data(), body.size())};
    error_code ec;
    size_t written = 0;
    if (!socket_.non_blocking()) socket_.non_blocking(true, ec);
    if (!ec) written = socket_.write_some(buffers, ec);
    if (ec == net::error::would_block || ec == net::error::try_again) ec = {};
    if (ec || written == head_.size() + body.size()) {
      // Done (or failed) here. A pipelined request already buffered is
      // handled from the io_context, not from this stack: a client's
      // pipeline must not nest one request's handling in the previous one's.
      if (buffer_.size() == 0) return OnWrite(ec);
      return net::post(socket_.get_executor(), [self = shared_from_this(), ec] { self->OnWrite(ec); });
    }
    if (written < head_.size()) {
      buffers[0] += written;
    } else {
      buffers[0] = net::const_buffer();
      buffers[1] += written - head_.size();
    }
    net::async_write(socket_, buffers, [self = shared_from_this()](error_code wec, size_t) { self->OnWrite(wec); });
  }

  void ReportDone() {
    if (impl_->on_done) {
      std::string_view method = parser_ ? BoundedMethod(SV(parser_->get().method_string())) : std::string_view("other");
      std::string_view route = route_ ? std::string_view(route_->pattern) : std::string_view();
      double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
      try {
        impl_->on_done(method, route, status_, seconds);
      } catch (...) {
        // A metrics hook must not take the connection down.
      }
    }
  }

  // ---- streaming responses ----
  // The head of a streaming response: no Content-Length, the connection closes
  // when the stream ends.
  void WriteStreamHead(Response&& r) {
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

  void OnStreamHead(error_code ec) {
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

  // Reads (and drops) whatever the client sends, to notice it going away.
  void DoStreamRead() {
    buffer_.clear();
    socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](error_code ec, size_t) {
      if (ec || self->phase_ != Phase::kStreaming) return self->Close();
      self->DoStreamRead();
    });
  }

  void OnStreamData(std::shared_ptr<const std::string> data) {
    if (phase_ != Phase::kStreaming || !data || data->empty()) return;
    if (out_bytes_ + data->size() > opts().max_stream_queue_bytes) {
      impl_->Log("stream to " + remote_ + ": the client is not reading; disconnected");
      return Close();
    }
    out_bytes_ += data->size();
    out_.push_back(std::move(data));
    if (!out_writing_) DoStreamWrite();
  }

  void DoStreamWrite() {
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

  void OnWrite(error_code ec) {
    ReportDone();
    if (body_.capacity() > (64u << 10)) std::string().swap(body_);  // do not keep big bodies around
    if (request_.body.capacity() > kKeptRequestBodyBytes) std::string().swap(request_.body);
    if (drop_request_head_) {
      request_ = Request();
      drop_request_head_ = false;
    }
    if (phase_ == Phase::kClosed) return;
    if (ec) return Close();
    if (linger_after_write_) return Linger();
    if (close_after_write_) return Close();
    ++seq_;
    parser_.reset();
    DoIdle(/*after_response=*/true);  // Write() started the idle timeout
  }

  // After an error response sent while the client may still be sending: stop
  // sending, then read and discard for a while so that closing does not reset
  // the connection before the client has read the response.
  void Linger() {
    phase_ = Phase::kLingering;
    if (stop_requested_ || impl_->stopping.load()) return Close();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    SetDeadlineAfter(std::chrono::milliseconds(std::min(kLingerMs, opts().read_timeout_ms)));
    DoDiscard();
  }

  void DoDiscard() {
    buffer_.clear();
    socket_.async_read_some(buffer_.prepare(64 << 10), [self = shared_from_this()](error_code ec, size_t) {
      if (ec || self->phase_ == Phase::kClosed) return self->Close();
      self->DoDiscard();
    });
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    if (writer_) writer_->MarkClosed();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

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

// "host:port", "[v6]:port", ":port".
Result<tcp::endpoint> ResolveListen(const std::string& listen) {
  std::string host;
  std::string port_text;
  if (!listen.empty() && listen.front() == '[') {
    size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return Status::InvalidArgument("invalid listen address '" + listen + "': expected [v6addr]:port");
    }
    host = listen.substr(1, close - 1);
    port_text = listen.substr(close + 2);
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("invalid listen address '" + listen + "': expected host:port");
    }
    host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
    if (host.empty()) host = "0.0.0.0";
  }
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoul(port_text) > 65535) {
    return Status::InvalidArgument("invalid port in listen address '" + listen + "'");
  }
  auto port = static_cast<uint16_t>(std::stoul(port_text));
  error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(address, port);
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, port_text, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return Status::InvalidArgument("cannot resolve listen address '" + listen +
                                   "': " + (ec ? ec.message() : std::string("no address")));
  }
  return results.begin()->endpoint();
}

}  // namespace

// ---------------------------------------------------------------------------
// ResponseBatch

ResponseBatch::ResponseBatch() noexcept { ++t_response_batch.depth; }

ResponseBatch::~ResponseBatch() {
  ResponseBatchState& batch = t_response_batch;
  if (--batch.depth > 0) return;
  std::vector<DeferredResponse> held;
  held.swap(batch.held);
  HandOver(held);
  // The next batch reuses the memory (a chunk's answers: growing the vector
  // anew for every chunk was several large allocations each time), up to a
  // typical chunk's size.
  held.clear();
  if (batch.held.capacity() == 0 && held.capacity() <= kKeptBatchResponses) batch.held.swap(held);
}

// ---------------------------------------------------------------------------
// Accepting

void Server::Impl::DoAccept() {
  const size_t index = next_ioc++ % iocs.size();
  // Raw this: the acceptor's handlers run on io threads, which Stop() joins
  // while the Server still holds the Impl.
  acceptor->async_accept(*iocs[index],
                         [this, index](error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket), index); });
}

// Over the connection limit: a 503 written without reading anything, then the
// connection is closed (a lingering read is not worth a slot here).
void Server::Impl::RejectConnection(tcp::socket socket) {
  struct Rejected {
    tcp::socket socket;
    std::string text;
  };
  static const std::string kBody = R"({"error":"too many connections; retry later"})";
  auto r = std::make_shared<Rejected>(Rejected{std::move(socket), std::string()});
  r->text =
      "HTTP/1.1 503 Service Unavailable\r\nServer: nomnomd\r\nContent-Type: application/json\r\n"
      "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
      std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
  net::async_write(r->socket, net::buffer(r->text), [r](error_code, size_t) {
    error_code ec;
    r->socket.shutdown(tcp::socket::shutdown_send, ec);
    r->socket.close(ec);
  });
}

void Server::Impl::OnAccept(error_code ec, tcp::socket socket, size_t ioc) {
  if (stopping.load() || !acceptor->is_open()) return;
  if (ec) {
    if (ec == net::error::operation_aborted) return;
    // E.g. out of file descriptors: report, back off briefly, go on.
    Log("accept failed: " + ec.message());
    accept_retry->expires_after(std::chrono::milliseconds(50));
    accept_retry->async_wait([this](error_code wec) {
      if (!wec && !stopping.load()) DoAccept();
    });
    return;
  }
  size_t open;
  {
    std::lock_guard lock(mu);
    open = sessions.size();
  }
  if (open >= opts.max_connections) {
    RejectConnection(std::move(socket));
  } else {
    auto session = std::make_shared<Session>(shared_from_this(), std::move(socket), ioc);
    session->Start();
  }
  DoAccept();
}

// ---------------------------------------------------------------------------
// Timeouts

void Server::Impl::ArmSweep(size_t i) {
  if (sweep_stop.load()) return;
  sweeps[i].timer->expires_after(sweep_period);
  sweeps[i].timer->async_wait([this, i](error_code ec) {
    if (ec || sweep_stop.load()) return;
    SweepSessions(i);
    ArmSweep(i);
  });
}

void Server::Impl::SweepSessions(size_t i) {
  auto& list = sweeps[i].sessions;
  const auto now = Clock::now();
  for (size_t k = 0; k < list.size();) {
    if (auto s = list[k].lock()) {
      s->CheckDeadline(now);
      ++k;
    } else {
      list[k] = std::move(list.back());
      list.pop_back();
    }
  }
}

// ---------------------------------------------------------------------------
// Server

Server::Server(ServerOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {
  if (impl_->opts.threads < 1) impl_->opts.threads = 1;
}

void Server::ServeStatic(std::string path, std::string_view body, std::string_view content_type) {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->started) throw std::logic_error("Server::ServeStatic called after Start()");
  }
  StaticContent content{std::string(content_type.empty() ? ContentTypeFor(path) : content_type), body};
  RouteEntry& entry = impl_->exact[path];
  entry.pattern = path;
  entry.Set(MethodRoute{"GET", nullptr, std::move(content)});
}

Server::~Server() { Stop(0); }

void Server::Route(std::string method, std::string pattern, Handler h) {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->started) throw std::logic_error("Server::Route called after Start()");
  }
  if (method.empty() || !h) throw std::invalid_argument("Server::Route: empty method or handler");
  if (pattern.empty() || pattern.front() != '/') {
    throw std::invalid_argument("Server::Route: pattern must start with '/': " + pattern);
  }
  size_t brace = pattern.find('{');
  if (brace == std::string::npos) {
    if (pattern.find('}') != std::string::npos) throw std::invalid_argument("Server::Route: bad pattern " + pattern);
    RouteEntry& entry = impl_->exact[pattern];
    entry.pattern = pattern;
    entry.Set(MethodRoute{std::move(method), std::move(h), std::nullopt});
    return;
  }
  // "/prefix/{name}": one parameter, the last segment.
  if (pattern.back() != '}' || brace == 0 || pattern[brace - 1] != '/' ||
      pattern.find_first_of("{}/", brace + 1) != pattern.size() - 1 || brace + 2 >= pattern.size()) {
    throw std::invalid_argument("Server::Route: a parameter must be the last segment, as in /a/{id}: " + pattern);
  }
  std::string prefix = pattern.substr(0, brace);
  std::string param = pattern.substr(brace + 1, pattern.size() - brace - 2);
  for (auto& r : impl_->parameterized) {
    if (r.prefix == prefix) {
      if (r.param != param) {
        throw std::invalid_argument("Server::Route: " + pattern + " conflicts with " + r.pattern);
      }
      r.Set(MethodRoute{std::move(method), std::move(h), std::nullopt});
      return;
    }
  }
  RouteEntry entry;
  entry.pattern = pattern;
  entry.prefix = std::move(prefix);
  entry.param = std::move(param);
  entry.Set(MethodRoute{std::move(method), std::move(h), std::nullopt});
  impl_->parameterized.push_back(std::move(entry));
  // Longer prefixes first, so the most specific route wins.
  std::stable_sort(impl_->parameterized.begin(), impl_->parameterized.end(),
                   [](const RouteEntry& a, const RouteEntry& b) { return a.prefix.size() > b.prefix.size(); });
}

void Server::OnRequestDone(std::function<void(std::string_view, int, double)> hook) {
  if (!hook) {
    impl_->on_done = nullptr;
    return;
  }
  impl_->on_done = [hook = std::move(hook)](std::string_view, std::string_view route, int status, double s) {
    hook(route, status, s);
  };
}

void Server::OnRequestDone(std::function<void(std::string_view, std::string_view, int, double)> hook) {
  impl_->on_done = std::move(hook);
}

Status Server::Start() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.mu);
    if (impl.started) return Status::InvalidArgument("Server::Start called twice");
    impl.started = true;
  }
  auto endpoint = ResolveListen(impl.opts.listen);
  if (!endpoint.ok()) return endpoint.status();

  for (int i = 0; i < impl.opts.threads; ++i) {
    impl.iocs.push_back(std::make_unique<net::io_context>(1));
    impl.guards.push_back(net::make_work_guard(*impl.iocs.back()));
  }
  impl.acceptor.emplace(*impl.iocs[0]);
  impl.accept_retry.emplace(*impl.iocs[0]);
  // A deadline is noticed within a quarter of the shortest timeout (10-250 ms).
  const int shortest =
      std::min({impl.opts.header_timeout_ms, impl.opts.read_timeout_ms, impl.opts.idle_timeout_ms, kLingerMs});
  impl.sweep_period = std::chrono::milliseconds(std::clamp(shortest / 4, 10, 250));
  impl.sweeps.resize(impl.iocs.size());
  for (size_t i = 0; i < impl.iocs.size(); ++i) impl.sweeps[i].timer.emplace(*impl.iocs[i]);
  auto fail = [&](std::string_view what, const error_code& ec) {
    std::string addr =
        endpoint->address().is_v6() ? "[" + endpoint->address().to_string() + "]" : endpoint->address().to_string();
    return Status::Io("cannot listen on " + addr + ":" + std::to_string(endpoint->port()) + " (" + impl.opts.listen +
                      "): " + std::string(what) + ": " + ec.message());
  };
  error_code ec;
  impl.acceptor->open(endpoint->protocol(), ec);
  if (ec) return fail("socket", ec);
  impl.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("SO_REUSEADDR", ec);
  impl.acceptor->bind(*endpoint, ec);
  if (ec) return fail("bind", ec);
  impl.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen", ec);
  impl.bound_port = impl.acceptor->local_endpoint(ec).port();

  net::post(*impl.iocs[0], [&impl] { impl.DoAccept(); });
  for (size_t i = 0; i < impl.iocs.size(); ++i) net::post(*impl.iocs[i], [&impl, i] { impl.ArmSweep(i); });
  std::lock_guard lock(impl.mu);
  for (auto& ioc : impl.iocs) {
    impl.threads_running++;
    impl.threads.emplace_back([&impl, io = ioc.get()] {
      for (;;) {
        try {
          io->run();
          break;
        } catch (const std::exception& e) {
          impl.Log(std::string("io thread: unexpected exception: ") + e.what());
        } catch (...) {
          impl.Log("io thread: unexpected exception");
        }
      }
      std::lock_guard thread_lock(impl.mu);
      impl.threads_running--;
      impl.cv.notify_all();
    });
  }
  return Status::Ok();
}

uint16_t Server::port() const { return impl_->bound_port; }

void Server::Stop(int timeout_ms) {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.mu);
    if (!impl.started || impl.stopped) return;
    impl.stopped = true;
  }
  if (impl.iocs.empty()) return;  // Start() failed before the io threads

  // 1. Stop accepting; tell every connection.
  impl.stopping.store(true);
  net::post(*impl.iocs[0], [&impl] {
    error_code ec;
    impl.acceptor->close(ec);
    impl.accept_retry->cancel();
  });
  auto for_each_session = [&impl](auto fn) {
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(impl.mu);
      for (auto& w : impl.sessions) {
        if (auto s = w.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) {
      auto ex = s->executor();
      net::post(ex, [s = std::move(s), fn] { fn(*s); });
    }
  };
  for_each_session([](Session& s) { s.OnStop(); });

  // 2. Let requests in flight finish.
  {
    std::unique_lock lock(impl.mu);
    impl.cv.wait_for(lock, std::chrono::milliseconds(std::max(timeout_ms, 0)),
                     [&impl] { return impl.sessions.empty(); });
  }

  // 3. Drop later responses, close what is left, let the io threads run out of work.
  impl.reject_posts.store(true);
  while (impl.posting.load() != 0) std::this_thread::yield();
  for_each_session([](Session& s) { s.ForceClose(); });
  impl.sweep_stop.store(true);
  for (size_t i = 0; i < impl.iocs.size(); ++i) {
    net::post(*impl.iocs[i], [&impl, i] { impl.sweeps[i].timer->cancel(); });
  }
  for (auto& g : impl.guards) g.reset();
  {
    std::unique_lock lock(impl.mu);
    if (!impl.cv.wait_for(lock, std::chrono::seconds(2), [&impl] { return impl.threads_running == 0; })) {
      impl.Log("stop: io threads still busy after 2 s; stopping them");
      for (auto& ioc : impl.iocs) ioc->stop();
    }
  }
  for (auto& t : impl.threads) t.join();
  impl.threads.clear();
}

}  // namespace nomnom::http
