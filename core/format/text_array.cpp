#include "core/format/text_array.h"

#include <cstdint>
#include <cstring>

#include "core/base/utf8.h"
#include "core/format/json_check.h"
#include "core/format/pg_binary.h"

namespace nomnom {

namespace {

namespace od = simdjson::ondemand;

void PutBE32(std::string* s, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
  s->append(b, 4);
}

void SetBE32(std::string* s, size_t at, uint32_t v) {
  (*s)[at] = static_cast<char>(v >> 24);
  (*s)[at + 1] = static_cast<char>(v >> 16);
  (*s)[at + 2] = static_cast<char>(v >> 8);
  (*s)[at + 3] = static_cast<char>(v);
}

constexpr size_t kHeader = 20;  // ndim, flags, element oid, length, lower bound

}  // namespace

bool EncodeTextArray(od::array& array, const Field& f, std::string* payload, std::string* error) {
  payload->assign(kHeader, '\0');
  uint32_t count = 0;
  bool has_null = false;
  for (auto element : array) {
    ++count;
    od::value v;
    od::json_type type;
    if (element.get(v) != simdjson::SUCCESS || v.type().get(type) != simdjson::SUCCESS) {
      *error = "malformed JSON in element " + std::to_string(count) + " of the array";
      return false;
    }
    if (count > 100000000) {
      *error = "array has too many elements";
      return false;
    }
    if (type == od::json_type::null) {
      bool is_null = false;
      if (v.is_null().get(is_null) != simdjson::SUCCESS || !is_null) {
        *error = "malformed null in element " + std::to_string(count);
        return false;
      }
      has_null = true;
      PutBE32(payload, 0xFFFFFFFFU);
      continue;
    }
    if (type != od::json_type::string) {
      *error =
          "element " + std::to_string(count) + ": expected a string or null, got " + std::string(JsonTypeName(type));
      return false;
    }
    std::string_view s;
    if (v.get_string().get(s) != simdjson::SUCCESS) {
      *error = "malformed string in element " + std::to_string(count);
      return false;
    }
    if (std::memchr(s.data(), '\0', s.size()) != nullptr) {
      *error = "element " + std::to_string(count) +
               " contains a NUL character (\\u0000), which PostgreSQL text cannot store";
      return false;
    }
    if (f.max_length > 0 && s.size() > f.max_length) {
      const size_t chars = pg::Utf8Length(s);
      if (chars > f.max_length) {
        *error = "element " + std::to_string(count) + ": string of " + std::to_string(chars) +
                 " characters is longer than VARCHAR(" + std::to_string(f.max_length) + ")";
        return false;
      }
    }
    PutBE32(payload, static_cast<uint32_t>(s.size()));
    payload->append(s);
  }
  if (payload->size() > 0x3FFFFFFFU) {
    *error = "array is larger than 1 GB";
    return false;
  }
  SetBE32(payload, 8, f.array_element_oid);
  if (count == 0) {
    // array_send of '{}': ndim 0, no dimensions.
    payload->resize(12);
    SetBE32(payload, 0, 0);
    SetBE32(payload, 4, 0);
    return true;
  }
  SetBE32(payload, 0, 1);
  SetBE32(payload, 4, has_null ? 1 : 0);
  SetBE32(payload, 12, count);
  SetBE32(payload, 16, 1);
  return true;
}

bool EncodeTextArrayJson(std::string_view json, const Field& f, std::string* payload, std::string* error) {
  if (!IsJsonValue(json)) {
    *error = "expected a JSON array of strings, got '" + Excerpt(json) + "'";
    return false;
  }
  thread_local od::parser parser;
  const simdjson::padded_string padded(json);
  od::document doc;
  od::json_type type;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS || doc.type().get(type) != simdjson::SUCCESS) {
    *error = "malformed JSON";
    return false;
  }
  if (type != od::json_type::array) {
    *error = "expected a JSON array of strings, got " + std::string(JsonTypeName(type));
    return false;
  }
  od::array array;
  if (doc.get_array().get(array) != simdjson::SUCCESS) {
    *error = "malformed JSON array";
    return false;
  }
  return EncodeTextArray(array, f, payload, error);
}

}  // namespace nomnom
