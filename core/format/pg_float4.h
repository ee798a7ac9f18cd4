// pg_float4: decimal text -> the float PostgreSQL's float4in (real) stores,
// with its range rules. Pure function; thread-safe.
#pragma once

#include <optional>
#include <string_view>

namespace nomnom::pg {

// Parses decimal number text ("-1.5", "3e38", "+2", ".5") into the nearest
// float (correctly rounded from the text, as float4in does with strtof; not
// through a double). Returns nullopt for anything else (hex, "inf", "nan",
// spaces, more than 4096 bytes), for a value whose magnitude exceeds FLT_MAX
// (overflow) and for a non-zero value that rounds to zero (underflow): both
// are PostgreSQL's "out of range for type real". Denormals are accepted, as
// float4in accepts them.
std::optional<float> ParseFloat4(std::string_view text);

}  // namespace nomnom::pg
