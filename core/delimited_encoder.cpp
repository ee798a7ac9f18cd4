#include "core/delimited_encoder.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/json_check.h"
#include "core/pg_binary.h"
#include "core/pg_float4.h"
#include "core/row_encoder.h"
#include "core/text_array.h"
#include "core/utf8.h"

namespace nomnom {
namespace {

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

uint64_t Fnv1a(uint64_t h, std::string_view s) {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ULL;
  }
  return (h ^ 0xFF) * 0x100000001B3ULL;  // a separator, so ("ab","c") != ("a","bc")
}

}  // namespace

DelimitedEncoder::DelimitedEncoder(const Entity& entity)
    : entity_(entity), input_of_field_(entity.fields.size(), 0), input_columns_(entity.fields.size()) {
  for (size_t i = 0; i < input_of_field_.size(); ++i) input_of_field_[i] = static_cast<int>(i);
}

Status DelimitedEncoder::SetColumns(const std::vector<std::string>& names) {
  std::vector<int> map(entity_.fields.size(), -1);
  for (size_t c = 0; c < names.size(); ++c) {
    const int f = entity_.FieldIndex(names[c]);
    if (f < 0) {
      return Status::InvalidArgument("header column " + std::to_string(c + 1) + " '" + names[c] +
                                     "' is not a field of entity " + entity_.name);
    }
    if (map[f] >= 0) {
      return Status::InvalidArgument("header column " + std::to_string(c + 1) + " '" + names[c] + "' repeats column " +
                                     std::to_string(map[f] + 1));
    }
    map[f] = static_cast<int>(c);
  }
  for (size_t f = 0; f < map.size(); ++f) {
    if (map[f] < 0 && !entity_.fields[f].nullable) {
      return Status::InvalidArgument("the header has no column for NOT NULL field '" + entity_.fields[f].name + "'");
    }
  }
  input_of_field_ = std::move(map);
  input_columns_ = names.size();
  return Status::Ok();
}

bool DelimitedEncoder::IsEntityHeader(const std::vector<DelimitedField>& fields) const {
  if (fields.size() != entity_.fields.size()) return false;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].null || fields[i].value != entity_.fields[i].name) return false;
  }
  return true;
}

bool DelimitedEncoder::Encode(const std::vector<DelimitedField>& fields, ByteBuffer* out, uint64_t* key_hash,
                              std::string* error) {
  if (fields.size() != input_columns_) {
    *error = "expected " + std::to_string(input_columns_) + " columns, found " + std::to_string(fields.size());
    return false;
  }
  const size_t mark = out->size();
  pg::AppendTupleStart(*out, static_cast<int16_t>(entity_.fields.size()));
  static const DelimitedField kNull{{}, true};
  for (size_t i = 0; i < entity_.fields.size(); ++i) {
    const int c = input_of_field_[i];
    const DelimitedField& v = c < 0 ? kNull : fields[static_cast<size_t>(c)];
    if (!EncodeValue(entity_.fields[i], v, out, error)) {
      *error = (c < 0 ? std::string("no column") : "column " + std::to_string(c + 1)) + " (field '" +
               entity_.fields[i].name + "'): " + *error;
      out->Truncate(mark);
      return false;
    }
  }
  if (key_hash != nullptr) {
    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t k : entity_.key_fields) {
      const int c = input_of_field_[k];
      h = Fnv1a(h, c < 0 ? std::string_view() : fields[static_cast<size_t>(c)].value);
    }
    *key_hash = entity_.key_fields.empty() ? 0 : h;
  }
  return true;
}

bool DelimitedEncoder::EncodeValue(const Field& f, const DelimitedField& v, ByteBuffer* out, std::string* error) {
  if (v.null) {
    if (!f.nullable) {
      *error = "empty (NULL) in a NOT NULL field";
      return false;
    }
    pg::AppendNullField(*out);
    return true;
  }
  const std::string_view s = v.value;
  auto bad = [&](std::string_view expected) {
    *error = "expected " + std::string(expected) + ", got '" + Excerpt(s) + "'";
    return false;
  };
  switch (f.type) {
    case FieldType::kString: {
      if (!IsValidUtf8(s)) return bad("valid UTF-8 text");
      if (std::memchr(s.data(), '\0', s.size()) != nullptr) {
        *error = "contains a NUL character, which PostgreSQL text cannot store";
        return false;
      }
      if (f.max_length > 0 && s.size() > f.max_length && pg::Utf8Length(s) > f.max_length) {
        *error = "longer than " + std::to_string(f.max_length) + " characters (VARCHAR(" +
                 std::to_string(f.max_length) + "))";
        return false;
      }
      pg::AppendTextField(*out, s);
      return true;
    }
    case FieldType::kInteger:
    case FieldType::kBigInt:
    case FieldType::kSmallInt: {
      int64_t x = 0;
      const char* end = s.data() + s.size();
      const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
      auto [p, ec] = std::from_chars(begin, end, x);
      if (ec != std::errc() || p != end) return bad(f.type == FieldType::kInteger ? "an integer" : "a big integer");
      if (f.type == FieldType::kSmallInt) {
        if (x < INT16_MIN || x > INT16_MAX) return bad("an integer in SMALLINT's range (-32768 to 32767)");
        pg::AppendInt16Field(*out, static_cast<int16_t>(x));
      } else if (f.type == FieldType::kInteger) {
        if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max()) {
          return bad("an integer in INTEGER's range");
        }
        pg::AppendInt32Field(*out, static_cast<int32_t>(x));
      } else {
        pg::AppendInt64Field(*out, x);
      }
      return true;
    }
    case FieldType::kFloat: {
      double d = 0;
      const char* end = s.data() + s.size();
      auto [p, ec] = std::from_chars(s.data(), end, d);
      if (ec != std::errc() || p != end || !std::isfinite(d)) return bad("a finite number");
      pg::AppendFloat8Field(*out, d);
      return true;
    }
    case FieldType::kReal: {
      const auto real = pg::ParseFloat4(s);
      if (!real) return bad("a number in REAL's range");
      pg::AppendFloat4Field(*out, *real);
      return true;
    }
    case FieldType::kDecimal:
      return pg::AppendNumericField(*out, s, error);
    case FieldType::kBoolean: {
      if (EqualsNoCase(s, "true") || EqualsNoCase(s, "t") || s == "1") {
        pg::AppendBoolField(*out, true);
      } else if (EqualsNoCase(s, "false") || EqualsNoCase(s, "f") || s == "0") {
        pg::AppendBoolField(*out, false);
      } else {
        return bad("a boolean (true, false, t, f, 1, 0)");
      }
      return true;
    }
    case FieldType::kDate: {
      auto days = pg::ParseDate(s);
      if (!days) return bad("a date YYYY-MM-DD");
      pg::AppendDateField(*out, *days);
      return true;
    }
    case FieldType::kDateTime: {
      auto us = pg::ParseTimestamp(s);
      if (!us) return bad("an ISO 8601 timestamp");
      pg::AppendTimestampField(*out, *us);
      return true;
    }
    case FieldType::kUuid: {
      uint8_t bytes[16];
      if (!DecodeUuid(s, bytes)) return bad("a UUID (32 hex digits, e.g. 123e4567-e89b-12d3-a456-426614174000)");
      pg::AppendTextField(*out, std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
      return true;
    }
    case FieldType::kJson:
      if (!IsValidUtf8(s) || !IsJsonValue(s)) return bad("a JSON value");
      pg::AppendJsonbField(*out, s);
      return true;
    case FieldType::kJsonText:
      if (!IsValidUtf8(s) || !IsJsonValue(s)) return bad("a JSON value");
      pg::AppendTextField(*out, s);
      return true;
    case FieldType::kTextArray: {
      std::string payload;
      if (!EncodeTextArrayJson(s, f, &payload, error)) return false;
      pg::AppendTextField(*out, payload);
      return true;
    }
  }
  return bad("a value");
}

}  // namespace nomnom
