// libFuzzer harness: the HTTP request path of nomnomd, end to end in one
// process: the input is sent as raw bytes over a loopback connection to a
// real http::Server (core/http/http_server.h: Beast's parser with nomnomd's
// limits and timeouts, routing, bearer-token checks, route parameters, query
// decoding) whose ingest routes run the real handlers' validation
// (daemon/ingest_request.h) with an in-process publisher that only counts.
//
// Invariants: every answer is a well-formed HTTP/1.1 response with a status
// the server may give (never a 500: no handler throws or drops its answer),
// every JSON body is valid UTF-8 JSON, and the server keeps serving (a health
// request every 256 inputs gets 200). A first request whose Transfer-Encoding
// is not exactly "chunked" gets one answer, not a 2xx, and nothing after it:
// the bytes behind it are never read as another request (smuggling).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/format/schema.h"
#include "core/http/http_server.h"
#include "core/queue/ingest_format.h"
#include "daemon/ingest_request.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::http::Request;
using nomnom::http::Responder;
using nomnom::http::Response;

const nomnom::Entity& TheEntity() {
  static const nomnom::Entity entity = [] {
    auto e = nomnom::ParseEntity(R"(
entity:
  name: Order
  fields:
    - { name: order_key, type: String, args: [32], nullable: false }
    - { name: total_price, type: Float, nullable: true }
    - { name: order_date, type: Date, nullable: true }
    - { name: meta, type: Json, nullable: true }
  persistence: { database: { conformant_table: orders, unicity_fields: [order_key] } }
)",
                                 "fuzz");
    if (!e.ok()) std::abort();
    return *e;
  }();
  return entity;
}

Response Json(int status, const nlohmann::json& j) {
  Response r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

nomnom::http::Server& TheServer() {
  static std::unique_ptr<nomnom::http::Server> server = [] {
    nomnom::http::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.threads = 1;
    o.max_body_bytes = 1 << 20;
    o.max_header_bytes = 8 << 10;
    o.read_timeout_ms = 300;
    o.header_timeout_ms = 300;
    o.idle_timeout_ms = 300;
    o.bearer_token = "fuzz-token";
    o.log = [](std::string_view) {};
    auto s = std::make_unique<nomnom::http::Server>(o);
    const nomnom::ChunkLimits limits{100, 64 << 10};
    s->Route("POST", "/ingest/message", [limits](Request&& req, Responder respond) {
      nomnom::MessageCheck m = nomnom::CheckMessage(TheEntity(), req.body, limits.max_bytes);
      if (m.status != 200) return respond(Json(m.status, {{"error", m.error}}));
      respond(Json(202, {{"message_id", nomnom::MessageId(nomnom::NewUuid(), 0)}, {"status", "accepted"}}));
    });
    s->Route("POST", "/ingest/batch", [limits](Request&& req, Responder respond) {
      nomnom::BatchCheck b = nomnom::CheckBatch(TheEntity(), req.body, limits, 10);
      nlohmann::json errors = nlohmann::json::array();
      for (auto& [line, why] : b.errors) errors.push_back({{"line", line}, {"error", why}});
      respond(
          Json(b.accepted > 0 ? 202 : 400, {{"accepted", b.accepted}, {"rejected", b.rejected}, {"errors", errors}}));
    });
    s->Route("GET", "/ingest/status/{id}", [](Request&& req, Responder respond) {
      const std::string id = req.query["id"];
      respond(nomnom::ParseStatusId(id) ? Json(200, {{"id", id}, {"status", "pending"}})
                                        : Json(404, {{"error", "unknown id '" + id + "'"}}));
    });
    s->Route("GET", "/health", [](Request&&, Responder respond) { respond(Json(200, {{"status", "healthy"}})); });
    if (!s->Start().ok()) std::abort();
    return s;
  }();
  return *server;
}

// Sends data (then closes the sending side) and reads until the server closes
// or 2 s pass. Returns what was received.
std::string Exchange(uint16_t port, std::string_view data) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  FUZZ_CHECK(fd >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Closed with a reset, not a FIN: thousands of connections a second would
  // otherwise use up the ephemeral ports in TIME_WAIT.
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  int rc = -1;
  for (int attempt = 0; attempt < 50 && rc != 0; ++attempt) {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc != 0) {
      ::close(fd);
      fd = ::socket(AF_INET, SOCK_STREAM, 0);
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      ::usleep(20000);
    }
  }
  FUZZ_CHECK(rc == 0, "connect");
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (an error answered before the body)
    data.remove_prefix(static_cast<size_t>(n));
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// Checks every response in `wire`; returns the status of the first. An
// answer to HEAD has a Content-Length but no body: when the input holds a
// HEAD request, a response followed directly by the next one (or by nothing)
// is taken as such.
int CheckResponses(std::string_view wire, bool may_have_head = false, int* count = nullptr) {
  int first = 0;
  while (!wire.empty()) {
    const size_t end = wire.find("\r\n\r\n");
    FUZZ_CHECK(end != std::string_view::npos, "a response header ends");
    const std::string_view head = wire.substr(0, end);
    FUZZ_CHECK(head.substr(0, 9) == "HTTP/1.1 " && head.size() >= 12,
               "status line: " + std::string(head.substr(0, 40)));
    const int status = std::stoi(std::string(head.substr(9, 3)));
    if (first == 0) first = status;
    FUZZ_CHECK(status != 500, "no handler failed: " + std::string(wire.substr(0, 300)));
    FUZZ_CHECK(status == 100 || (status >= 200 && status < 600), "a real status");
    size_t length = 0;
    const size_t cl = head.find("Content-Length: ");
    if (cl != std::string_view::npos) length = std::stoul(std::string(head.substr(cl + 16, 12)));
    wire.remove_prefix(end + 4);
    if (status == 100) continue;
    if (count != nullptr) ++*count;
    if (may_have_head && length > 0 && (wire.empty() || wire.substr(0, 9) == "HTTP/1.1 ")) continue;
    FUZZ_CHECK(wire.size() >= length, "the whole body arrives");
    const std::string_view body = wire.substr(0, length);
    wire.remove_prefix(length);
    if (head.find("Content-Type: application/json") != std::string_view::npos && !body.empty()) {
      FUZZ_CHECK(nomnom::fuzz::Utf8Valid(body), "a JSON body is valid UTF-8");
      FUZZ_CHECK(!nlohmann::json::parse(body, nullptr, false).is_discarded(), "a JSON body parses");
    }
  }
  return first;
}

// Whether the first request's header names a Transfer-Encoding other than
// exactly "chunked" (its fields joined, as a server must read them).
bool SmugglingFraming(std::string_view input) {
  const size_t end = input.find("\r\n\r\n");
  if (end == std::string_view::npos) return false;
  std::string_view head = input.substr(0, end + 2);
  std::string codings;
  bool found = false;
  for (size_t at = head.find("\r\n"); at != std::string_view::npos; at = head.find("\r\n", at + 2)) {
    const std::string_view line = head.substr(at + 2, head.find("\r\n", at + 2) - at - 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name != "transfer-encoding") continue;
    found = true;
    if (!codings.empty()) codings += ',';
    codings += line.substr(colon + 1);
  }
  std::string trimmed;
  for (char c : codings) {
    if (c != ' ' && c != '\t') trimmed += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return found && trimmed != "chunked";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static uint64_t runs = 0;
  nomnom::http::Server& server = TheServer();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  int answers = 0;
  const int first =
      CheckResponses(Exchange(server.port(), input), input.find("HEAD") != std::string_view::npos, &answers);
  if (SmugglingFraming(input)) {
    FUZZ_CHECK(answers == 1 && (first < 200 || first > 299),
               "a Transfer-Encoding other than chunked gets one refusal: " + std::to_string(answers) + " answers, " +
                   std::to_string(first));
  }
  if (++runs % 256 == 0) {
    const int status = CheckResponses(Exchange(server.port(), "GET /health HTTP/1.1\r\nHost: f\r\n\r\n"));
    FUZZ_CHECK(status == 200, "the server still serves /health");
  }
  return 0;
}
