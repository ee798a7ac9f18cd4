// The listener: Server's construction, Start() (resolve, bind, the io
// threads), the accept loop with its connection limit, the deadline sweep,
// and the graceful Stop().
#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/http/session.h"

namespace nomnom::http {

using internal::kLingerMs;

namespace {

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

Server::~Server() { Stop(0); }

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
