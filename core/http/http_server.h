// nomnom's HTTP/1.1 server (nomnomd's API, `nomnom worker`'s probes): a small
// asynchronous server on Boost.Beast/Asio.
//
// Handlers are registered with Route() before Start(). Each request is read in
// full (header and body, within the size and time limits), routed, checked for
// the bearer token when it is under /ingest, and given to its handler together
// with a Responder. The handler answers by calling the Responder exactly once,
// from any thread, now or later; the server then writes the response on the
// connection's strand; a response may also be a stream (Response::stream,
// for Server-Sent Events). Connections are HTTP/1.1 keep-alive; pipelined requests
// are answered in order (a connection handles one request at a time).
//
// Handlers run on an io thread: they must not block. Hand slow work to another
// thread and call the Responder from there.
//
// Boost does not leak through this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"

namespace nomnom::http {

struct Request {
  std::string method;  // as sent: "GET", "POST", ...
  std::string path;    // the target's path, as sent (not percent-decoded), without the query
  // The query string, percent-decoded ('+' is a space); a name given twice keeps
  // the last value. A route parameter ("/ingest/status/{id}") is added here too,
  // decoded, under its name.
  std::map<std::string, std::string> query;
  std::string body;
  std::string remote;  // the peer, "ip:port" ("[v6]:port" for IPv6)
  // All header fields as received, in order (names as sent).
  std::vector<std::pair<std::string, std::string>> headers;

  // The value of the first header named name (case-insensitive), "" if absent.
  std::string header(std::string_view name) const;
  // The same, without a copy: valid while this Request and its headers are.
  std::string_view header_view(std::string_view name) const;
};

// The writing end of a streaming response (Server-Sent Events): the head was
// sent, and each Write() appends bytes to the body, in order, until the client
// goes away, the server stops, or Close(). Thread-safe: call from any thread.
// Holding a StreamWriter does not keep the connection open; drop it once
// IsOpen() turns false.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Queues data (shared, so one buffer can go to many connections). False
  // when the connection is closed: nothing more will be written. A client that
  // does not read while more than ServerOptions::max_stream_queue_bytes wait is
  // disconnected.
  virtual bool Write(std::shared_ptr<const std::string> data) = 0;
  virtual bool IsOpen() const = 0;
  // Closes the connection (after nothing: queued data may be dropped).
  virtual void Close() = 0;
};
// Called once, on an io thread, when the head of a streaming response has been
// written; it must not block (keep the writer and return).
using StreamStart = std::function<void(std::shared_ptr<StreamWriter>)>;

struct Response {
  int status = 200;
  std::string content_type;  // empty: application/json
  std::string body;
  // Extra header fields. Server, Content-Length and Connection are set by the
  // server (one given here is ignored); Content-Type comes from content_type.
  std::vector<std::pair<std::string, std::string>> headers;
  // Set on a 2xx response: a streaming response. The head goes out without a
  // Content-Length and with "Connection: close" (the body ends when the
  // connection does), body is ignored, and stream is called with the writer.
  // Nothing more is read from the connection but its closing. A HEAD request
  // gets the head alone.
  StreamStart stream;
};

// Call exactly once, from any thread; later calls are ignored. The server writes
// the response on the session's strand. If every copy of a Responder is
// destroyed without being called, the client gets a 500.
using Responder = std::function<void(Response)>;

// While a ResponseBatch lives on a thread, the responses that Responders
// called on that thread give are collected, and handed to their connections'
// io threads when it ends: one hand-over (a post and at most one wake-up) per
// io thread instead of one per response. For code that answers many requests
// at once, such as a chunk's acknowledgement answering each of its rows.
// Batches nest (the outermost hands over). Thread-confined: create and
// destroy it on the same thread, and do not wait there for the responses it
// holds.
class ResponseBatch {
 public:
  ResponseBatch() noexcept;
  ~ResponseBatch();
  ResponseBatch(const ResponseBatch&) = delete;
  ResponseBatch& operator=(const ResponseBatch&) = delete;
};
using Handler = std::function<void(Request&&, Responder)>;

struct ServerOptions {
  // host:port, [v6addr]:port, or :port (all IPv4 interfaces). Host may be a name.
  std::string listen = "127.0.0.1:8080";
  int threads = 2;                     // io threads (one io_context each)
  size_t max_body_bytes = 16 << 20;    // larger bodies get 413 and the connection is closed
  size_t max_header_bytes = 16 << 10;  // larger request headers get 431 and a close
  // A request must arrive in full (header and body) within this time from its
  // first byte; otherwise the connection is closed.
  int read_timeout_ms = 30000;
  // Its header must arrive within this time from its first byte (slow
  // clients that trickle a header in hold a connection no longer than this).
  int header_timeout_ms = 10000;
  // Open connections at most; a connection beyond them gets a 503 and is
  // closed at once (only while that many are really open).
  size_t max_connections = 10000;
  // How long a keep-alive connection may wait for the first byte of its next
  // request (and the first one after accept). Also the limit for writing a response.
  int idle_timeout_ms = 60000;
  // A streaming response whose client lets more than this many bytes wait is
  // disconnected.
  size_t max_stream_queue_bytes = 1 << 20;
  std::string bearer_token;  // if non-empty, required on /ingest and paths under /ingest/
  // Where the server reports what it cannot tell a client: a handler that threw,
  // accept errors. Default (empty): one line on stderr.
  std::function<void(std::string_view)> log;
};

// A JSON error body, {"error": message}.
Response JsonError(int status, std::string_view message);
// s as a JSON string literal, quotes included; bytes that are not UTF-8 are
// written as the text \xNN.
std::string JsonQuote(std::string_view s);

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Stop(0) if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers h for method and pattern; call before Start(). pattern is either an
  // exact path ("/health") or a prefix ending in one parameter segment
  // ("/ingest/status/{id}"), which matches one non-empty segment whose decoded
  // value goes into request.query["id"]. Exact routes win over parameter routes.
  // Registering the same method and pattern again replaces the handler. A HEAD
  // request is served by the GET handler (without the body) unless HEAD has its
  // own. Throws std::invalid_argument for a malformed pattern and
  // std::logic_error after Start().
  void Route(std::string method, std::string pattern, Handler h);

  // Serves body on GET (and HEAD) path without a handler: the bytes as they
  // are, with "Cache-Control: public, max-age=3600" and content_type (empty:
  // from the path's extension: .html, .css, .js, .json, .png, .txt, LICENSE and
  // NOTICE; else application/octet-stream). body is not copied: it must
  // outlive the server (static data, e.g. files compiled into the program). A
  // Route() for GET on the same path replaces it, and the other way round.
  // Throws std::logic_error after Start().
  void ServeStatic(std::string path, std::string_view body, std::string_view content_type = {});

  // Binds (an error naming the address if it cannot), starts the io threads and
  // returns once listening. Not restartable.
  Status Start();

  // The bound port (useful with port 0); 0 before Start().
  uint16_t port() const;

  // Graceful stop: stop accepting, close idle keep-alive connections, let
  // requests in flight (being read or handled) finish and be answered, with
  // "Connection: close", for up to timeout_ms; then close what is left and stop
  // the io threads. Responders called after that are ignored. Idempotent.
  // Call it from a thread of your own, never from a handler or a hook (it joins
  // the io threads).
  void Stop(int timeout_ms);

  // Hook for latency histograms: called once per finished request (response
  // written, or the write failed) with the route pattern ("" when no route
  // matched), the status and the seconds from the request's first byte. The
  // method is one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS or "other",
  // so label sets built from these stay bounded whatever clients send. Called
  // concurrently from the io threads; must not block. Set before Start().
  void OnRequestDone(std::function<void(std::string_view route, int status, double seconds)> hook);
  // The same with the request method first.
  void OnRequestDone(
      std::function<void(std::string_view method, std::string_view route, int status, double seconds)> hook);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace nomnom::http
