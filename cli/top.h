// `nomnom top URL`: nomnomd's dashboard snapshot (GET /dashboard/snapshot, see
// daemon/dashboard.h) in a terminal, read again every second.
//
// RenderTop is pure (snapshot JSON in, text out) and tested on its own;
// FetchSnapshot is a small blocking HTTP/1.1 GET (plain http only). Neither
// throws.
#pragma once

#include <string>
#include <string_view>

#include "core/base/status.h"

namespace nomnom {

struct TopTarget {
  std::string host;
  std::string port;
  std::string base_path;  // "" or "/prefix" (no trailing slash)
};
// "http://host:port[/prefix]" or "host:port"; an error naming what is wrong.
Result<TopTarget> ParseTopUrl(std::string_view url);

// GET <base>/dashboard/snapshot with the bearer token (if any); the body on
// 200, else an error with the status and body. Waits at most timeout_ms.
Result<std::string> FetchSnapshot(const TopTarget& target, const std::string& token, int timeout_ms);

// The error FetchSnapshot reports for an answer other than 200: the status
// and an excerpt of the body, and for 401 what to do (pass --token or set
// NOMNOM_API_TOKEN; or, when a token was sent, that it was refused).
std::string SnapshotError(std::string_view path, int status, std::string_view body, bool token_sent);

// The snapshot as text lines at most `width` columns wide (longer fields are
// cut), for a terminal; an error line when the JSON is not a snapshot.
std::string RenderTop(std::string_view snapshot_json, std::string_view url, size_t width);

}  // namespace nomnom
