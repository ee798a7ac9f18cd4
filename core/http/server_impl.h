// Internal to core/http: Server::Impl, the state the listener
// (listener.cpp), the sessions (session.cpp, responses.cpp) and the router
// (router.cpp) share. Sessions hold it by shared_ptr, so a Responder a
// handler keeps may outlive the Server object. The routes and options are
// written before Start() and read-only after; mu guards the session list and
// the start/stop flags; the atomics are read from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/http/beast.h"
#include "core/http/http_server.h"
#include "core/http/router.h"

namespace nomnom::http {

namespace internal {
class Session;
}  // namespace internal
using internal::RouteEntry;
using internal::Session;
using internal::StringHash;

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

}  // namespace nomnom::http
