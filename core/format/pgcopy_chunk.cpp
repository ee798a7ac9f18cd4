#include "core/format/pgcopy_chunk.h"

#include <cstdio>

namespace nomnom {

namespace {

struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ULL;
  void Add(std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    // A separator no name or type contains, so ("ab","c") != ("a","bc").
    h ^= 0xFF;
    h *= 0x100000001b3ULL;
  }
  void Add(uint64_t v) { Add(std::to_string(v)); }
};

uint32_t ReadBe32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

std::string SchemaFingerprint(const Entity& entity) {
  // Everything the encoder's output or its meaning in the table depends on:
  // the table, and per column in order its name, nomnom's type (kJson and
  // kJsonText write different bytes for the same PostgreSQL-ish text), the
  // PostgreSQL type with its typmod (varchar(n), numeric(p,s), the array's
  // element type) and whether it may be NULL.
  Fnv1a f;
  f.Add("pgcopy1");
  f.Add(entity.TableName());
  f.Add(static_cast<uint64_t>(entity.fields.size()));
  for (const Field& field : entity.fields) {
    f.Add(field.name);
    f.Add(FieldTypeName(field.type));
    f.Add(field.PgTypeName());
    f.Add(static_cast<uint64_t>(field.type == FieldType::kTextArray ? field.array_element_oid : 0));
    f.Add(static_cast<uint64_t>(field.max_length));
    f.Add(static_cast<uint64_t>(field.precision) * 65536 + field.scale);
    f.Add(field.nullable ? "null" : "not null");
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(f.h));
  return hex;
}

std::string WalkTuples(std::string_view body, size_t columns, uint64_t expected_rows, std::vector<uint32_t>* offsets) {
  offsets->clear();
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  const size_t size = body.size();
  if (size > UINT32_MAX) return "body of " + std::to_string(size) + " bytes is larger than 4 GiB";
  size_t pos = 0;
  uint64_t row = 0;
  auto where = [&](uint64_t r, size_t field) {
    std::string s = "row " + std::to_string(r);
    if (field > 0) s += ", field " + std::to_string(field);
    return s + " (byte " + std::to_string(pos) + ")";
  };
  while (pos < size) {
    ++row;
    if (row > expected_rows) {
      return where(row, 0) + ": more tuples than the " + std::to_string(expected_rows) +
             " rows of the Nomnom-Rows header";
    }
    if (size - pos < 2) return where(row, 0) + ": truncated field count";
    offsets->push_back(static_cast<uint32_t>(pos));
    const auto count = static_cast<int16_t>((uint16_t{p[pos]} << 8) | uint16_t{p[pos + 1]});
    if (count < 0 || static_cast<size_t>(count) != columns) {
      return where(row, 0) + ": " + std::to_string(count) + " fields, the entity has " + std::to_string(columns);
    }
    pos += 2;
    for (size_t f = 1; f <= columns; ++f) {
      if (size - pos < 4) return where(row, f) + ": truncated field length";
      const auto len = static_cast<int32_t>(ReadBe32(p + pos));
      if (len < -1) return where(row, f) + ": negative field length " + std::to_string(len);
      pos += 4;
      if (len == -1) continue;
      if (static_cast<size_t>(len) > size - pos) {
        return where(row, f) + ": field length " + std::to_string(len) + " runs past the end of the body (" +
               std::to_string(size - pos) + " bytes left)";
      }
      pos += static_cast<size_t>(len);
    }
  }
  if (row != expected_rows) {
    return std::to_string(row) + " tuples, the Nomnom-Rows header says " + std::to_string(expected_rows);
  }
  return "";
}

}  // namespace nomnom
