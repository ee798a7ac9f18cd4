// pgcopy1 chunk bodies: the binary form of a chunk message (core/queue/ingest_format.h,
// core/README.md "JetStream messages"). The body is the concatenation of the
// rows' binary COPY tuples exactly as RowEncoder writes them (per tuple an
// int16 field count, then per field an int32 length, -1 for NULL, and that many
// bytes), without the COPY header and trailer.
//
//   * SchemaFingerprint: what the tuples' bytes depend on (table, columns in
//     order, their PostgreSQL types and typmods, nullability, nomnom's field
//     types), hashed; a worker applies a pgcopy1 chunk only when its own
//     entity has the same fingerprint.
//   * WalkTuples: the framing check a worker runs before COPY. It reads only
//     inside the body, whatever the bytes are.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/format/schema.h"

namespace nomnom {

// 16 lower-case hex digits (64-bit FNV-1a of a canonical description of the
// entity's table and columns; see pgcopy_chunk.cpp for exactly what is in it).
std::string SchemaFingerprint(const Entity& entity);

// Checks that body is exactly `expected_rows` tuples of `columns` fields each
// (every field length -1 or within the body, no bytes after the last tuple)
// and appends the start of each tuple to *offsets (cleared first). Returns ""
// when it is, else the reason, naming the row (1-based), the field (1-based)
// and the byte offset; *offsets is unspecified then.
std::string WalkTuples(std::string_view body, size_t columns, uint64_t expected_rows, std::vector<uint32_t>* offsets);

}  // namespace nomnom
