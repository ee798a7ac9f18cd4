// IsJsonValue: whether a piece of text is exactly one JSON value (RFC 8259),
// whitespace around it allowed.
//
// simdjson On-Demand validates only what a program reads: the value of a
// field the entity does not define, and the raw text of a Json field, are
// skipped over by bracket matching, not checked. The row encoder checks those
// spans with this (only those: the bytes of the fields it decodes are
// validated by decoding them). UTF-8 validity is not checked here (simdjson
// validates the whole line). Nesting deeper than 1,024 levels is refused.
// Pure function: thread-safe.
#pragma once

#include <string_view>

namespace nomnom {

bool IsJsonValue(std::string_view text);

}  // namespace nomnom
