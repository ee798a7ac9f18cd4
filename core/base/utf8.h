// UTF-8 helpers for text that ends up in error messages, JSON and logs.
//
// Input text (rows, headers, file names) may hold any bytes; what nomnom
// writes into JSON or error messages must be valid UTF-8, or serialising it
// fails (nlohmann::json throws on invalid UTF-8). These functions never
// throw except std::bad_alloc, and never split a multi-byte character.
// Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace nomnom {

// Length of the valid UTF-8 sequence starting at s[i] (1-4), or 0 if the
// bytes there are not one (overlong forms, surrogates, code points above
// U+10FFFF and truncated sequences are invalid). i < s.size().
size_t ValidUtf8Length(std::string_view s, size_t i);

// True when every byte of s is part of a valid UTF-8 sequence.
bool IsValidUtf8(std::string_view s);

// s with every byte that is not part of a valid UTF-8 sequence replaced by
// the four characters \xNN (uppercase hex). Valid input is returned as is.
std::string EscapeInvalidUtf8(std::string_view s);

// The longest prefix of s of at most max_bytes bytes that does not end inside
// a multi-byte character (invalid bytes count as single characters).
std::string_view TruncateUtf8(std::string_view s, size_t max_bytes);

// A short excerpt of s for an error message: at most max_bytes bytes of it
// cut at a character boundary, "..." appended when something was cut, invalid
// bytes escaped as \xNN. Always valid UTF-8.
std::string Excerpt(std::string_view s, size_t max_bytes = 40);

}  // namespace nomnom
