// The routing table (router.h) and the public helpers of http_server.h that
// have nothing to do with a connection.
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#include "core/base/utf8.h"
#include "core/http/http_server.h"
#include "core/http/router.h"
#include "core/http/server_impl.h"
#include "core/http/text.h"

namespace nomnom::http {

using internal::ContentTypeFor;
using internal::IEquals;
using internal::MethodRoute;
using internal::StaticContent;

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

namespace internal {

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

}  // namespace internal

// ---------------------------------------------------------------------------
// Routing

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

}  // namespace nomnom::http
