// One connection: read, parse, dispatch, write (session.h).
#include "core/http/session.h"

#include <algorithm>
#include <array>
#include <exception>
#include <tuple>

namespace nomnom::http::internal {

Session::Session(std::shared_ptr<Server::Impl> impl, tcp::socket&& socket, size_t ioc)
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

Session::~Session() {
  std::lock_guard lock(impl_->mu);
  if (registered_) impl_->sessions.erase(registration_);
  if (impl_->sessions.empty()) impl_->cv.notify_all();
}

void Session::Start() {
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

void Session::DoIdle(bool after_response) {
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

void Session::ReadIdle() {
  socket_.async_read_some(buffer_.prepare(kFirstReadBytes),
                          InReadOpMemory(&read_op_memory_, [self = shared_from_this()](error_code ec, size_t n) {
                            self->buffer_.commit(n);
                            if (ec || n == 0) return self->Close();
                            self->DoReadHeader();
                          }));
}

void Session::DoReadHeader() {
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

void Session::ArmReadDeadline(int ms) {
  if (read_deadline_set_) return;
  read_deadline_set_ = true;
  SetDeadlineAt(started_ + std::chrono::milliseconds(ms > 0 ? ms : opts().read_timeout_ms));
}

void Session::OnHeader(error_code ec) {
  if (phase_ == Phase::kClosed) return;
  if (ec) return OnReadError(ec);
  const auto& req = parser_->get();
  std::string_view target = SV(req.target());
  std::string_view path = target.substr(0, target.find('?'));
  route_ = impl_->Match(path, param_);
  // A Transfer-Encoding other than exactly "chunked" leaves the body's length
  // unknown (Beast would take it as empty and read the body as the next
  // request): refused, and the connection closed, before anything is read.
  if (req.find(bhttp::field::transfer_encoding) != req.end()) {
    std::string codings;
    for (const auto& field : req) {
      if (field.name() != bhttp::field::transfer_encoding) continue;
      if (!codings.empty()) codings += ',';
      codings += SV(field.value());
    }
    if (const int status = TransferCodingStatus(codings); status != 0) {
      return WriteError(JsonError(status, status == 400 ? "Transfer-Encoding must end in chunked, once"
                                                        : "only the chunked transfer coding is supported"));
    }
  }
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

void Session::DoReadBody() {
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

void Session::OnReadError(error_code ec) {
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

void Session::WriteError(Response&& r) {
  phase_ = Phase::kHandling;
  keep_alive_ = false;
  head_request_ = false;
  version_ = 11;
  Write(std::move(r), std::nullopt, /*linger=*/true);
}

void Session::OnRequest() {
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

Response Session::NoHandlerResponse(std::string_view path, std::string_view method) const {
  if (route_ == nullptr) return JsonError(404, "no route for " + std::string(path));
  Response r = JsonError(405, "method " + std::string(method) + " not allowed on " + route_->pattern);
  r.headers.emplace_back("Allow", route_->Allow());
  return r;
}

bool Session::Authorized(std::string_view authorization) const {
  authorization = Trim(authorization);
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size() || !IEquals(authorization.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  return ConstantTimeEquals(Trim(authorization.substr(kScheme.size())), opts().bearer_token);
}

void Session::Write(Response&& r, std::optional<std::string_view> static_body, bool linger) {
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

void Session::WriteHeadAndBody(std::string_view body) {
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

void Session::ReportDone() {
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

void Session::OnWrite(error_code ec) {
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

void Session::Linger() {
  phase_ = Phase::kLingering;
  if (stop_requested_ || impl_->stopping.load()) return Close();
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  SetDeadlineAfter(std::chrono::milliseconds(std::min(kLingerMs, opts().read_timeout_ms)));
  DoDiscard();
}

void Session::DoDiscard() {
  buffer_.clear();
  socket_.async_read_some(buffer_.prepare(64 << 10), [self = shared_from_this()](error_code ec, size_t) {
    if (ec || self->phase_ == Phase::kClosed) return self->Close();
    self->DoDiscard();
  });
}

void Session::Close() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  if (writer_) writer_->MarkClosed();
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace nomnom::http::internal
