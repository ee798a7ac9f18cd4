// Dashboard: nomnomd's live page and the data behind it.
//
//   GET  /dashboard               the page (embedded HTML/CSS/JS, uPlot for the chart)
//   GET  /dashboard/assets/...    its files
//   GET  /dashboard/events        Server-Sent Events: one "data: <snapshot>" event
//                                 a second (the same bytes for every viewer)
//   GET  /dashboard/snapshot      the current snapshot as JSON (`nomnom top`, tests)
//   POST /dashboard/session       {"token": "..."} -> a short-lived session cookie
//
// One thread builds the snapshot once a second from what `source` returns
// (daemon/dashboard_snapshot.h) and writes it to every open event stream;
// viewers cost one queued write each, never a snapshot of their own. At most
// max_viewers streams are open at once (503 beyond).
//
// Token rules: with a bearer token set, /dashboard/events and
// /dashboard/snapshot need either "Authorization: Bearer <token>" or the
// HttpOnly, SameSite=Strict cookie that POST /dashboard/session sets for the
// right token; the page itself and its assets are public (they hold no data).
// Everything here is read-only.
//
// Thread-safety: Register before the server starts; Start and Stop once, from
// one thread. Handlers run on the server's io threads and never block. The
// Dashboard must outlive the http::Server it registered with (streams in
// flight hold only its shared state, but handlers call into it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/http/http_server.h"
#include "daemon/dashboard_sessions.h"
#include "daemon/dashboard_snapshot.h"

namespace nomnom {

struct DashboardOptions {
  std::string bearer_token;             // "" : no token needed
  size_t max_viewers = 64;              // open event streams at most
  int64_t session_ttl_ms = 30 * 60000;  // how long a session cookie is good for
  int interval_ms = 1000;               // one snapshot per interval
  // GET /dashboard/status/{id}: the status look-up (/ingest/status/{id}'s
  // handler) behind the dashboard's own authorization, so that the page's
  // links work with the session cookie (which is scoped to /dashboard and
  // which /ingest does not take). Empty: no such route.
  http::Handler status;
};

class Dashboard {
 public:
  // source is called on the dashboard's thread once per interval; it must not
  // block for long (it reads counters and the monitors' last readings).
  Dashboard(DashboardOptions options, std::function<DashboardInputs()> source);
  ~Dashboard();  // Stop()
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  void Register(http::Server& server);
  // Builds the first snapshot, then starts the thread.
  void Start();
  // Stops the thread and closes every event stream. Idempotent.
  void Stop();

  size_t viewers() const;  // open event streams

  struct Hub;  // shared with the streams' callbacks

 private:
  void ThreadMain();
  void BuildAndSend();
  bool Authorized(const http::Request& req);
  void HandleEvents(http::Request&& req, http::Responder respond);
  void HandleSnapshot(http::Request&& req, http::Responder respond);
  void HandleSession(http::Request&& req, http::Responder respond);
  void HandleStatus(http::Request&& req, http::Responder respond);

  const DashboardOptions options_;
  std::function<DashboardInputs()> source_;
  SnapshotBuilder builder_;  // the thread's (and Start's, before it)
  DashboardSessions sessions_;
  FailureLimiter token_failures_;  // wrong tokens at POST /dashboard/session, per client address
  std::shared_ptr<Hub> hub_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::thread thread_;
};

}  // namespace nomnom
