#include "core/format/delimited_encoder.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/base/byte_writer.h"
#include "core/base/utf8.h"
#include "core/format/delimited_scan.h"
#include "core/format/json_check.h"
#include "core/format/pg_binary.h"
#include "core/format/pg_float4.h"
#include "core/format/row_encoder.h"
#include "core/format/text_array.h"

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

// True when every byte of s is 0x01..0x7F: ASCII without NUL, so valid
// UTF-8 with one character per byte. Eight bytes at a time; false says
// nothing (the caller checks such text fully).
[[gnu::always_inline]] inline bool IsAsciiWithoutNul(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  if (n < 8) {
    unsigned bad = 0;
    // c - 1 wraps to 0xFF for NUL and is >= 0x7F for bytes >= 0x80.
    for (size_t i = 0; i < n; ++i) bad |= static_cast<unsigned>(static_cast<uint8_t>(p[i] - 1) >= 0x7F);
    return bad == 0;
  }
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  // A high bit set, or a zero byte (w - kOnes borrows into its high bit;
  // exact for the lowest such byte, and only "is there one" matters).
  const auto non_ascii_or_nul = [](uint64_t w) { return (w | (w - kOnes)) & kHighs; };
  uint64_t bad = 0;
  uint64_t w;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    std::memcpy(&w, p + i, 8);
    bad |= non_ascii_or_nul(w);
  }
  std::memcpy(&w, p + n - 8, 8);  // the last (overlapping) eight bytes
  return (bad | non_ascii_or_nul(w)) == 0;
}

// Whole numbers of at most 18 digits with an optional sign, the common case;
// false for anything else (including valid numbers the caller then parses
// with std::from_chars).
[[gnu::always_inline]] inline bool ParseSmallInt(std::string_view s, int64_t* out) {
  size_t i = 0;
  const bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) i = 1;
  if (s.size() == i || s.size() - i > 18) return false;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    const unsigned d = static_cast<unsigned>(static_cast<uint8_t>(s[i])) - '0';
    if (d > 9) return false;
    v = v * 10 + d;
  }
  *out = negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  return true;
}

// Writes v as a field of type `type` at *w and advances *w when it is a
// common, valid value (the fast paths); false (nothing written) for anything
// else, which the caller hands to EncodeValue. Writes at most 20 bytes
// besides the value's text.
// Forced inline: as a call, it made ParseAndEncode 7 % slower than Next +
// Encode (the per-field call and its spills outweighed the saved vector).
[[gnu::always_inline]] inline bool WriteFast(FieldType type, bool nullable, uint32_t max_length,
                                             const DelimitedField& v, char** out) {
  char* w = *out;
  if (v.null) {
    if (!nullable) return false;
    *out = PutBigEndian(w, uint32_t{0xFFFFFFFF});  // NULL: length -1
    return true;
  }
  const std::string_view s = v.value;
  switch (type) {
    case FieldType::kString:
      if (IsAsciiWithoutNul(s) && (max_length == 0 || s.size() <= max_length)) {
        w = PutBigEndian(w, static_cast<uint32_t>(s.size()));
        *out = CopyBytesInline(w, s);
        return true;
      }
      return false;
    case FieldType::kInteger: {
      int64_t x;
      if (ParseSmallInt(s, &x) && x >= std::numeric_limits<int32_t>::min() &&
          x <= std::numeric_limits<int32_t>::max()) {
        w = PutBigEndian(w, uint32_t{4});
        *out = PutBigEndian(w, static_cast<uint32_t>(static_cast<int32_t>(x)));
        return true;
      }
      return false;
    }
    case FieldType::kBigInt: {
      int64_t x;
      if (ParseSmallInt(s, &x)) {
        w = PutBigEndian(w, uint32_t{8});
        *out = PutBigEndian(w, static_cast<uint64_t>(x));
        return true;
      }
      return false;
    }
    case FieldType::kDecimal:
      if (char* end = pg::WritePlainNumericFieldInline(w, s); end != nullptr) {
        *out = end;
        return true;
      }
      return false;
    case FieldType::kDate:
      if (int32_t days; pg::ParseDateInline(s, &days)) {
        w = PutBigEndian(w, uint32_t{4});
        *out = PutBigEndian(w, static_cast<uint32_t>(days));
        return true;
      }
      return false;
    case FieldType::kSmallInt:
    case FieldType::kFloat:
    case FieldType::kReal:
    case FieldType::kBoolean:
    case FieldType::kDateTime:
    case FieldType::kUuid:
    case FieldType::kJson:
    case FieldType::kJsonText:
    case FieldType::kTextArray:
      return false;
  }
  return false;
}

}  // namespace

DelimitedEncoder::DelimitedEncoder(const Entity& entity)
    : entity_(entity), input_of_field_(entity.fields.size(), 0), input_columns_(entity.fields.size()) {
  for (size_t i = 0; i < input_of_field_.size(); ++i) input_of_field_[i] = static_cast<int>(i);
  BuildColumns();
}

void DelimitedEncoder::BuildColumns() {
  columns_.clear();
  identity_ = input_columns_ == entity_.fields.size();
  for (size_t i = 0; i < entity_.fields.size(); ++i) {
    const Field& f = entity_.fields[i];
    columns_.push_back(Column{f.type, f.nullable, f.max_length, input_of_field_[i]});
    identity_ = identity_ && input_of_field_[i] == static_cast<int>(i);
  }
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
  BuildColumns();
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
  // Room for the whole tuple, reserved once and written through a cursor:
  // no field the fast paths below write takes more than 20 bytes besides
  // its text (a plain numeric: 12 + 2 bytes per 4 digits).
  size_t bound = 2 + 20 * columns_.size();
  for (const DelimitedField& v : fields) bound += v.value.size();
  char* begin = out->Grow(bound);
  size_t base = out->size();  // where `begin` is in *out
  char* w = PutBigEndian(begin, static_cast<uint16_t>(columns_.size()));
  static constexpr DelimitedField kNull{{}, true};
  // With key_hash: where each field's bytes start in *out (the key is hashed
  // from its encoded bytes, so 1 and 01 in an Integer key route alike).
  if (key_hash != nullptr) field_start_.resize(columns_.size() + 1);
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (key_hash != nullptr) field_start_[i] = base + static_cast<size_t>(w - begin);
    const Column& f = columns_[i];
    const int c = f.input;
    const DelimitedField& v = c < 0 ? kNull : fields[static_cast<size_t>(c)];
    // Fast paths for the common, valid values; anything else (and every
    // rejection) goes to EncodeValue below, which decides it fully.
    if (WriteFast(f.type, f.nullable, f.max_length, v, &w)) continue;
    out->Commit(static_cast<size_t>(w - begin));
    if (!EncodeValue(entity_.fields[i], v, out, error)) {
      *error = (c < 0 ? std::string("no column") : "column " + std::to_string(c + 1)) + " (field '" +
               entity_.fields[i].name + "'): " + *error;
      out->Truncate(mark);
      return false;
    }
    begin = out->Grow(bound);  // still room for every field left
    base = out->size();
    w = begin;
  }
  out->Commit(static_cast<size_t>(w - begin));
  if (key_hash != nullptr) {
    field_start_[columns_.size()] = out->size();
    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t k : entity_.key_fields) {
      h = Fnv1a(h, std::string_view(out->data() + field_start_[k], field_start_[k + 1] - field_start_[k]));
    }
    *key_hash = entity_.key_fields.empty() ? 0 : h;
  }
  return true;
}

// Encodes each field as DelimitedParser::NextInto finds it (input column i
// is field i: identity_). Mirrors Encode: the same fast paths and
// EncodeValue, the same first bad value; the field count is checked at the
// end, where Encode checks it first, so Finish puts a wrong count first.
class DelimitedEncoder::RecordSink {
 public:
  RecordSink(DelimitedEncoder* encoder, ByteBuffer* out, bool hash)
      : enc_(*encoder), out_(out), mark_(out->size()), hash_(hash), columns_(encoder->columns_.size()) {
    Start();
  }

  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  void clear() {
    if (count_ == 0) return;  // only the field count written: keep it
    out_->Truncate(mark_);
    w_ = nullptr;
    count_ = 0;
    failed_ = false;
    Start();
  }
  [[gnu::always_inline]] void push_back(const DelimitedField& v) {
    const size_t i = count_++;
    if (i >= columns_ || failed_) return;
    if (static_cast<size_t>(limit_ - w_) < v.value.size() + 20) Room(v.value.size() + 20);
    if (hash_) enc_.field_start_[i] = base_ + static_cast<size_t>(w_ - begin_);
    const Column& f = enc_.columns_[i];
    if (WriteFast(f.type, f.nullable, f.max_length, v, &w_)) return;
    out_->Commit(static_cast<size_t>(w_ - begin_));
    w_ = nullptr;
    if (!enc_.EncodeValue(enc_.entity_.fields[i], v, out_, &value_error_)) {
      value_error_ =
          "column " + std::to_string(i + 1) + " (field '" + enc_.entity_.fields[i].name + "'): " + value_error_;
      failed_ = true;
    }
    Room(0);
  }

  // After a record was parsed: the tuple is complete, or *error says why
  // Encode would reject the record (and *out is as it was).
  bool Finish(uint64_t* key_hash, std::string* error) {
    if (count_ != enc_.input_columns_) {
      *error = "expected " + std::to_string(enc_.input_columns_) + " columns, found " + std::to_string(count_);
      out_->Truncate(mark_);
      return false;
    }
    if (failed_) {
      *error = std::move(value_error_);
      out_->Truncate(mark_);
      return false;
    }
    out_->Commit(static_cast<size_t>(w_ - begin_));
    if (hash_) {
      enc_.field_start_[columns_] = out_->size();
      uint64_t h = 0xCBF29CE484222325ULL;
      for (size_t k : enc_.entity_.key_fields) {
        h = Fnv1a(
            h, std::string_view(out_->data() + enc_.field_start_[k], enc_.field_start_[k + 1] - enc_.field_start_[k]));
      }
      *key_hash = enc_.entity_.key_fields.empty() ? 0 : h;
    }
    return true;
  }
  void Abandon() { out_->Truncate(mark_); }

 private:
  // Room for the tuple's field count and short fields; longer ones make more.
  void Start() {
    if (hash_) enc_.field_start_.resize(columns_ + 1);
    Room(0);
    w_ = PutBigEndian(w_, static_cast<uint16_t>(columns_));
  }
  // Commits what was written and makes room for at least `need` more bytes.
  void Room(size_t need) {
    if (w_ != nullptr) out_->Commit(static_cast<size_t>(w_ - begin_));
    const size_t n = std::max(need, 2 + 20 * columns_ + 256);
    begin_ = out_->Grow(n);
    base_ = out_->size();
    w_ = begin_;
    limit_ = begin_ + n;
  }

  DelimitedEncoder& enc_;
  ByteBuffer* out_;
  size_t mark_;
  bool hash_;
  size_t columns_;
  size_t count_ = 0;
  bool failed_ = false;
  std::string value_error_;
  char* begin_ = nullptr;  // where the uncommitted bytes start (at *out offset base_)
  size_t base_ = 0;
  char* w_ = nullptr;
  char* limit_ = nullptr;
};

DelimitedEncoder::Fused DelimitedEncoder::ParseAndEncode(DelimitedParser* parser, std::string_view text, bool at_end,
                                                         uint64_t line, ByteBuffer* out, uint64_t* key_hash,
                                                         size_t* consumed, uint64_t* lines, std::string* error) {
  if (!identity_) {
    switch (parser->Next(text, at_end, line, &fields_, consumed, lines, error)) {
      case DelimitedParser::Result::kRecord:
        return Encode(fields_, out, key_hash, error) ? Fused::kRow : Fused::kRejected;
      case DelimitedParser::Result::kNeedMore:
        return Fused::kNeedMore;
      case DelimitedParser::Result::kError:
        return Fused::kParseError;
    }
    return Fused::kParseError;
  }
  RecordSink sink(this, out, key_hash != nullptr);
  switch (parser->NextInto(text, at_end, line, &sink, consumed, lines, error)) {
    case DelimitedParser::Result::kRecord:
      return sink.Finish(key_hash, error) ? Fused::kRow : Fused::kRejected;
    case DelimitedParser::Result::kNeedMore:
      sink.Abandon();
      return Fused::kNeedMore;
    case DelimitedParser::Result::kError:
      sink.Abandon();
      return Fused::kParseError;
  }
  sink.Abandon();
  return Fused::kParseError;
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
    case FieldType::kJson: {
      if (!IsValidUtf8(s)) return bad("a JSON value");
      // What jsonb cannot store is refused here, not by PostgreSQL after the row was taken.
      const JsonCheck check = CheckJsonValue(s, JsonRules::kJsonb);
      if (check == JsonCheck::kMalformed) return bad("a JSON value");
      if (check != JsonCheck::kOk) {
        *error = std::string(JsonCheckMessage(check)) + ": '" + Excerpt(s) + "'";
        return false;
      }
      pg::AppendJsonbField(*out, s);
      return true;
    }
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
