#include "core/format/pg_float4.h"

#include <cerrno>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <string>

namespace nomnom::pg {

std::optional<float> ParseFloat4(std::string_view text) {
  bool digit = false;
  for (const char c : text) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E') {
      return std::nullopt;
    }
  }
  if (!digit || text.size() > 4096) return std::nullopt;
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  if (c_locale == static_cast<locale_t>(nullptr)) return std::nullopt;
  const std::string copy(text);
  char* end = nullptr;
  errno = 0;
  const float v = strtof_l(copy.c_str(), &end, c_locale);
  if (end != copy.c_str() + copy.size()) return std::nullopt;
  if (std::isinf(v) || std::isnan(v)) return std::nullopt;
  if (errno == ERANGE && v == 0.0F) return std::nullopt;  // a non-zero value below the smallest float
  return v;
}

}  // namespace nomnom::pg
