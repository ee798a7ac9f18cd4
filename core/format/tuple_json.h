// TupleToJson: one binary COPY tuple as RowEncoder writes it -> a JSON object
// that RowEncoder encodes back into the same bytes. Used to give a row of a
// pgcopy1 chunk (core/format/pgcopy_chunk.h) a readable `raw` when it is
// dead-lettered.
//
// Keys are the fields' input names in column order; NULL is `null`. Per type:
// String and the elements of TextArray as JSON strings; Integer, BigInt,
// SmallInt as integers; Float and Real as the shortest decimal that reads back
// to the same double / float; Decimal as a JSON number with exactly its display
// scale (NaN and the infinities as the strings "NaN", "Infinity",
// "-Infinity"); Boolean true/false; Date "YYYY-MM-DD"; DateTime
// "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC); Uuid in its 8-4-4-4-12 form; Json
// (jsonb) and JsonText as their JSON text.
//
// Never reads outside `tuple`. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "core/format/schema.h"

namespace nomnom {

// Appends the JSON object to *out and returns true; on bytes that are not a
// tuple of this entity returns false with *error naming the field (and *out
// unspecified).
bool TupleToJson(const Entity& entity, std::string_view tuple, std::string* out, std::string* error);

// What a dead letter of a pgcopy1 row carries: TupleToJson's object, or, for
// bytes it cannot read, "pgcopy1 tuple (<why>): \x<hex>".
std::string TupleRaw(const Entity& entity, std::string_view tuple);

// "\x" and the bytes in lower-case hex (PostgreSQL's bytea text form).
std::string HexBytes(std::string_view bytes);

}  // namespace nomnom
