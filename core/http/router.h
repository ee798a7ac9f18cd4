// Internal to core/http: the routing table. Server::Route() and
// Server::ServeStatic() (router.cpp) fill it before Start(); from then on it
// is read-only, read by every io thread (Server::Impl::Match) without a lock.
// A RouteEntry is one path pattern with its handler per method.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/http/http_server.h"

namespace nomnom::http::internal {

struct StaticContent {
  std::string content_type;
  std::string_view body;
};

struct MethodRoute {
  std::string method;
  Handler handler;
  std::optional<StaticContent> content;  // served directly, without a handler
};

struct RouteEntry {
  std::string pattern;
  std::string prefix;  // parameter routes: the pattern up to "{"
  std::string param;   // parameter routes: the parameter name
  std::vector<MethodRoute> methods;

  const MethodRoute* Find(std::string_view method) const {
    for (const auto& m : methods) {
      if (m.method == method) return &m;
    }
    if (method == "HEAD") return Find("GET");
    return nullptr;
  }
  std::string Allow() const {
    std::string out;
    bool has_get = false;
    bool has_head = false;
    for (const auto& m : methods) {
      if (!out.empty()) out += ", ";
      out += m.method;
      has_get = has_get || m.method == "GET";
      has_head = has_head || m.method == "HEAD";
    }
    if (has_get && !has_head) out += ", HEAD";
    return out;
  }
  void Set(MethodRoute route) {
    for (auto& m : methods) {
      if (m.method == route.method) {
        m = std::move(route);
        return;
      }
    }
    methods.push_back(std::move(route));
  }
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// The Content-Type of a static file, from its path's extension.
std::string_view ContentTypeFor(std::string_view path);

}  // namespace nomnom::http::internal
