#include "daemon/dashboard_page.h"

#include <cstdint>
#include <nlohmann/json.hpp>

namespace nomnom {

namespace {

// 1234567 -> "1,234,567", as the page's Intl.NumberFormat("en-US") writes it.
std::string Thousands(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// Replaces the first `from` in *text by `to`; false when it is not there.
bool ReplaceFirst(std::string* text, std::string_view from, std::string_view to) {
  const size_t at = text->find(from);
  if (at == std::string::npos) return false;
  text->replace(at, from.size(), to);
  return true;
}

}  // namespace

std::string RenderDashboardPage(std::string_view page, std::string_view snapshot_json) {
  std::string out(page);
  nlohmann::json snapshot = nlohmann::json::parse(snapshot_json, nullptr, /*allow_exceptions=*/false);
  if (!snapshot.is_object() || !snapshot.contains("totals") || !snapshot["totals"].is_object()) return out;
  if (!ReplaceFirst(&out, R"(<div id="board" hidden>)", R"(<div id="board">)")) return std::string(page);
  const nlohmann::json& totals = snapshot["totals"];
  for (const char* key : {"accepted", "committed", "rejected", "dead"}) {
    const auto it = totals.find(key);
    if (it == totals.end() || !it->is_number_unsigned()) continue;
    ReplaceFirst(&out, std::string(R"(id="total-)") + key + R"(">–<)",
                 std::string(R"(id="total-)") + key + R"(">)" + Thousands(it->get<uint64_t>()) + "<");
  }
  std::string block = R"(<script type="application/json" id="snapshot">)";
  block.reserve(block.size() + snapshot_json.size() + 32);
  for (char c : snapshot_json) {
    if (c == '<') {
      block += "\\u003c";
    } else {
      block.push_back(c);
    }
  }
  block += "</script>\n";
  // Before the page's first script, so dashboard.js finds it.
  const size_t at = out.find("<script src=");
  if (at == std::string::npos) return std::string(page);
  out.insert(at, block);
  return out;
}

}  // namespace nomnom
