// IsJsonValue: whether a piece of text is exactly one JSON value (RFC 8259),
// whitespace around it allowed.
//
// simdjson On-Demand validates only what a program reads: the value of a
// field the entity does not define, and the raw text of a Json field, are
// skipped over by bracket matching, not checked. The row encoder checks those
// spans with this (only those: the bytes of the fields it decodes are
// validated by decoding them). UTF-8 validity is not checked here (simdjson
// validates the whole line). Nesting deeper than 1,024 levels is refused.
// JsonTypeName: how error messages name a JSON value's type.
// Pure functions: thread-safe.
#pragma once

#include <simdjson.h>

#include <string_view>

namespace nomnom {

bool IsJsonValue(std::string_view text);

// "array", "object", "number", "string", "boolean" or "null": how error
// messages name a JSON value's type.
std::string_view JsonTypeName(simdjson::ondemand::json_type t);

}  // namespace nomnom
