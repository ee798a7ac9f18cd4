// text_array: a JSON array of strings and nulls -> the binary form of a
// one-dimensional PostgreSQL text[] / varchar[] value (array_send/array_recv):
//
//   int32 ndim (1; 0 for an empty array), int32 flags (1 when an element is
//   NULL), uint32 element type oid (25 text, 1043 varchar: the column's own,
//   which array_recv requires), then per dimension int32 length and int32
//   lower bound (1), then per element int32 byte length (-1 for NULL) and the
//   element's UTF-8 bytes.
//
// The payload is written without the field's own length prefix (the caller
// writes it, e.g. pg::AppendTextField). Elements must be strings or null; a
// string may not hold NUL and, for varchar(n) elements (Field::max_length),
// may not be longer than n characters. Errors name the element ("element 3:
// expected a string or null, got number") but not the field: callers prefix it.
//
// Pure functions apart from EncodeTextArrayJson's thread-local parser; safe to
// call from any thread.
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>

#include "core/format/schema.h"

namespace nomnom {

// Encodes the elements of `array` (an On-Demand array being iterated; it is
// consumed) for field f (a kTextArray) into *payload (replaced). False with
// *error set on a bad element or malformed JSON.
bool EncodeTextArray(simdjson::ondemand::array& array, const Field& f, std::string* payload, std::string* error);

// The same for JSON text (e.g. a CSV cell holding ["a","b"]).
bool EncodeTextArrayJson(std::string_view json, const Field& f, std::string* payload, std::string* error);

}  // namespace nomnom
