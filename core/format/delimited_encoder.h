// DelimitedEncoder: one CSV / .tbl record (core/format/delimited_parser.h) -> one
// binary COPY tuple, or the reason it is rejected.
//
// Columns are the entity's fields in entity order, or, after SetColumns (a
// header), in the header's order. Each value is validated as the NDJSON
// encoder validates it: NULL (an empty unquoted field) only in nullable
// fields; Integer/BigInt whole numbers in range; Float finite; Decimal as
// NUMERIC's input; Boolean true/false/t/f/1/0 (any case); Date "YYYY-MM-DD";
// DateTime ISO 8601; Json a JSON value; text valid UTF-8 without NUL, within
// VARCHAR(n). A wrong number of fields is rejected naming both counts; a bad
// value's error names the column (1-based) and the field.
//
// Thread-safety: one thread at a time. The Entity must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/base/status.h"
#include "core/format/delimited_parser.h"
#include "core/format/schema.h"

namespace nomnom {

class DelimitedEncoder {
 public:
  explicit DelimitedEncoder(const Entity& entity);

  // The input's columns by name (a header). Every name must be a field of
  // the entity, at most once; fields not named are NULL (so must be nullable).
  Status SetColumns(const std::vector<std::string>& names);
  // True when the record's values are exactly the entity's field names in
  // entity order (a header line to skip when auto-detecting).
  bool IsEntityHeader(const std::vector<DelimitedField>& fields) const;

  // Appends the tuple to *out and returns true, setting *key_hash (unless
  // null) to a hash of the unicity fields' encoded values (so equal values
  // written differently, 1 and 01 in an Integer, hash alike). On rejection returns false
  // with *error set and *out unchanged.
  bool Encode(const std::vector<DelimitedField>& fields, ByteBuffer* out, uint64_t* key_hash, std::string* error);

  enum class Fused {
    kRow,         // the tuple was appended to *out
    kNeedMore,    // as DelimitedParser's kNeedMore; *out unchanged
    kParseError,  // as DelimitedParser's kError (*error is the parser's); *out unchanged
    kRejected,    // the record parsed but Encode would reject it (*error is Encode's); *out unchanged
  };
  // parser->Next then Encode in one pass: each field is encoded as the parser
  // finds it, without the field vector. Results, *out, *key_hash, *consumed,
  // *lines and every error message are exactly those of the two calls (a
  // parse error wins over a wrong field count, which wins over a bad value).
  Fused ParseAndEncode(DelimitedParser* parser, std::string_view text, bool at_end, uint64_t line, ByteBuffer* out,
                       uint64_t* key_hash, size_t* consumed, uint64_t* lines, std::string* error);

 private:
  class RecordSink;  // ParseAndEncode's field sink

  bool EncodeValue(const Field& f, const DelimitedField& v, ByteBuffer* out, std::string* error);

  // What Encode's fast paths need of field i, kept small and together.
  struct Column {
    FieldType type;
    bool nullable;
    uint32_t max_length;
    int input;  // input_of_field_[i]
  };
  void BuildColumns();

  const Entity& entity_;
  std::vector<int> input_of_field_;  // field index -> input column (-1: none, NULL)
  size_t input_columns_ = 0;
  std::vector<Column> columns_;         // per field, in entity order
  std::vector<size_t> field_start_;     // Encode's scratch: each field's offset in the output, then its end
  bool identity_ = true;                // input column i is field i, for every field (ParseAndEncode's fused path)
  std::vector<DelimitedField> fields_;  // ParseAndEncode's fields when not identity_
};

}  // namespace nomnom
