// RowEncoder: one NDJSON line -> one binary COPY tuple, or the reason it is
// rejected.
//
// The line is parsed with simdjson On-Demand in place (the bytes after it must
// be readable: see kChunkPadding), validated against the entity (required
// fields, nulls, JSON types, integer range and fractions, double range,
// VARCHAR(n) length, dates, NUL characters, UTF-8) and encoded straight into
// the output buffer in column order. Unknown fields are ignored unless
// `strict` is set.
//
// Thread-safety: a RowEncoder owns a simdjson parser and must be used by one
// thread at a time; create one per parser thread. The Entity must outlive it.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/schema.h"

namespace nomnom {

// s without the JSON whitespace at its end (raw_json_token() keeps it).
std::string_view TrimJsonSpace(std::string_view s);
// A UUID's text (32 hex digits, optionally with the usual hyphens or in
// braces, as PostgreSQL's uuid_in accepts) into its 16 bytes; false if it is not one.
bool DecodeUuid(std::string_view text, uint8_t out[16]);

struct RowEncoderOptions {
  bool strict = false;  // reject objects with fields the entity does not define
};

class RowEncoder {
 public:
  RowEncoder(const Entity& entity, RowEncoderOptions options);

  // Appends the tuple for `line` (without its newline) to *out and returns
  // true, setting *key_hash (unless null) to a hash of the unicity fields'
  // values (0 when the entity has none). `readable` is how many bytes starting at line.data() may
  // be read (>= line.size() + kChunkPadding). On rejection returns false, sets
  // *error to a readable reason naming the field, and leaves *out unchanged.
  bool Encode(std::string_view line, size_t readable, ByteBuffer* out, uint64_t* key_hash, std::string* error);

  const Entity& entity() const { return entity_; }

 private:
  // A decoded JSON value waiting to be written in column order.
  struct Slot {
    enum class State : uint8_t { kMissing, kNull, kSet };
    State state = State::kMissing;
    int64_t i = 0;       // Integer, BigInt, Date (days), DateTime (usecs), Boolean
    double d = 0;        // Float, Real
    std::string_view s;  // String, Decimal (number text), Json (raw text), TextArray (arrays_[i])
  };

  // A field name and its closing quote, for one 16-byte comparison.
  struct KeyPattern {
    char bytes[16] = {};
    unsigned mask = 0;  // 0: name too long, compare with memcmp
  };
  bool KeyEquals(const char* raw_key, size_t field) const;
  int Lookup(simdjson::ondemand::field& field, std::string* unknown_name);
  bool DecodeStringFast(size_t index, simdjson::ondemand::value& value);
  bool DecodeValue(size_t index, simdjson::ondemand::value& value, std::string* error);
  bool WriteTuple(size_t line_size, ByteBuffer* out, uint64_t* key_hash, std::string* error);

  const Entity& entity_;
  RowEncoderOptions options_;
  simdjson::ondemand::parser parser_;
  std::vector<Slot> slots_;
  std::vector<KeyPattern> key_patterns_;
  int next_guess_ = 0;  // fields usually arrive in the same order line after line
  std::string scratch_;
  // TextArray fields: the array's binary payload (core/format/text_array.h), one
  // per field, capacity reused line after line.
  std::vector<std::string> arrays_;
};

}  // namespace nomnom
