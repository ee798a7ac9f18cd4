// IsJsonValue: whether a piece of text is exactly one JSON value (RFC 8259),
// whitespace around it allowed. CheckJsonValue says why not, and with
// JsonRules::kJsonb also refuses what PostgreSQL's jsonb cannot store though
// JSON allows it: a \u0000 escape and a UTF-16 surrogate escape without its
// other half (jsonb rejects both with 22P05/22P02, after the row was accepted).
//
// simdjson On-Demand validates only what a program reads: the value of a
// field the entity does not define, and the raw text of a Json field, are
// skipped over by bracket matching, not checked. The row encoder checks those
// spans with this (only those: the bytes of the fields it decodes are
// validated by decoding them). UTF-8 validity is not checked here (simdjson
// validates the whole line). Nesting deeper than kMaxJsonDepth (1,024) levels
// is refused.
// JsonTypeName: how error messages name a JSON value's type.
// Pure functions: thread-safe.
#pragma once

#include <simdjson.h>

#include <string_view>

namespace nomnom {

inline constexpr int kMaxJsonDepth = 1024;

enum class JsonRules {
  kJson,   // RFC 8259: unknown fields' values, numbers given as text
  kJsonb,  // what a jsonb (or json: same checks for us) column can take: a Json field
};
enum class JsonCheck {
  kOk,
  kMalformed,      // not exactly one JSON value
  kTooDeep,        // nested deeper than kMaxJsonDepth levels
  kNulEscape,      // kJsonb: \u0000 in a string
  kLoneSurrogate,  // kJsonb: \uD800-\uDFFF without its pair
};
JsonCheck CheckJsonValue(std::string_view text, JsonRules rules);
// The reason for a reject: "malformed JSON", "nested deeper than 1024 levels", ...
std::string_view JsonCheckMessage(JsonCheck result);

inline bool IsJsonValue(std::string_view text) { return CheckJsonValue(text, JsonRules::kJson) == JsonCheck::kOk; }

// "array", "object", "number", "string", "boolean" or "null": how error
// messages name a JSON value's type.
std::string_view JsonTypeName(simdjson::ondemand::json_type t);

}  // namespace nomnom
