#include "daemon/dashboard.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/log.h"
#include "daemon/dashboard_page.h"
#include "daemon/embedded_files.h"

namespace nomnom {

namespace {

using json = nlohmann::json;

constexpr std::string_view kCookie = "nomnom_dashboard";
constexpr std::string_view kAssetPrefix = "/dashboard/";
// The page's scripts and styles come from nomnomd only; nothing inline.
constexpr std::string_view kPagePolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view ContentTypeOf(std::string_view path) {
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  return "text/plain; charset=utf-8";
}

http::Response Unauthorized() {
  http::Response r = http::JsonError(401, "missing or invalid bearer token or dashboard session");
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"nomnomd\"");
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace

// What the event streams share with the dashboard: the viewers and the last
// event. Kept by a shared_ptr so a stream callback never outlives it.
struct Dashboard::Hub {
  explicit Hub(size_t max) : max_viewers(max) {}
  const size_t max_viewers;
  mutable std::mutex mu;
  std::vector<std::shared_ptr<http::StreamWriter>> viewers;  // guarded by mu
  size_t reserved = 0;                                       // guarded by mu: accepted, head not yet written
  std::shared_ptr<const std::string> snapshot;               // guarded by mu: the JSON
  std::shared_ptr<const std::string> event;                  // guarded by mu: "data: <JSON>\n\n"
  bool closed = false;                                       // guarded by mu: Stop() ran

  void Prune() {  // mu held
    std::erase_if(viewers, [](const auto& w) { return !w->IsOpen(); });
  }
};

Dashboard::Dashboard(DashboardOptions options, std::function<DashboardInputs()> source)
    : options_(std::move(options)),
      source_(std::move(source)),
      sessions_(options_.session_ttl_ms, 10000),
      token_failures_(FailureLimiter::Limits{}),
      hub_(std::make_shared<Hub>(options_.max_viewers)) {}

Dashboard::~Dashboard() { Stop(); }

void Dashboard::Register(http::Server& server) {
  auto bind = [this](void (Dashboard::*fn)(http::Request&&, http::Responder)) {
    return
        [this, fn](http::Request&& req, http::Responder respond) { (this->*fn)(std::move(req), std::move(respond)); };
  };
  server.Route("GET", "/dashboard/events", bind(&Dashboard::HandleEvents));
  server.Route("GET", "/dashboard/snapshot", bind(&Dashboard::HandleSnapshot));
  server.Route("POST", "/dashboard/session", bind(&Dashboard::HandleSession));
  if (options_.status) server.Route("GET", "/dashboard/status/{id}", bind(&Dashboard::HandleStatus));
  // The page and its files, from the embedded assets (daemon/assets/dashboard/).
  for (size_t i = 0; i < http::embedded::kFileCount; ++i) {
    const auto& f = http::embedded::kFiles[i];
    const std::string_view path = f.url_path;
    if (!path.starts_with(kAssetPrefix)) continue;
    const std::string_view body(f.begin, static_cast<size_t>(f.end - f.begin));
    const bool page = path == "/dashboard/index.html";
    auto serve = [this, body, page, type = ContentTypeOf(path)](http::Request&& req, http::Responder respond) {
      http::Response r;
      r.content_type = std::string(type);
      r.headers.emplace_back("X-Content-Type-Options", "nosniff");
      if (page) {
        // The page holds no data, except for a viewer who may see it: then it
        // comes with the current snapshot (dashboard_page.h).
        std::shared_ptr<const std::string> snapshot;
        if (Authorized(req)) {
          std::lock_guard<std::mutex> lock(hub_->mu);
          snapshot = hub_->snapshot;
        }
        if (snapshot) {
          r.body = RenderDashboardPage(body, *snapshot);
        } else {
          r.body.assign(body);
        }
        r.headers.emplace_back("Content-Security-Policy", std::string(kPagePolicy));
        r.headers.emplace_back("Cache-Control", snapshot ? "no-store" : "no-cache");
      } else {
        r.body.assign(body);
        r.headers.emplace_back("Cache-Control", "public, max-age=3600");
      }
      respond(std::move(r));
    };
    server.Route("GET", std::string(path), serve);
    if (page) server.Route("GET", "/dashboard", serve);
  }
}

void Dashboard::Start() {
  BuildAndSend();
  thread_ = std::thread([this] { ThreadMain(); });
}

void Dashboard::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::vector<std::shared_ptr<http::StreamWriter>> viewers;
  {
    std::lock_guard<std::mutex> lock(hub_->mu);
    hub_->closed = true;
    viewers.swap(hub_->viewers);
  }
  for (auto& w : viewers) w->Close();
}

size_t Dashboard::viewers() const {
  std::lock_guard<std::mutex> lock(hub_->mu);
  size_t n = 0;
  for (const auto& w : hub_->viewers) n += w->IsOpen() ? 1 : 0;
  return n;
}

void Dashboard::ThreadMain() {
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    next += std::chrono::milliseconds(options_.interval_ms);
    {
      std::unique_lock<std::mutex> lock(stop_mu_);
      if (stop_cv_.wait_until(lock, next, [this] { return stopping_; })) return;
    }
    // A thread's top level: nothing may escape.
    try {
      BuildAndSend();
    } catch (const std::exception& e) {
      LogWarn("dashboard: cannot build a snapshot: {}", e.what());
    }
    // After a long stall, do not try to catch up.
    if (std::chrono::steady_clock::now() > next + std::chrono::milliseconds(options_.interval_ms)) {
      next = std::chrono::steady_clock::now();
    }
  }
}

void Dashboard::BuildAndSend() {
  const DashboardInputs in = source_();
  auto snapshot = std::make_shared<const std::string>(builder_.Build(in));
  auto event = std::make_shared<const std::string>("data: " + *snapshot + "\n\n");
  std::vector<std::shared_ptr<http::StreamWriter>> viewers;
  {
    std::lock_guard<std::mutex> lock(hub_->mu);
    hub_->snapshot = snapshot;
    hub_->event = event;
    hub_->Prune();
    viewers = hub_->viewers;
  }
  // Outside the lock: a write only queues (the io thread sends it).
  for (auto& w : viewers) w->Write(event);
}

bool Dashboard::Authorized(const http::Request& req) {
  if (options_.bearer_token.empty()) return true;
  const std::string auth = req.header("Authorization");
  std::string_view a = auth;
  while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
  if (a.size() > 7 && (a.substr(0, 7) == "Bearer " || a.substr(0, 7) == "bearer ")) {
    std::string_view t = a.substr(7);
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    if (ConstantTimeEqual(t, options_.bearer_token)) return true;
  }
  const std::string id = CookieValue(req.header("Cookie"), kCookie);
  return !id.empty() && sessions_.Valid(id, NowMs());
}

void Dashboard::HandleSnapshot(http::Request&& req, http::Responder respond) {
  if (!Authorized(req)) return respond(Unauthorized());
  std::shared_ptr<const std::string> snapshot;
  {
    std::lock_guard<std::mutex> lock(hub_->mu);
    snapshot = hub_->snapshot;
  }
  if (!snapshot) return respond(http::JsonError(503, "no snapshot yet"));
  http::Response r;
  r.body = *snapshot;
  r.headers.emplace_back("Cache-Control", "no-store");
  respond(std::move(r));
}

void Dashboard::HandleEvents(http::Request&& req, http::Responder respond) {
  if (!Authorized(req)) return respond(Unauthorized());
  // Holds a viewer's place until its stream starts (or its response is dropped).
  struct Reservation {
    explicit Reservation(std::shared_ptr<Hub> h) : hub(std::move(h)) {}
    ~Reservation() {
      std::lock_guard<std::mutex> lock(hub->mu);
      --hub->reserved;
    }
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    std::shared_ptr<Hub> hub;
  };
  {
    std::lock_guard<std::mutex> lock(hub_->mu);
    hub_->Prune();
    if (hub_->closed || hub_->viewers.size() + hub_->reserved >= hub_->max_viewers) {
      http::Response r = http::JsonError(503, hub_->closed ? "shutting down"
                                                           : "too many dashboard viewers (at most " +
                                                                 std::to_string(hub_->max_viewers) + "); retry later");
      r.headers.emplace_back("Retry-After", "5");
      return respond(std::move(r));
    }
    ++hub_->reserved;
  }
  auto reservation = std::make_shared<Reservation>(hub_);
  http::Response r;
  r.content_type = "text/event-stream; charset=utf-8";
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Accel-Buffering", "no");  // proxies: do not buffer the stream
  r.stream = [reservation](std::shared_ptr<http::StreamWriter> w) {
    const std::shared_ptr<Hub>& hub = reservation->hub;
    std::shared_ptr<const std::string> first;
    {
      std::lock_guard<std::mutex> lock(hub->mu);
      if (hub->closed) {
        w->Close();
        return;
      }
      hub->viewers.push_back(w);
      first = hub->event;
    }
    // The browser reconnects after 2 s when the stream breaks; the current
    // snapshot now, the next ones as they are built.
    w->Write(std::make_shared<const std::string>("retry: 2000\n\n"));
    if (first) w->Write(first);
  };
  respond(std::move(r));
}

void Dashboard::HandleStatus(http::Request&& req, http::Responder respond) {
  if (!Authorized(req)) return respond(Unauthorized());
  options_.status(std::move(req), std::move(respond));
}

void Dashboard::HandleSession(http::Request&& req, http::Responder respond) {
  http::Response r;
  r.headers.emplace_back("Cache-Control", "no-store");
  if (options_.bearer_token.empty()) {
    r.body = R"({"status":"no token required"})";
    return respond(std::move(r));
  }
  std::string ct = req.header("Content-Type");
  if (!ct.starts_with("application/json")) {
    return respond(http::JsonError(415, "send {\"token\": \"...\"} as application/json"));
  }
  std::string token;
  try {
    json j = json::parse(req.body);
    if (j.is_object() && j.contains("token") && j["token"].is_string()) token = j["token"].get<std::string>();
  } catch (const json::exception&) {
    return respond(http::JsonError(400, "the body is not JSON; send {\"token\": \"...\"}"));
  }
  // Guessing is bounded: a few wrong tokens per address, and some in all, a
  // minute; beyond that 429 until the minute ends (right or wrong token).
  const std::string peer = PeerAddress(req.remote);
  if (const int64_t wait_ms = token_failures_.RetryAfterMs(peer, NowMs()); wait_ms > 0) {
    http::Response busy = http::JsonError(429, "too many wrong tokens; try again later");
    busy.headers.emplace_back("Retry-After", std::to_string((wait_ms + 999) / 1000));
    return respond(std::move(busy));
  }
  if (!ConstantTimeEqual(token, options_.bearer_token)) {
    token_failures_.Failed(peer, NowMs());
    return respond(Unauthorized());
  }
  token_failures_.Succeeded(peer);
  const std::string id = sessions_.Create(NowMs());
  r.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=" + id + "; Path=/dashboard; Max-Age=" +
                                           std::to_string(options_.session_ttl_ms / 1000) +
                                           "; HttpOnly; SameSite=Strict");
  r.body = R"({"status":"ok","expires_in_seconds":)" + std::to_string(options_.session_ttl_ms / 1000) + "}";
  respond(std::move(r));
}

}  // namespace nomnom
