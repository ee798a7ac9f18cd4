#include "cli/top.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

// GCC 12 reports -Wnull-dereference false positives inside Asio (see core/http/beast.h).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#pragma GCC diagnostic pop

#include "core/base/utf8.h"

namespace nomnom {

namespace {

using json = nlohmann::json;

std::string Thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Bytes(uint64_t n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    ++i;
  }
  return i == 0 ? std::to_string(n) + " B" : Fixed(v, 1) + " " + kUnits[i];
}

// A number or "-" for null.
std::string Count(const json& v) { return v.is_number_unsigned() ? Thousands(v.get<uint64_t>()) : "-"; }

std::string PadLeft(const std::string& s, size_t w) { return s.size() >= w ? s : std::string(w - s.size(), ' ') + s; }
std::string PadRight(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }

// Cut to width bytes on a character boundary (Excerpt keeps UTF-8 whole).
std::string Cut(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  return Excerpt(s, width > 3 ? width - 3 : width);
}

}  // namespace

Result<TopTarget> ParseTopUrl(std::string_view url) {
  std::string_view rest = url;
  if (rest.starts_with("https://")) return Status::InvalidArgument("https is not supported: use http://host:port");
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  const size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  TopTarget t;
  if (hostport.starts_with("[")) {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) return Status::InvalidArgument("invalid URL '" + std::string(url) + "'");
    t.host = std::string(hostport.substr(1, close - 1));
    hostport.remove_prefix(close + 1);
    t.port = hostport.starts_with(":") ? std::string(hostport.substr(1)) : "80";
  } else {
    const size_t colon = hostport.rfind(':');
    t.host = std::string(hostport.substr(0, colon));
    t.port = colon == std::string_view::npos ? "80" : std::string(hostport.substr(colon + 1));
  }
  if (t.host.empty() || t.port.empty() ||
      !std::all_of(t.port.begin(), t.port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::InvalidArgument("invalid URL '" + std::string(url) + "': expected http://host:port");
  }
  t.base_path = std::string(path);
  return t;
}

Result<std::string> FetchSnapshot(const TopTarget& target, const std::string& token, int timeout_ms) {
  namespace net = boost::asio;
  namespace beast = boost::beast;
  namespace bhttp = boost::beast::http;
  try {
    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    boost::system::error_code ec;
    auto endpoints = resolver.resolve(target.host, target.port, ec);
    if (ec) return Status::Io("cannot resolve " + target.host + ": " + ec.message());
    stream.expires_after(std::chrono::milliseconds(timeout_ms));
    stream.connect(endpoints, ec);
    if (ec) return Status::Io("cannot connect to " + target.host + ":" + target.port + ": " + ec.message());
    bhttp::request<bhttp::string_body> req(bhttp::verb::get, target.base_path + "/dashboard/snapshot", 11);
    req.set(bhttp::field::host, target.host);
    req.set(bhttp::field::user_agent, "nomnom-top");
    if (!token.empty()) req.set(bhttp::field::authorization, "Bearer " + token);
    stream.expires_after(std::chrono::milliseconds(timeout_ms));
    bhttp::write(stream, req, ec);
    if (ec) return Status::Io("cannot send the request: " + ec.message());
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(16 << 20);
    bhttp::read(stream, buffer, parser, ec);
    if (ec) return Status::Io("no answer from " + target.host + ":" + target.port + ": " + ec.message());
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    auto& res = parser.get();
    if (res.result_int() != 200) {
      return Status::Io(
          SnapshotError(target.base_path + "/dashboard/snapshot", res.result_int(), res.body(), !token.empty()));
    }
    return std::move(res.body());
  } catch (const std::exception& e) {
    return Status::Io(std::string("HTTP request failed: ") + e.what());
  }
}

std::string SnapshotError(std::string_view path, int status, std::string_view body, bool token_sent) {
  std::string out = "GET " + std::string(path) + ": HTTP " + std::to_string(status) + ": " + Excerpt(body, 200);
  if (status == 401) {
    out += token_sent ? " (nomnomd refused the token: check --token or NOMNOM_API_TOKEN)"
                      : " (nomnomd needs its API token: pass --token TOKEN or set NOMNOM_API_TOKEN)";
  }
  return out;
}

std::string RenderTop(std::string_view snapshot_json, std::string_view url, size_t width) {
  width = std::max<size_t>(width, 40);
  json s = json::parse(snapshot_json, nullptr, false);
  if (s.is_discarded() || !s.is_object() || !s.contains("totals") || !s.contains("entities")) {
    return "not a dashboard snapshot: " + Excerpt(snapshot_json, 100) + "\n";
  }
  std::string out;
  auto line = [&](const std::string& l) {
    out += Cut(l, width);
    out += '\n';
  };
  try {
    line("nomnom top  " + std::string(url) + "  " + s.value("time", "") + "  (snapshot " +
         std::to_string(s.value("seq", 0)) + ")");
    const json& p = s["pipeline"];
    const json& c = p["consumer"];
    line(std::string("NATS ") + (p["nats"].value("connected", false) ? "connected" : "DISCONNECTED") +
         " | PostgreSQL " + (p["postgres"].value("connected", false) ? "connected" : "UNREACHABLE") + " | stream " +
         p["stream"].value("name", "") + " " + Count(p["stream"]["messages"]) + " msgs " +
         (p["stream"]["bytes"].is_number_unsigned() ? Bytes(p["stream"]["bytes"].get<uint64_t>()) : "-"));
    line("consumer " + c.value("name", "") + ": lag " + Count(c["lag"]) + " (" + Count(c["pending"]) + " pending, " +
         Count(c["ack_pending"]) + " unacked), redelivered " + Count(c["redelivered"]));
    const json& api = s["api"];
    auto ms = [](const json& v) { return v.is_number() ? Fixed(v.get<double>(), 2) + " ms" : std::string("-"); };
    std::string workers;
    for (const auto& w : p["workers"]["list"]) {
      workers += " " + w.value("name", "") + ":" + w.value("state", "");
    }
    line("API " + Fixed(api.value("requests_per_s", 0.0), 1) + " req/s, p50 " + ms(api["p50_ms"]) + ", p99 " +
         ms(api["p99_ms"]) + " | workers here:" + (workers.empty() ? " none" : workers));
    for (const auto& x : p.value("processes", json::array())) {
      line("process " + x.value("process", "") + ": " + x.value("states", "") + ", " +
           Thousands(x.value("rows_committed", uint64_t{0})) + " rows committed" +
           (x.contains("error") ? ", error: " + x.value("error", "") : std::string()));
    }
    out += '\n';
    line(PadRight("ENTITY", 16) + PadLeft("ACCEPTED", 13) + PadLeft("/s", 9) + PadLeft("COMMITTED", 13) +
         PadLeft("/s", 9) + PadLeft("REJECTED", 11) + PadLeft("DEAD", 9));
    auto row = [&](const std::string& name, const json& e) {
      line(PadRight(Cut(name, 15), 16) + PadLeft(Thousands(e.value("accepted", uint64_t{0})), 13) +
           PadLeft(Fixed(e.value("accepted_per_s", 0.0), 1), 9) +
           PadLeft(Thousands(e.value("committed", uint64_t{0})), 13) +
           PadLeft(Fixed(e.value("committed_per_s", 0.0), 1), 9) +
           PadLeft(Thousands(e.value("rejected", uint64_t{0})), 11) +
           PadLeft(Thousands(e.value("dead", uint64_t{0})), 9));
    };
    for (const auto& e : s["entities"]) {
      row(e.value("name", "?"), e);
      // Nested entities: committed rows per table.
      for (const auto& t : e.value("tables", json::array())) {
        // The name may take the entity's and the accepted columns.
        line(PadRight("  " + Cut(t.value("table", "?"), 35), 38) +
             PadLeft(Thousands(t.value("committed", uint64_t{0})), 13) +
             PadLeft(Fixed(t.value("committed_per_s", 0.0), 1), 9));
      }
    }
    row("TOTAL", s["totals"]);
    auto events = [&](const char* title, const json& list) {
      out += '\n';
      line(std::string(title) + (list.empty() ? ": none" : ""));
      size_t shown = 0;
      for (const auto& e : list) {
        if (++shown > 5) break;
        std::string l = "  " + e.value("time", "") + "  " + e.value("entity", "") + "  " +
                        (e.value("id", "").empty() ? "(no id)" : e.value("id", ""));
        if (e.contains("line")) l += " line " + std::to_string(e["line"].get<uint64_t>());
        l += "  " + e.value("reason", "");
        line(l);
      }
    };
    events("LAST DEAD LETTERS", s["dead_letters"]);
    events("LAST REJECTS", s["rejects"]);
  } catch (const json::exception& e) {
    out += std::string("snapshot has an unexpected shape: ") + e.what() + "\n";
  }
  return out;
}

}  // namespace nomnom
