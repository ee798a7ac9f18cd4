// nomnomd's HTTP layer (core/http/http_server.h) over real sockets on 127.0.0.1.
// Needs no database. Run alone with: nomnom_integration_tests "[http]"
#include "core/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "daemon/embedded_files.h"

namespace {

using nomnom::http::Request;
using nomnom::http::Responder;
using nomnom::http::Response;
using nomnom::http::Server;
using nomnom::http::ServerOptions;
using Clock = std::chrono::steady_clock;

long long MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Throws (rather than Catch's REQUIRE, which is not thread-safe) so that the
// client works from the test's own threads too.
void Expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("http test client: " + what);
}

// A blocking HTTP/1.1 client on a plain socket, with timeouts on every wait.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    Expect(fd_ >= 0, "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    Expect(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "connect");
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends all of data; false if the peer closed or reset the connection.
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response; nullopt on timeout or when the connection closes first.
  std::optional<HttpResponse> Read(int timeout_ms = 5000, bool head = false) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(deadline)) return std::nullopt;
    }
    HttpResponse r;
    std::string head_text = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head_text.find("\r\n");
    std::string status_line = head_text.substr(0, line_end);
    Expect(status_line.rfind("HTTP/1.1 ", 0) == 0, "bad status line: " + status_line);
    r.status = std::stoi(status_line.substr(9, 3));
    size_t pos = line_end == std::string::npos ? head_text.size() : line_end + 2;
    while (pos < head_text.size()) {
      size_t next = head_text.find("\r\n", pos);
      if (next == std::string::npos) next = head_text.size();
      std::string line = head_text.substr(pos, next - pos);
      size_t colon = line.find(':');
      Expect(colon != std::string::npos, "bad header line: " + line);
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      Expect(r.headers.count(name) == 0, "duplicated header field " + name);
      r.headers[name] = value;
      pos = next + 2;
    }
    if (r.status >= 200 && r.status != 204 && !head) {
      Expect(r.headers.count("content-length") == 1, "no Content-Length");
      size_t length = std::stoul(r.headers["content-length"]);
      while (buf_.size() < length) {
        if (!Fill(deadline)) return std::nullopt;
      }
      r.body = buf_.substr(0, length);
      buf_.erase(0, length);
    }
    return r;
  }

  // True when the server closes the connection (EOF or reset) within timeout_ms;
  // any data received meanwhile is discarded.
  bool WaitClosed(int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      int left =
          static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) return false;
      char tmp[4096];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return true;
    }
  }

  // Reads until needle has arrived (a streaming body); drops it and what came
  // before. False on timeout or when the connection closes first.
  bool ReadUntil(std::string_view needle, int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t at;
    while ((at = buf_.find(needle)) == std::string::npos) {
      if (!Fill(deadline)) return false;
    }
    buf_.erase(0, at + needle.size());
    return true;
  }

  // Sends FIN: the client will send nothing more.
  void ShutdownSend() { ::shutdown(fd_, SHUT_WR); }

  HttpResponse Request(const std::string& method, const std::string& target, const std::string& body = "",
                       const std::vector<std::string>& headers = {}) {
    Expect(Send(Format(method, target, body, headers)), "send failed");
    auto r = Read(5000, method == "HEAD");
    Expect(r.has_value(), "no response to " + method + " " + target);
    return *r;
  }

  static std::string Format(const std::string& method, const std::string& target, const std::string& body = "",
                            const std::vector<std::string>& headers = {}) {
    std::string out = method + " " + target + " HTTP/1.1\r\nHost: test\r\n";
    for (const auto& h : headers) out += h + "\r\n";
    if (!body.empty() || method == "POST") out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    out += "\r\n";
    out += body;
    return out;
  }

 private:
  bool Fill(Clock::time_point deadline) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
};

ServerOptions TestOptions() {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.threads = 2;
  return o;
}

Response Text(std::string body, int status = 200) {
  Response r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

// Threads that answer later; joined at scope end.
struct Later {
  std::vector<std::thread> threads;
  std::mutex mu;
  void Run(std::function<void()> fn) {
    std::lock_guard lock(mu);
    threads.emplace_back(std::move(fn));
  }
  ~Later() {
    std::lock_guard lock(mu);
    for (auto& t : threads) t.join();
  }
};

void Start(Server& server) {
  auto st = server.Start();
  INFO(st.message());
  REQUIRE(st.ok());
  REQUIRE(server.port() != 0);
}

}  // namespace

TEST_CASE("http: exact routes, parameter routes and the query", "[http]") {
  Server server(TestOptions());
  server.Route("GET", "/hello", [](Request&&, Responder respond) { respond(Text("hi")); });
  server.Route("GET", "/items/{id}", [](Request&& req, Responder respond) {
    respond(Text(req.path + "|" + req.query["id"] + "|" + req.query["x"] + "|" + req.query["y"]));
  });
  server.Route("GET", "/items/special", [](Request&&, Responder respond) { respond(Text("special")); });
  server.Route("POST", "/echo", [](Request&& req, Responder respond) {
    Response r = Text(req.method + "|" + req.body + "|" + req.header("x-test") + "|" + req.header("X-Absent") + "|" +
                      req.remote);
    r.headers.emplace_back("X-Reply", "yes");
    r.headers.emplace_back("X-Bad", "a\r\nInjected: 1");  // dropped: would split the header
    respond(std::move(r));
  });
  Start(server);
  Client c(server.port());

  auto r = c.Request("GET", "/hello");
  CHECK(r.status == 200);
  CHECK(r.body == "hi");
  CHECK(r.header("server") == "nomnomd");
  CHECK(r.header("content-type") == "text/plain");
  CHECK(r.header("content-length") == "2");

  r = c.Request("GET", "/items/a%2Fb%20c?x=1+2&y=%C3%A9");
  CHECK(r.status == 200);
  CHECK(r.body == "/items/a%2Fb%20c|a/b c|1 2|\xC3\xA9");
  r = c.Request("GET", "/items/special");
  CHECK(r.body == "special");                           // exact beats parameter
  CHECK(c.Request("GET", "/items/").status == 404);     // the parameter is not empty
  CHECK(c.Request("GET", "/items/a/b").status == 404);  // one segment only

  r = c.Request("POST", "/echo", "payload", {"X-Test: value"});
  CHECK(r.status == 200);
  CHECK(r.body.rfind("POST|payload|value||127.0.0.1:", 0) == 0);
  CHECK(r.header("x-reply") == "yes");
  CHECK(r.header("x-bad").empty());
  CHECK(r.header("injected").empty());

  r = c.Request("HEAD", "/hello");  // served by GET, without the body
  CHECK(r.status == 200);
  CHECK(r.header("content-length") == "2");
  CHECK(c.Request("GET", "/hello").body == "hi");  // the connection is still in sync
}

TEST_CASE("http: unknown path is 404, wrong method 405, both JSON", "[http]") {
  Server server(TestOptions());
  server.Route("GET", "/hello", [](Request&&, Responder respond) { respond(Text("hi")); });
  server.Route("PUT", "/hello", [](Request&&, Responder respond) { respond(Text("put")); });
  Start(server);
  Client c(server.port());

  auto r = c.Request("GET", "/nope");
  CHECK(r.status == 404);
  CHECK(r.header("content-type") == "application/json");
  CHECK(nlohmann::json::parse(r.body).at("error").is_string());

  r = c.Request("POST", "/hello", "x");
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "GET, PUT, HEAD");
  CHECK(nlohmann::json::parse(r.body).at("error").is_string());
  // A small body is read: the connection goes on.
  CHECK(r.header("connection").empty());
  CHECK(c.Request("PUT", "/hello", "x").body == "put");
}

TEST_CASE("http: invalid routes and listen addresses are rejected", "[http]") {
  Server server(TestOptions());
  auto noop = [](Request&&, Responder respond) { respond(Response{}); };
  CHECK_THROWS_AS(server.Route("GET", "relative", noop), std::invalid_argument);
  CHECK_THROWS_AS(server.Route("GET", "/a/{id}/b", noop), std::invalid_argument);
  CHECK_THROWS_AS(server.Route("GET", "/a/{}", noop), std::invalid_argument);
  CHECK_THROWS_AS(server.Route("GET", "/a{id}", noop), std::invalid_argument);
  server.Route("GET", "/a/{id}", noop);
  CHECK_THROWS_AS(server.Route("GET", "/a/{other}", noop), std::invalid_argument);

  for (const char* bad : {"nonsense", "127.0.0.1:", "127.0.0.1:99999", "[::1:80", "127.0.0.1:http"}) {
    ServerOptions o = TestOptions();
    o.listen = bad;
    Server s(o);
    auto st = s.Start();
    CHECK_FALSE(st.ok());
    CHECK(st.message().find(bad) != std::string::npos);
  }

  // A port in use: the error names the address.
  Start(server);
  ServerOptions o = TestOptions();
  o.listen = "127.0.0.1:" + std::to_string(server.port());
  Server second(o);
  auto st = second.Start();
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("127.0.0.1:" + std::to_string(server.port())) != std::string::npos);
  CHECK_THROWS_AS(server.Route("GET", "/late", noop), std::logic_error);
}

TEST_CASE("http: IPv6 loopback listen address", "[http]") {
  ServerOptions o = TestOptions();
  o.listen = "[::1]:0";
  Server server(o);
  auto st = server.Start();
  if (!st.ok()) {
    WARN("no IPv6 loopback here: " << st.message());
    return;
  }
  CHECK(server.port() != 0);
}

TEST_CASE("http: a body over the limit gets 413 and the server stays healthy", "[http]") {
  ServerOptions o = TestOptions();
  o.max_body_bytes = 1024;
  Server server(o);
  std::atomic<int> calls{0};
  server.Route("POST", "/echo", [&](Request&& req, Responder respond) {
    ++calls;
    respond(Text(std::to_string(req.body.size())));
  });
  server.Route("GET", "/hello", [](Request&&, Responder respond) { respond(Text("hi")); });
  Start(server);

  SECTION("declared by Content-Length, answered without reading the body") {
    Client c(server.port());
    REQUIRE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n"));
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->header("connection") == "close");
    auto j = nlohmann::json::parse(r->body);
    CHECK(j.at("limit") == 1024);
    CHECK(j.at("error").is_string());
    CHECK(c.WaitClosed(3000));
  }
  SECTION("a large body sent in full still gets its 413") {
    Client c(server.port());
    std::string body(2 << 20, 'x');
    c.Send(Client::Format("POST", "/echo", body));  // may fail part way: the server stops reading
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 413);
  }
  SECTION("chunked, over the limit while reading") {
    Client c(server.port());
    std::string chunk(800, 'y');
    std::string req = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    req += "320\r\n" + chunk + "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n";
    REQUIRE(c.Send(req));
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 413);
  }
  SECTION("exactly at the limit is fine") {
    Client c(server.port());
    auto r = c.Request("POST", "/echo", std::string(1024, 'z'));
    CHECK(r.status == 200);
    CHECK(r.body == "1024");
  }
  Client after(server.port());
  CHECK(after.Request("GET", "/hello").body == "hi");
  CHECK(calls.load() <= 1);
}

TEST_CASE("http: oversized header gets 431, garbage gets 400", "[http]") {
  ServerOptions o = TestOptions();
  o.max_header_bytes = 1024;
  Server server(o);
  server.Route("GET", "/hello", [](Request&&, Responder respond) { respond(Text("hi")); });
  Start(server);
  {
    Client c(server.port());
    auto r = c.Request("GET", "/hello", "", {"X-Big: " + std::string(4000, 'a')});
    CHECK(r.status == 431);
    CHECK(c.WaitClosed(3000));
  }
  {
    Client c(server.port());
    REQUIRE(c.Send("THIS IS NOT HTTP\r\n\r\n"));
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(c.WaitClosed(3000));
  }
  Client c(server.port());
  CHECK(c.Request("GET", "/hello").status == 200);
}

TEST_CASE("http: keep-alive serves 100 requests on one connection", "[http]") {
  Server server(TestOptions());
  server.Route("GET", "/whoami", [](Request&& req, Responder respond) { respond(Text(req.remote)); });
  Start(server);
  Client c(server.port());
  std::string first;
  for (int i = 0; i < 100; ++i) {
    auto r = c.Request("GET", "/whoami");
    REQUIRE(r.status == 200);
    CHECK(r.header("connection").empty());
    if (i == 0) first = r.body;
    REQUIRE(r.body == first);  // same peer port: the same connection
  }

  // HTTP/1.0 without keep-alive is closed after the response.
  Client old(server.port());
  REQUIRE(old.Send("GET /whoami HTTP/1.0\r\n\r\n"));
  auto r = old.Read();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("connection") == "close");
  CHECK(old.WaitClosed(2000));

  // Connection: close from an HTTP/1.1 client too.
  Client closing(server.port());
  auto r2 = closing.Request("GET", "/whoami", "", {"Connection: close"});
  CHECK(r2.header("connection") == "close");
  CHECK(closing.WaitClosed(2000));
}

TEST_CASE("http: pipelined requests are answered in order", "[http]") {
  Server server(TestOptions());
  Later later;
  server.Route("GET", "/n/{n}", [&](Request&& req, Responder respond) {
    int n = std::stoi(req.query["n"]);
    if (n % 2 == 0) {
      respond(Text(req.query["n"]));
      return;
    }
    // Odd ones answer late, from another thread.
    later.Run([n, respond] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + n));
      respond(Text(std::to_string(n)));
    });
  });
  Start(server);
  Client c(server.port());
  std::string all;
  for (int i = 0; i < 10; ++i) all += Client::Format("GET", "/n/" + std::to_string(i));
  REQUIRE(c.Send(all));
  for (int i = 0; i < 10; ++i) {
    auto r = c.Read();
    REQUIRE(r);
    CHECK(r->body == std::to_string(i));
  }
}

TEST_CASE("http: the read timeout closes a connection with half a request", "[http]") {
  ServerOptions o = TestOptions();
  o.read_timeout_ms = 200;
  o.idle_timeout_ms = 60000;
  Server server(o);
  std::atomic<int> calls{0};
  server.Route("POST", "/echo", [&](Request&&, Responder respond) {
    ++calls;
    respond(Text("x"));
  });
  Start(server);

  SECTION("half a header") {
    Client c(server.port());
    auto t0 = Clock::now();
    REQUIRE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\n"));
    CHECK(c.WaitClosed(3000));
    CHECK(MsSince(t0) >= 150);
  }
  SECTION("half a body") {
    Client c(server.port());
    auto t0 = Clock::now();
    REQUIRE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345"));
    CHECK(c.WaitClosed(3000));
    CHECK(MsSince(t0) >= 150);
  }
  SECTION("a slow trickle does not extend the deadline") {
    Client c(server.port());
    auto t0 = Clock::now();
    std::string req = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n";
    bool closed = false;
    for (char ch : req + "0123456789") {
      if (!c.Send(std::string_view(&ch, 1))) {
        closed = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!closed) closed = c.WaitClosed(3000);
    CHECK(closed);
    CHECK(MsSince(t0) < 2000);
  }
  CHECK(calls.load() == 0);
}

TEST_CASE("http: the idle timeout closes a silent keep-alive connection", "[http]") {
  ServerOptions o = TestOptions();
  o.idle_timeout_ms = 200;
  Server server(o);
  server.Route("GET", "/hello", [](Request&&, Responder respond) { respond(Text("hi")); });
  Start(server);
  Client c(server.port());
  CHECK(c.Request("GET", "/hello").status == 200);
  auto t0 = Clock::now();
  CHECK(c.WaitClosed(3000));
  CHECK(MsSince(t0) >= 150);
}

TEST_CASE("http: a slow handler gets the read timeout even late in the idle time", "[http]") {
  // The request arrives whole after most of the idle time has passed; the
  // handler then takes longer than what was left of it. The connection must
  // not be closed under the handler: it runs under the read timeout.
  ServerOptions o = TestOptions();
  o.idle_timeout_ms = 400;
  o.read_timeout_ms = 2000;
  Server server(o);
  server.Route("GET", "/slow", [](Request&&, Responder respond) {
    std::thread([respond = std::move(respond)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      respond(Text("late"));
    }).detach();
  });
  Start(server);
  Client c(server.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto r = c.Request("GET", "/slow");
  CHECK(r.status == 200);
  CHECK(r.body == "late");
  // The same after a response (whose write started the idle time).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto r2 = c.Request("GET", "/slow");
  CHECK(r2.status == 200);
  CHECK(r2.body == "late");
}

TEST_CASE("http: bearer token on /ingest", "[http]") {
  ServerOptions o = TestOptions();
  o.bearer_token = "s3cret-token";
  Server server(o);
  server.Route("POST", "/ingest/message", [](Request&&, Responder respond) { respond(Text("in", 202)); });
  server.Route("GET", "/ingest/status/{id}", [](Request&& req, Responder respond) { respond(Text(req.query["id"])); });
  server.Route("GET", "/health", [](Request&&, Responder respond) { respond(Text("ok")); });
  Start(server);
  // A request with a body and no valid token is refused before its body is
  // read, and its connection closed: each one needs a fresh client.
  auto r = Client(server.port()).Request("POST", "/ingest/message", "{}");
  CHECK(r.status == 401);
  CHECK(r.header("www-authenticate").rfind("Bearer", 0) == 0);
  CHECK(r.header("connection") == "close");
  CHECK(nlohmann::json::parse(r.body).at("error").is_string());
  for (const char* bad :
       {"Authorization: Bearer wrong", "Authorization: Bearer s3cret-toke", "Authorization: Bearer s3cret-token2",
        "Authorization: Basic czNjcmV0LXRva2Vu", "Authorization: s3cret-token", "Authorization: Bearer"}) {
    INFO(bad);
    CHECK(Client(server.port()).Request("POST", "/ingest/message", "{}", {bad}).status == 401);
  }
  // Even a body over the size limit gets 401, not 413: nothing of it is read.
  CHECK(Client(server.port()).Request("POST", "/ingest/message", std::string(o.max_body_bytes + 1, 'x')).status == 401);
  Client c(server.port());
  r = c.Request("POST", "/ingest/message", "{}", {"Authorization: Bearer s3cret-token"});
  CHECK(r.status == 202);
  CHECK(r.body == "in");
  CHECK(c.Request("POST", "/ingest/message", "{}", {"Authorization: bearer  s3cret-token "}).status == 202);
  CHECK(c.Request("GET", "/ingest/status/abc", "", {"Authorization: Bearer s3cret-token"}).body == "abc");
  CHECK(c.Request("GET", "/ingest/status/abc").status == 401);
  CHECK(c.Request("GET", "/ingest/unknown").status == 401);  // no probing of routes without the token
  CHECK(c.Request("GET", "/ingest/unknown", "", {"Authorization: Bearer s3cret-token"}).status == 404);
  CHECK(c.Request("GET", "/health").status == 200);
  CHECK(c.Request("GET", "/ingestion").status == 404);  // not under /ingest/
}

TEST_CASE("http: responders are called from any thread, once", "[http]") {
  Server server(TestOptions());
  Later later;
  server.Route("GET", "/async", [&](Request&&, Responder respond) {
    later.Run([respond] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      respond(Text("late"));
      respond(Text("again"));  // ignored
    });
  });
  server.Route("GET", "/twice", [](Request&&, Responder respond) {
    Responder copy = respond;
    respond(Text("first"));
    copy(Text("second"));  // ignored
  });
  server.Route("GET", "/dropped", [](Request&&, Responder) {});
  Start(server);
  Client c(server.port());

  auto t0 = Clock::now();
  auto r = c.Request("GET", "/async");
  CHECK(r.status == 200);
  CHECK(r.body == "late");
  CHECK(MsSince(t0) >= 45);
  CHECK(c.Request("GET", "/twice").body == "first");
  r = c.Request("GET", "/dropped");
  CHECK(r.status == 500);
  CHECK(nlohmann::json::parse(r.body).at("error").is_string());
  CHECK(c.Request("GET", "/twice").body == "first");  // still in sync: nothing extra was sent
}

TEST_CASE("http: a handler that throws gets a 500 and the server goes on", "[http]") {
  ServerOptions o = TestOptions();
  std::vector<std::string> logged;
  std::mutex log_mu;
  o.log = [&](std::string_view line) {
    std::lock_guard lock(log_mu);
    logged.emplace_back(line);
  };
  Server server(o);
  server.Route("GET", "/boom", [](Request&&, Responder) -> void { throw std::runtime_error("kaboom"); });
  server.Route("GET", "/boom-int", [](Request&&, Responder) -> void { throw 42; });
  server.Route("GET", "/hello", [](Request&&, Responder respond) { respond(Text("hi")); });
  Start(server);
  Client c(server.port());
  auto r = c.Request("GET", "/boom");
  CHECK(r.status == 500);
  CHECK(r.header("content-type") == "application/json");
  CHECK(nlohmann::json::parse(r.body).at("error").is_string());
  CHECK(r.body.find("kaboom") == std::string::npos);  // internals stay in the log
  CHECK(c.Request("GET", "/boom-int").status == 500);
  CHECK(c.Request("GET", "/hello").body == "hi");
  server.Stop(1000);
  std::lock_guard lock(log_mu);
  REQUIRE(logged.size() == 2);
  CHECK(logged[0].find("kaboom") != std::string::npos);
}

TEST_CASE("http: answers for closed connections are dropped safely", "[http]") {
  Later later;
  std::promise<void> handler_started;
  std::promise<void> client_gone;
  auto gone = client_gone.get_future().share();
  {
    Server server(TestOptions());
    server.Route("GET", "/slow", [&](Request&&, Responder respond) {
      handler_started.set_value();
      later.Run([respond, gone] {
        gone.wait();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        respond(Text("nobody listens"));
      });
    });
    server.Route("GET", "/hello", [](Request&&, Responder respond) { respond(Text("hi")); });
    Start(server);
    {
      Client c(server.port());
      REQUIRE(c.Send(Client::Format("GET", "/slow")));
      handler_started.get_future().wait();
    }
    client_gone.set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    Client c(server.port());
    CHECK(c.Request("GET", "/hello").body == "hi");
  }
}

TEST_CASE("http: Stop lets a request in flight finish", "[http]") {
  Later later;
  std::promise<void> handler_started;
  auto server = std::make_unique<Server>(TestOptions());
  server->Route("GET", "/slow", [&](Request&&, Responder respond) {
    handler_started.set_value();
    later.Run([respond] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      respond(Text("done"));
    });
  });
  server->Route("GET", "/hello", [](Request&&, Responder respond) { respond(Text("hi")); });
  Start(*server);
  uint16_t port = server->port();

  Client idle(port);
  CHECK(idle.Request("GET", "/hello").status == 200);  // now idle in keep-alive
  Client busy(port);
  REQUIRE(busy.Send(Client::Format("GET", "/slow")));
  handler_started.get_future().wait();

  auto t0 = Clock::now();
  server->Stop(5000);
  auto stop_ms = MsSince(t0);
  CHECK(stop_ms >= 200);
  CHECK(stop_ms < 3000);
  auto r = busy.Read(1000);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "done");
  CHECK(r->header("connection") == "close");
  CHECK(busy.WaitClosed(1000));
  CHECK(idle.WaitClosed(1000));

  // No longer accepting.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0);
  ::close(fd);
  server.reset();
}

TEST_CASE("http: Stop gives up on a handler that never answers", "[http]") {
  std::mutex mu;
  std::vector<Responder> parked;
  std::promise<void> handler_started;
  {
    Server server(TestOptions());
    server.Route("GET", "/never", [&](Request&&, Responder respond) {
      std::lock_guard lock(mu);
      parked.push_back(std::move(respond));
      handler_started.set_value();
    });
    Start(server);
    Client c(server.port());
    REQUIRE(c.Send(Client::Format("GET", "/never")));
    handler_started.get_future().wait();
    auto t0 = Clock::now();
    server.Stop(100);
    CHECK(MsSince(t0) < 2000);
    CHECK(c.WaitClosed(1000));
  }
  // The Server is gone; answering now must be harmless.
  std::lock_guard lock(mu);
  REQUIRE(parked.size() == 1);
  parked[0](Text("too late"));
  parked.clear();
}

TEST_CASE("http: Expect: 100-continue", "[http]") {
  Server server(TestOptions());
  server.Route("POST", "/echo", [](Request&& req, Responder respond) { respond(Text(req.body)); });
  Start(server);
  Client c(server.port());
  REQUIRE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = c.Read();
  REQUIRE(interim);
  CHECK(interim->status == 100);
  REQUIRE(c.Send("hello"));
  auto r = c.Read();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "hello");
}

TEST_CASE("http: OnRequestDone reports route pattern, status and duration", "[http]") {
  Server server(TestOptions());
  std::mutex mu;
  std::vector<std::tuple<std::string, std::string, int, double>> seen;
  server.OnRequestDone([&](std::string_view method, std::string_view route, int status, double seconds) {
    std::lock_guard lock(mu);
    seen.emplace_back(std::string(method), std::string(route), status, seconds);
  });
  server.Route("GET", "/items/{id}", [](Request&&, Responder respond) { respond(Text("x", 201)); });
  Start(server);
  {
    Client c(server.port());
    c.Request("GET", "/items/7");
    c.Request("GET", "/missing");
    c.Request("POST", "/items/7", "b");
  }
  server.Stop(1000);
  std::lock_guard lock(mu);
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == std::make_tuple(std::string("GET"), std::string("/items/{id}"), 201, std::get<3>(seen[0])));
  CHECK(std::get<3>(seen[0]) >= 0.0);
  CHECK(std::get<3>(seen[0]) < 5.0);
  CHECK(std::get<1>(seen[1]).empty());
  CHECK(std::get<2>(seen[1]) == 404);
  CHECK(std::get<2>(seen[2]) == 405);

  // The three-argument form.
  Server other(TestOptions());
  std::atomic<int> statuses{0};
  other.OnRequestDone([&](std::string_view route, int status, double) {
    if (route == "/h") statuses += status;
  });
  other.Route("GET", "/h", [](Request&&, Responder respond) { respond(Text("x")); });
  Start(other);
  {
    Client c(other.port());
    c.Request("GET", "/h");
  }
  other.Stop(1000);
  CHECK(statuses.load() == 200);
}

TEST_CASE("http: Swagger UI and the OpenAPI document are served", "[http]") {
  Server server(TestOptions());
  nomnom::http::embedded::ServeEmbeddedFiles(server);  // nomnomd's files (daemon/embedded_files.h)
  Start(server);
  Client c(server.port());

  auto r = c.Request("GET", "/swagger-ui");
  CHECK(r.status == 303);
  CHECK(r.header("location") == "/swagger-ui/");

  r = c.Request("GET", "/swagger-ui/");
  CHECK(r.status == 200);
  CHECK(r.header("content-type").rfind("text/html", 0) == 0);
  for (const char* needle :
       {"./swagger-ui.css", "./swagger-ui-bundle.js", "./swagger-ui-standalone-preset.js", "/api-docs/openapi.json"}) {
    INFO(needle);
    CHECK(r.body.find(needle) != std::string::npos);
  }
  CHECK(c.Request("GET", "/swagger-ui/index.html").body == r.body);

  r = c.Request("GET", "/swagger-ui/swagger-ui-bundle.js");
  CHECK(r.status == 200);
  CHECK(r.header("content-type").rfind("text/javascript", 0) == 0);
  CHECK(r.body.size() > 500000);
  CHECK(r.body.find("SwaggerUIBundle") != std::string::npos);
  r = c.Request("GET", "/swagger-ui/swagger-ui-standalone-preset.js");
  CHECK(r.status == 200);
  CHECK(r.header("content-type").rfind("text/javascript", 0) == 0);
  r = c.Request("GET", "/swagger-ui/swagger-ui.css");
  CHECK(r.status == 200);
  CHECK(r.header("content-type").rfind("text/css", 0) == 0);
  CHECK(r.body.find(".swagger-ui") != std::string::npos);
  r = c.Request("GET", "/swagger-ui/favicon-32x32.png");
  CHECK(r.header("content-type") == "image/png");
  CHECK(r.body.rfind("\x89PNG", 0) == 0);
  r = c.Request("GET", "/swagger-ui/LICENSE");
  CHECK(r.header("content-type").rfind("text/plain", 0) == 0);
  CHECK(r.body.find("Apache License") != std::string::npos);
  CHECK(c.Request("GET", "/swagger-ui/nope.js").status == 404);
  CHECK(Client(server.port()).Request("POST", "/swagger-ui/", "x").status == 405);  // closes its connection

  r = c.Request("GET", "/api-docs/openapi.json");
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "application/json");
  auto doc = nlohmann::json::parse(r.body);
  CHECK(doc.at("openapi").get<std::string>().rfind("3.0", 0) == 0);
  const auto& paths = doc.at("paths");
  const std::vector<std::pair<std::string, std::string>> expected = {{"/ingest/message", "post"},
                                                                     {"/ingest/batch", "post"},
                                                                     {"/ingest/status/{id}", "get"},
                                                                     {"/health", "get"},
                                                                     {"/ready", "get"},
                                                                     {"/stats", "get"},
                                                                     {"/metrics", "get"},
                                                                     {"/api-docs/openapi.json", "get"},
                                                                     {"/swagger-ui", "get"},
                                                                     {"/swagger-ui/", "get"}};
  for (const auto& [path, method] : expected) {
    INFO(path);
    REQUIRE(paths.contains(path));
    CHECK(paths.at(path).contains(method));
  }
  CHECK(doc.at("components").at("securitySchemes").at("bearerAuth").at("scheme") == "bearer");
  for (const char* p : {"/ingest/message", "/ingest/batch"}) {
    INFO(p);
    const auto& op = paths.at(p).at("post");
    CHECK(op.at("security").at(0).contains("bearerAuth"));
    for (const char* code : {"202", "400", "401", "404", "413", "415", "503"}) {
      INFO(code);
      CHECK(op.at("responses").contains(code));
    }
  }
  CHECK(paths.at("/ingest/batch").at("post").at("requestBody").at("content").contains("application/x-ndjson"));
  CHECK(paths.at("/metrics").at("get").at("responses").at("200").at("content").contains("text/plain; version=0.0.4"));
  bool has_idempotency_key = false;
  for (const auto& p : paths.at("/ingest/message").at("post").at("parameters")) {
    std::string ref = p.value("$ref", "");
    if (ref.find("IdempotencyKey") != std::string::npos) has_idempotency_key = true;
  }
  CHECK(has_idempotency_key);

  // Without the docs.
  Server bare(TestOptions());
  Start(bare);
  Client b(bare.port());
  CHECK(b.Request("GET", "/swagger-ui/").status == 404);
  CHECK(b.Request("GET", "/api-docs/openapi.json").status == 404);
}

TEST_CASE("http: many concurrent connections", "[http]") {
  Server server(TestOptions());
  std::atomic<int> handled{0};
  server.Route("POST", "/count", [&](Request&& req, Responder respond) {
    ++handled;
    respond(Text(req.body));
  });
  Start(server);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      try {
        Client c(server.port());
        for (int i = 0; i < 200; ++i) {
          std::string body = std::to_string(t) + ":" + std::to_string(i);
          if (!c.Send(Client::Format("POST", "/count", body))) return;
          auto r = c.Read();
          if (r && r->status == 200 && r->body == body) ++ok;
        }
      } catch (const std::exception&) {
        // Counted as missing answers below.
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok.load() == 1600);
  CHECK(handled.load() == 1600);
}

TEST_CASE("http: the method label is bounded: made-up methods are reported as 'other'", "[http][labels]") {
  Server server(TestOptions());
  server.Route("GET", "/a", [](Request&&, Responder respond) { respond(Text("a")); });
  std::mutex mu;
  std::set<std::string> methods;
  server.OnRequestDone([&](std::string_view method, std::string_view, int, double) {
    std::lock_guard lock(mu);
    methods.insert(std::string(method));
  });
  Start(server);
  Client c(server.port());
  for (int i = 0; i < 300; ++i) {
    const std::string m = "M" + std::to_string(i);
    auto r = c.Request(m, "/a");
    CHECK((r.status == 405 || r.status == 400));
    if (r.header("connection") == "close") break;
  }
  Client g(server.port());
  CHECK(g.Request("GET", "/a").status == 200);
  server.Stop(1000);
  std::lock_guard lock(mu);
  CHECK(methods.size() <= 2);
  CHECK(methods.count("GET") == 1);
  for (const auto& m : methods) CHECK((m == "GET" || m == "other"));
}

TEST_CASE("http: unknown routes and wrong methods are answered before the body is read", "[http][early]") {
  ServerOptions o = TestOptions();
  o.max_body_bytes = size_t{200} << 20;
  Server server(o);
  std::atomic<int> called{0};
  server.Route("POST", "/in", [&](Request&&, Responder respond) {
    ++called;
    respond(Text("in"));
  });
  Start(server);
  {
    Client c(server.port());
    // 100 MB announced, nothing of it sent: the answer must not wait for it.
    REQUIRE(c.Send("POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 104857600\r\n\r\n"));
    auto r = c.Read(3000);
    REQUIRE(r.has_value());
    CHECK(r->status == 404);
    CHECK(r->header("connection") == "close");
  }
  {
    Client c(server.port());
    REQUIRE(c.Send("PUT /in HTTP/1.1\r\nHost: t\r\nContent-Length: 104857600\r\n\r\n"));
    auto r = c.Read(3000);
    REQUIRE(r.has_value());
    CHECK(r->status == 405);
    CHECK(r->header("allow") == "POST");
  }
  CHECK(called == 0);
  server.Stop(1000);
}

TEST_CASE("http: a connection limit: 503 only while the limit is full", "[http][max-connections]") {
  ServerOptions o = TestOptions();
  o.max_connections = 4;
  Server server(o);
  server.Route("GET", "/a", [](Request&&, Responder respond) { respond(Text("a")); });
  Start(server);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<Client>(server.port()));
    CHECK(held.back()->Request("GET", "/a").status == 200);  // keep-alive: the slot stays taken
  }
  {
    Client fifth(server.port());
    fifth.Send(Client::Format("GET", "/a"));
    auto r = fifth.Read(3000);
    REQUIRE(r.has_value());
    CHECK(r->status == 503);
    CHECK(fifth.WaitClosed(3000));
  }
  held.clear();  // the four close
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    Client again(server.port());
    again.Send(Client::Format("GET", "/a"));
    auto r = again.Read(3000);
    served = r && r->status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(served);
  server.Stop(1000);
}

TEST_CASE("http: a slowloris header is cut off by the header timeout", "[http][slowloris]") {
  ServerOptions o = TestOptions();
  o.header_timeout_ms = 1000;
  Server server(o);
  server.Route("GET", "/a", [](Request&&, Responder respond) { respond(Text("a")); });
  Start(server);
  Client c(server.port());
  const std::string req = "GET /a HTTP/1.1\r\nHost: t\r\nX-Slow: ";
  const auto started = Clock::now();
  bool closed = false;
  for (size_t i = 0; i < 40 && !closed; ++i) {  // one byte per 200 ms: 8 s for 40 bytes
    if (!c.Send(std::string(1, i < req.size() ? req[i] : 'x'))) {
      closed = true;
      break;
    }
    closed = c.WaitClosed(200);
  }
  CHECK(closed);
  CHECK(MsSince(started) < 6000);
  server.Stop(1000);
}

TEST_CASE("http: error bodies echoing a path with bytes that are not UTF-8 are valid JSON", "[http][utf8]") {
  Server server(TestOptions());
  server.Route("GET", "/a", [](Request&&, Responder respond) { respond(Text("a")); });
  Start(server);
  Client c(server.port());
  // Found by fuzz_http_request: raw 0xFF bytes in the target of a 404.
  REQUIRE(c.Send(std::string("GET /nope%FF\xff\xff\xffs HTTP/1.1\r\nHost: t\r\n\r\n")));
  auto r = c.Read(3000);
  REQUIRE(r.has_value());
  CHECK(r->status == 404);
  auto j = nlohmann::json::parse(r->body);  // throws on invalid UTF-8
  CHECK(j.at("error").get<std::string>().find("\\xFF") != std::string::npos);
  server.Stop(1000);
}

TEST_CASE("http: a body announced over the size limit to an unknown route or method gets 404/405, not 413",
          "[http][early]") {
  Server server(TestOptions());  // the default max_body_bytes (16 MiB)
  server.Route("GET", "/h", [](Request&&, Responder respond) { respond(Text("x")); });
  server.Route("POST", "/p", [](Request&&, Responder respond) { respond(Text("p")); });
  Start(server);
  for (std::string target : {"/nowhere", "/h", "/p"}) {
    Client c(server.port());
    // 100 MB announced, none of it sent.
    REQUIRE(c.Send("POST " + target + " HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n"));
    auto r = c.Read(10000);
    REQUIRE(r.has_value());
    CHECK(r->status == (target == "/nowhere" ? 404 : target == "/h" ? 405 : 413));
    CHECK(r->header("connection") == "close");
    CHECK(c.WaitClosed(10000));
  }
}

TEST_CASE("http: a small body to an unknown route or method is read and the connection kept", "[http][early]") {
  Server server(TestOptions());
  server.Route("GET", "/h", [](Request&&, Responder respond) { respond(Text("x")); });
  Start(server);
  Client c(server.port());
  // Pipelined: bad requests with small bodies, then a good one, on one connection.
  REQUIRE(c.Send(Client::Format("POST", "/nowhere", "abc") + Client::Format("POST", "/h", "defg") +
                 Client::Format("GET", "/h")));
  auto r = c.Read(5000);
  REQUIRE(r.has_value());
  CHECK(r->status == 404);
  CHECK(r->header("connection").empty());
  r = c.Read(5000);
  REQUIRE(r.has_value());
  CHECK(r->status == 405);
  r = c.Read(5000);
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->body == "x");
}

TEST_CASE("http: a status outside 100..599 from a handler becomes 500, in the response and the hook", "[http]") {
  Server server(TestOptions());
  std::mutex mu;
  std::vector<int> statuses;
  server.OnRequestDone([&](std::string_view, int status, double) {
    std::lock_guard lock(mu);
    statuses.push_back(status);
  });
  server.Route("GET", "/odd", [](Request&& req, Responder respond) { respond(Text("x", std::stoi(req.query["s"]))); });
  Start(server);
  {
    Client c(server.port());
    CHECK(c.Request("GET", "/odd?s=777").status == 500);
    CHECK(c.Request("GET", "/odd?s=600").status == 500);
    CHECK(c.Request("GET", "/odd?s=99").status == 500);
    CHECK(c.Request("GET", "/odd?s=599").status == 599);
  }
  server.Stop(1000);
  std::lock_guard lock(mu);
  CHECK(statuses == std::vector<int>{500, 500, 500, 599});
}

TEST_CASE("http: a handler that answers and then throws keeps its answer", "[http]") {
  ServerOptions o = TestOptions();
  std::atomic<int> logged{0};
  o.log = [&](std::string_view) { ++logged; };
  Server server(o);
  server.Route("GET", "/answer-then-throw", [](Request&&, Responder respond) -> void {
    respond(Text("answered", 202));
    throw std::runtime_error("after the answer");
  });
  server.Route("GET", "/throw-in-respond", [](Request&&, Responder respond) -> void {
    Responder wrapped = [respond](Response r) {
      respond(std::move(r));
      throw std::logic_error("the responder threw");
    };
    wrapped(Text("first", 201));
  });
  Start(server);
  Client c(server.port());
  auto r = c.Request("GET", "/answer-then-throw");
  CHECK(r.status == 202);
  CHECK(r.body == "answered");
  r = c.Request("GET", "/throw-in-respond");
  CHECK(r.status == 201);
  CHECK(c.Request("GET", "/answer-then-throw").status == 202);
  server.Stop(1000);
  CHECK(logged.load() == 3);
}

TEST_CASE("http: the read timeout counts from the request's first byte, header time included", "[http][slowloris]") {
  ServerOptions o = TestOptions();
  o.read_timeout_ms = 6000;
  o.header_timeout_ms = 6000;
  o.idle_timeout_ms = 60000;
  Server server(o);
  server.Route("POST", "/p", [](Request&&, Responder respond) { respond(Text("p")); });
  Start(server);
  Client c(server.port());
  const std::string header = "POST /p HTTP/1.1\r\nContent-Length: 1000\r\n\r\n";
  auto start = Clock::now();
  // The header over about 3 s (well within its 6 s), then the body a byte every 200 ms.
  for (size_t i = 0; i + 1 < header.size(); ++i) {
    REQUIRE(c.Send(header.substr(i, 1)));
    std::this_thread::sleep_for(std::chrono::milliseconds(3000 / static_cast<int>(header.size())));
  }
  REQUIRE(c.Send(header.substr(header.size() - 1)));
  bool cut = false;
  while (!cut && MsSince(start) < 20000) {
    cut = !c.Send("x") || c.WaitClosed(200);
  }
  CHECK(cut);
  // 6 s from the first byte, not 6 s after the header (about 9 s).
  CHECK(MsSince(start) >= 5500);
  CHECK(MsSince(start) < 8500);
}

TEST_CASE("http: without the bearer token, /ingest paths get 401 before 404/405, whatever the body", "[http][early]") {
  ServerOptions o = TestOptions();
  o.bearer_token = "secret";
  Server server(o);
  server.Route("POST", "/ingest/p", [](Request&&, Responder respond) { respond(Text("p")); });
  Start(server);
  for (std::string length : {"", "3", "100000", "100000000"}) {
    for (std::string target : {"/ingest/nope", "/ingest/p"}) {
      Client c(server.port());
      std::string method = target == "/ingest/p" ? "PUT" : "POST";
      std::string head = method + " " + target + " HTTP/1.1\r\nHost: t\r\n";
      if (!length.empty()) head += "Content-Length: " + length + "\r\n";
      REQUIRE(c.Send(head + "\r\n" + (length == "3" ? "abc" : "")));
      auto r = c.Read(10000);
      REQUIRE(r.has_value());
      INFO(method << " " << target << " Content-Length " << length);
      CHECK(r->status == 401);
    }
  }
}

// ---- streaming responses -------------------------------------------------------

namespace {

// The writer a streaming route handed out, for the test to write with.
struct StreamHolder {
  std::mutex mu;
  std::shared_ptr<nomnom::http::StreamWriter> writer;
  std::atomic<int> starts{0};
  std::shared_ptr<nomnom::http::StreamWriter> Get(int timeout_ms = 5000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      {
        std::lock_guard lock(mu);
        if (writer) return writer;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return nullptr;
  }
};

void StreamRoute(Server& server, std::shared_ptr<StreamHolder> holder) {
  server.Route("GET", "/events", [holder](Request&&, Responder respond) {
    Response r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("Content-Length", "5");  // ignored: a stream has none
    r.stream = [holder](std::shared_ptr<nomnom::http::StreamWriter> w) {
      holder->starts++;
      std::lock_guard lock(holder->mu);
      holder->writer = std::move(w);
    };
    respond(std::move(r));
  });
}

auto Bytes(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

bool WaitClosedWriter(nomnom::http::StreamWriter& w, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (w.IsOpen() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return !w.IsOpen();
}

}  // namespace

TEST_CASE("http: a streaming response is written piece by piece until the client goes away", "[http][stream]") {
  auto holder = std::make_shared<StreamHolder>();
  Server server(TestOptions());
  StreamRoute(server, holder);
  std::atomic<int> done_status{0};
  server.OnRequestDone([&](std::string_view route, int status, double) {
    if (route == "/events") done_status = status;
  });
  Start(server);
  auto client = std::make_unique<Client>(server.port());
  REQUIRE(client->Send(Client::Format("GET", "/events")));
  auto head = client->Read(5000, /*head=*/true);
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->header("content-type") == "text/event-stream");
  CHECK(head->header("cache-control") == "no-store");
  CHECK(head->header("connection") == "close");
  CHECK(head->header("content-length").empty());
  auto w = holder->Get();
  REQUIRE(w);
  CHECK(done_status == 200);  // reported once the head is written
  CHECK(w->Write(Bytes("data: 1\n\n")));
  auto shared = Bytes("data: 2\n\n");
  CHECK(w->Write(shared));
  CHECK(w->Write(Bytes("")));  // nothing to write: ignored
  CHECK(client->ReadUntil("data: 1\n\ndata: 2\n\n", 3000));
  // The client goes away: the writer notices.
  client.reset();
  CHECK(WaitClosedWriter(*w, 3000));
  CHECK_FALSE(w->Write(Bytes("data: 3\n\n")));
  CHECK(holder->starts == 1);
}

TEST_CASE("http: Close() and Stop() end streams", "[http][stream]") {
  auto holder = std::make_shared<StreamHolder>();
  auto server = std::make_unique<Server>(TestOptions());
  StreamRoute(*server, holder);
  Start(*server);
  {
    Client c(server->port());
    REQUIRE(c.Send(Client::Format("GET", "/events")));
    REQUIRE(c.Read(5000, true));
    auto w = holder->Get();
    REQUIRE(w);
    w->Close();
    CHECK_FALSE(w->IsOpen());
    CHECK(c.WaitClosed(3000));
    std::lock_guard lock(holder->mu);
    holder->writer.reset();
  }
  Client c(server->port());
  REQUIRE(c.Send(Client::Format("GET", "/events")));
  REQUIRE(c.Read(5000, true));
  auto w = holder->Get();
  REQUIRE(w);
  REQUIRE(w->Write(Bytes("x\n")));
  CHECK(c.ReadUntil("x\n", 3000));
  auto t0 = Clock::now();
  server->Stop(5000);
  CHECK(MsSince(t0) < 2000);  // an open stream does not hold the stop up
  CHECK(c.WaitClosed(2000));
  CHECK_FALSE(w->IsOpen());
  CHECK_FALSE(w->Write(Bytes("y\n")));
  server.reset();
  CHECK_FALSE(w->Write(Bytes("z\n")));  // the writer outlives the server safely
}

TEST_CASE("http: a stream whose client does not read is cut off at its queue limit", "[http][stream]") {
  auto holder = std::make_shared<StreamHolder>();
  ServerOptions o = TestOptions();
  o.max_stream_queue_bytes = 256 << 10;
  std::atomic<int> logged{0};
  o.log = [&](std::string_view line) {
    if (line.find("not reading") != std::string_view::npos) logged++;
  };
  Server server(o);
  StreamRoute(server, holder);
  Start(server);
  Client c(server.port());
  REQUIRE(c.Send(Client::Format("GET", "/events")));
  REQUIRE(c.Read(5000, true));
  auto w = holder->Get();
  REQUIRE(w);
  // The client reads nothing more: the socket buffers fill, then the queue.
  auto chunk = Bytes(std::string(128 << 10, 'x'));
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (w->Write(chunk) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(WaitClosedWriter(*w, 2000));
  CHECK(logged == 1);
}

TEST_CASE("http: HEAD on a streaming route gets the head only, no stream", "[http][stream]") {
  auto holder = std::make_shared<StreamHolder>();
  Server server(TestOptions());
  StreamRoute(server, holder);
  Start(server);
  Client c(server.port());
  auto r = c.Request("HEAD", "/events");
  CHECK(r.status == 200);
  CHECK(c.Request("HEAD", "/events").status == 200);  // the connection is kept
  CHECK(holder->starts == 0);
}

TEST_CASE("http: responses given inside a ResponseBatch go out when it ends, in order, to every io thread",
          "[http][batch]") {
  Server server(TestOptions());  // two io threads: the clients are spread over both
  std::mutex mu;
  std::vector<std::pair<int, Responder>> waiting;  // (client number, responder)
  server.Route("POST", "/n", [&](Request&& req, Responder respond) {
    std::lock_guard lock(mu);
    waiting.emplace_back(std::stoi(req.body), std::move(respond));
  });
  Start(server);
  constexpr int kClients = 6;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    REQUIRE(clients.back()->Send(Client::Format("POST", "/n", std::to_string(i))));
  }
  for (int tries = 0; tries < 500; ++tries) {
    {
      std::lock_guard lock(mu);
      if (waiting.size() == kClients) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<std::pair<int, Responder>> all;
  {
    std::lock_guard lock(mu);
    all.swap(waiting);
  }
  REQUIRE(all.size() == kClients);
  std::promise<void> answered, checked;
  std::thread answerer([&] {
    nomnom::http::ResponseBatch outer;
    {
      nomnom::http::ResponseBatch inner;  // nested: the outer one hands over
      for (auto& [n, respond] : all) respond(Text("answer " + std::to_string(n)));
    }
    answered.set_value();
    checked.get_future().wait();
  });
  answered.get_future().wait();
  // Held while the outer batch lives...
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (auto& c : clients) {
    auto early = c->Read(20);
    INFO((early ? std::to_string(early->status) + " " + early->body : std::string("nothing")));
    CHECK_FALSE(early.has_value());
  }
  checked.set_value();
  answerer.join();
  // ...and written once it has ended.
  for (int i = 0; i < kClients; ++i) {
    auto r = clients[static_cast<size_t>(i)]->Read(3000);
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
    CHECK(r->body == "answer " + std::to_string(i));
  }
}

// Responses go straight to the socket when they fit (Session::WriteHeadAndBody);
// the three cases below are the ones that must not take that shortcut blindly.

TEST_CASE("http: thousands of pipelined requests answered at once are handled one after another, not nested",
          "[http][pipeline]") {
  Server server(TestOptions());
  // How deep in its thread's stack each request is handled: handling the
  // next buffered request from inside the previous one's answer would make
  // the stack grow with every request of the pipeline.
  std::mutex mu;
  std::map<std::thread::id, std::pair<uintptr_t, uintptr_t>> depth;  // lowest, highest address
  server.Route("GET", "/n/{n}", [&](Request&& req, Responder respond) {
    const char here = 0;
    const auto at = reinterpret_cast<uintptr_t>(&here);
    {
      std::lock_guard lock(mu);
      auto [it, fresh] = depth.try_emplace(std::this_thread::get_id(), at, at);
      it->second.first = std::min(it->second.first, at);
      it->second.second = std::max(it->second.second, at);
    }
    respond(Text(req.query["n"]));
  });
  Start(server);
  Client c(server.port());
  constexpr int kRequests = 4000;  // ~180 KB: many requests per read, each answered at once
  std::string all;
  for (int i = 0; i < kRequests; ++i) all += Client::Format("GET", "/n/" + std::to_string(i));
  std::thread sender([&] { c.Send(all); });  // the answers come back while the requests go out
  int in_order = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto r = c.Read(10000);
    if (!r) break;
    if (r->status == 200 && r->body == std::to_string(i)) ++in_order;
  }
  sender.join();
  CHECK(in_order == kRequests);
  CHECK(c.Request("GET", "/n/done").body == "done");
  std::lock_guard lock(mu);
  for (const auto& [thread, range] : depth) CHECK(range.second - range.first < 4096);
}

TEST_CASE("http: a response larger than the socket takes is finished asynchronously, intact", "[http][pipeline]") {
  Server server(TestOptions());
  std::string big(12 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  server.Route("GET", "/big", [&big](Request&&, Responder respond) { respond(Text(big)); });
  server.Route("GET", "/small", [](Request&&, Responder respond) { respond(Text("small")); });
  Start(server);
  Client c(server.port());
  // Both requests at once, then a pause: the server has written what the
  // socket took and must finish the rest (and then the second answer) later.
  REQUIRE(c.Send(Client::Format("GET", "/big") + Client::Format("GET", "/small")));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r = c.Read(20000);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.size() == big.size());
  CHECK(r->body == big);
  auto s = c.Read();
  REQUIRE(s);
  CHECK(s->body == "small");
}

TEST_CASE("http: header fields beyond the connection's field memory are kept intact, request after request",
          "[http][fields]") {
  Server server(TestOptions());
  server.Route("GET", "/echo", [](Request&& req, Responder respond) {
    std::string out;
    for (const auto& [name, value] : req.headers) {
      if (name.rfind("X-H", 0) == 0) out += name + "=" + value + ";";
    }
    respond(Text(out));
  });
  Start(server);
  Client c(server.port());
  // Fields that fit the per-connection region, ones that overflow it onto the
  // heap (about 6 KB), and small ones again: the region is reused each time.
  for (int round = 0; round < 6; ++round) {
    const int fields = round % 2 == 0 ? 60 : 3;
    std::vector<std::string> headers;
    std::string expected;
    for (int i = 0; i < fields; ++i) {
      std::string value(90, static_cast<char>('a' + (round * 5 + i) % 26));
      value += std::to_string(i);
      headers.push_back("X-H" + std::to_string(i) + ": " + value);
      expected += "X-H" + std::to_string(i) + "=" + value + ";";
    }
    auto r = c.Request("GET", "/echo", "", headers);
    CHECK(r.status == 200);
    CHECK(r.body == expected);
  }
}

TEST_CASE("http: a connection's requests are each seen whole, whatever the last one left or took away",
          "[http][fields]") {
  // The server refills one Request per connection and recycles the last
  // body's buffer: sizes go up and down, and a handler may move it all away.
  Server server(TestOptions());
  std::mutex mu;
  std::vector<Request> kept;
  server.Route("POST", "/echo", [](Request&& req, Responder respond) {
    respond(Text(req.header("X-Tag") + "|" + req.query["q"] + "|" + req.body));
  });
  server.Route("POST", "/keep", [&](Request&& req, Responder respond) {
    std::lock_guard lock(mu);
    kept.push_back(std::move(req));
    respond(Text("kept"));
  });
  Start(server);
  Client c(server.port());
  const std::vector<size_t> sizes = {10, 100000, 3, 1500, 2049, 0, 70000, 5};
  for (size_t i = 0; i < sizes.size(); ++i) {
    const std::string body(sizes[i], static_cast<char>('a' + i));
    const std::string tag = "t" + std::to_string(i);
    auto r = c.Request("POST", "/echo?q=" + std::to_string(i), body, {"X-Tag: " + tag});
    CHECK(r.body == tag + "|" + std::to_string(i) + "|" + body);
    if (i % 3 == 1) CHECK(c.Request("POST", "/keep", "taken " + std::to_string(i), {"X-Tag: k"}).body == "kept");
  }
  std::lock_guard lock(mu);
  REQUIRE(kept.size() == 3);
  for (size_t k = 0; k < kept.size(); ++k) {
    CHECK(kept[k].body == "taken " + std::to_string(3 * k + 1));
    CHECK(kept[k].header("X-Tag") == "k");
    CHECK(kept[k].query.empty());
  }
}

TEST_CASE("http: the next request is read whenever it arrives: during the handler, in pieces, after a pause",
          "[http][pipeline]") {
  // After an answer the server starts its read of the next request a little
  // later (DoIdle). Whatever arrived in the meantime, or arrives later, is read:
  // bytes sent while the handler worked (their readiness event was polled
  // while no read was waiting), half a request, the end of the stream, a
  // request after a pause. A connection left silent would show as a timeout
  // here (the idle and read timeouts are 20 s).
  ServerOptions o = TestOptions();
  o.idle_timeout_ms = 20000;
  o.read_timeout_ms = 20000;
  // Declared before the server, which may still run the handler while it is
  // destroyed (a failed REQUIRE leaves a request in flight).
  std::mutex mu;
  std::promise<void> entered;
  std::shared_future<void> release;
  Server server(o);
  server.Route("GET", "/n/{n}", [&](Request&& req, Responder respond) {
    const std::string n = req.query["n"];
    if (n[0] != 'w') return respond(Text(n));
    // "w…": tell the test the request was read, answer when it says so.
    std::shared_future<void> go;
    {
      std::lock_guard lock(mu);
      entered.set_value();
      go = release;
    }
    std::thread([go, n, respond = std::move(respond)] {
      go.wait();
      respond(Text(n));
    }).detach();
  });
  Start(server);

  // Arms the next slow request: returns (entered, release).
  auto arm = [&] {
    std::lock_guard lock(mu);
    entered = std::promise<void>();
    auto p = std::make_shared<std::promise<void>>();
    release = p->get_future().share();
    return std::make_pair(entered.get_future(), p);
  };

  SECTION("a whole request") {
    Client c(server.port());
    for (int i = 0; i < 3; ++i) {
      auto [in, go] = arm();
      REQUIRE(c.Send(Client::Format("GET", "/n/w" + std::to_string(i))));
      REQUIRE(in.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the io thread polls meanwhile
      REQUIRE(c.Send(Client::Format("GET", "/n/next" + std::to_string(i))));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      go->set_value();
      auto r1 = c.Read(3000);
      REQUIRE(r1);
      CHECK(r1->body == "w" + std::to_string(i));
      auto r2 = c.Read(3000);
      REQUIRE(r2);
      CHECK(r2->body == "next" + std::to_string(i));
    }
  }
  SECTION("half a request, the rest after the answer") {
    Client c(server.port());
    auto [in, go] = arm();
    REQUIRE(c.Send(Client::Format("GET", "/n/w")));
    REQUIRE(in.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    const std::string next = Client::Format("GET", "/n/second");
    REQUIRE(c.Send(next.substr(0, 9)));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    go->set_value();
    auto r1 = c.Read(3000);
    REQUIRE(r1);
    CHECK(r1->body == "w");
    REQUIRE(c.Send(next.substr(9)));
    auto r2 = c.Read(3000);
    REQUIRE(r2);
    CHECK(r2->body == "second");
  }
  SECTION("the client half-closes after its request") {
    Client c(server.port());
    auto [in, go] = arm();
    REQUIRE(c.Send(Client::Format("GET", "/n/w")));
    REQUIRE(in.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    c.ShutdownSend();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    go->set_value();
    auto r = c.Read(3000);
    REQUIRE(r);
    CHECK(r->body == "w");
    CHECK(c.WaitClosed(3000));  // then the server closes its side too
  }
  SECTION("nothing more arrives: the next request after a pause") {
    Client c(server.port());
    auto [in, go] = arm();
    REQUIRE(c.Send(Client::Format("GET", "/n/w")));
    REQUIRE(in.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    go->set_value();
    auto r1 = c.Read(3000);
    REQUIRE(r1);
    CHECK(r1->body == "w");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto r2 = c.Request("GET", "/n/after");
    CHECK(r2.body == "after");
  }
}
