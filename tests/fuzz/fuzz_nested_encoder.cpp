// libFuzzer harness: NestedEncoder::Encode (core/format/nested_encoder.h), which
// encodes one NDJSON line of a root entity into its row and one row per
// element of the root's List[Object] field (a derived entity with copy_field,
// json_get_int and json_get_optional_* fields, key (order_key, line)), and one
// row per element of each element's own `adjs` list (depth 2: copies from the
// grandparent and the parent, key (order_key, line, n)).
//
// Input: the first byte picks whether the list is nullable and what follows
// the line in its buffer (zeros, or the line's own bytes); the rest is the
// line, in a heap block of exactly line + kChunkPadding bytes so ASan sees any
// read past the padding.
//
// Invariants: the root tuple is byte for byte the flat RowEncoder's for the
// same line (and the root is rejected whenever the flat encoder rejects it);
// every child and grandchild tuple has its entity's field count and starts
// with the root's order_key field; when nlohmann parses the line as an object with one
// "items" key holding an array of objects, there is one child row per
// element. On rejection the error is non-empty valid UTF-8 and every output is
// as it was.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/nested_encoder.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::Entity;

constexpr std::string_view kRootYaml = R"(entity:
  name: Order
  fields:
    - {name: order_key, type: String, args: [8]}
    - {name: note, type: String, nullable: true}
    - {name: items, type: "List[Object]", nullable: NULLABLE}
  persistence: {database: {unicity_fields: [order_key]}}
)";

constexpr std::string_view kItemYaml = R"(entity:
  name: Item
  source_type: derived
  repeated_for: {entity: Order, field: items, each_known_as: it}
  fields:
    - name: order_key
      type: String
      args: [8]
      computed_from: {transform: copy_field, sources: [{source: Order, field: order_key}]}
    - name: line
      type: Integer
      computed_from: {transform: json_get_int, sources: [it], args: {field: line}}
    - name: sku
      type: String
      args: [4]
      nullable: true
      computed_from: {transform: json_get_optional_string, sources: [it], args: {field: sku}}
    - name: price
      type: Float
      nullable: true
      computed_from: {transform: json_get_optional_float, sources: [it], args: {field: price}}
    - {name: adjs, type: "List[Object]", nullable: true}
  persistence: {database: {unicity_fields: [order_key, line]}}
)";

constexpr std::string_view kSubYaml = R"(entity:
  name: Sub
  source_type: derived
  repeated_for: {entity: Item, field: adjs, each_known_as: s}
  fields:
    - name: order_key
      type: String
      args: [8]
      computed_from: {transform: copy_field, sources: [{source: Order, field: order_key}]}
    - name: line
      type: Integer
      computed_from: {transform: copy_field, sources: [{source: Item, field: line}]}
    - name: n
      type: Integer
      computed_from: {transform: json_get_int, sources: [s], args: {field: n}}
  persistence: {database: {unicity_fields: [order_key, line, n]}}
)";

Entity Parse(std::string yaml, bool nullable) {
  const size_t at = yaml.find("NULLABLE");
  if (at != std::string::npos) yaml.replace(at, 8, nullable ? "true" : "false");
  auto e = nomnom::ParseEntity(yaml, "fuzz");
  if (!e.ok()) std::abort();
  return std::move(e).value();
}

struct Encoders {
  explicit Encoders(bool nullable)
      : root(Parse(std::string(kRootYaml), nullable)),
        item(Parse(std::string(kItemYaml), nullable)),
        sub(Parse(std::string(kSubYaml), nullable)),
        flat(root, {}),
        nested(root, {&item, &sub}, {}) {}
  Entity root, item, sub;
  nomnom::RowEncoder flat;
  nomnom::NestedEncoder nested;
};

uint32_t Be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

// The bytes of field 0 (with its length word) of a tuple.
std::string_view FirstField(std::string_view t) {
  if (t.size() < 6) return {};
  const int32_t len = static_cast<int32_t>(Be32(t.data() + 2));
  return t.substr(2, 4 + (len < 0 ? 0 : static_cast<size_t>(len)));
}

size_t Count(std::string_view s, std::string_view what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string_view::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const bool nullable = (flags & 1) != 0;
  const bool pad_with_line = (flags & 2) != 0;
  static Encoders* encoders[2] = {new Encoders(false), new Encoders(true)};
  Encoders& e = *encoders[nullable ? 1 : 0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (input.find('\n') != std::string_view::npos) return 0;  // one line

  const size_t block = input.size() + nomnom::kChunkPadding;
  std::unique_ptr<char[]> buf(new char[block]);
  std::memcpy(buf.get(), input.data(), input.size());
  for (size_t i = input.size(); i < block; ++i) {
    buf[i] = pad_with_line && !input.empty() ? input[(i - input.size()) % input.size()] : '\0';
  }
  const std::string_view line(buf.get(), input.size());

  nomnom::ByteBuffer flat_out;
  std::string flat_error;
  const bool flat_ok = e.flat.Encode(line, block, &flat_out, nullptr, &flat_error);

  nomnom::ByteBuffer root_out, child_out, sub_out;
  std::vector<uint32_t> offsets, sub_offsets;
  root_out.Append("prefix", 6);  // outputs already hold rows
  child_out.Append("prefix", 6);
  sub_out.Append("prefix", 6);
  offsets.push_back(0);
  sub_offsets.push_back(0);
  nomnom::NestedEncoder::Output out;
  out.root = &root_out;
  out.children = {&child_out, &sub_out};
  out.child_offsets = {&offsets, &sub_offsets};
  std::string error;
  const bool ok = e.nested.Encode(line, block, out, nullptr, &error);
  if (!ok) {
    FUZZ_CHECK(!error.empty(), "a reject without a reason");
    FUZZ_CHECK(nomnom::fuzz::Utf8Valid(error), "error is not valid UTF-8: " + error);
    FUZZ_CHECK(root_out.size() == 6 && child_out.size() == 6 && offsets.size() == 1 && sub_out.size() == 6 &&
                   sub_offsets.size() == 1,
               "a reject left output behind");
    return 0;
  }
  FUZZ_CHECK(flat_ok, "nested accepted a line the flat encoder rejects: " + flat_error);
  const std::string_view root_tuple(root_out.data() + 6, root_out.size() - 6);
  FUZZ_CHECK(root_tuple == flat_out.view(), "root tuple differs from the flat encoder's");
  const std::string_view key = FirstField(root_tuple);
  const size_t rows = offsets.size() - 1;
  for (size_t r = 1; r < offsets.size(); ++r) {
    const size_t from = offsets[r];
    const size_t to = r + 1 < offsets.size() ? offsets[r + 1] : child_out.size();
    FUZZ_CHECK(from >= 6 && from < to && to <= child_out.size(), "child offsets out of order");
    const std::string_view t(child_out.data() + from, to - from);
    FUZZ_CHECK(((static_cast<unsigned char>(t[0]) << 8) | static_cast<unsigned char>(t[1])) == 4,
               "child tuple field count");
    FUZZ_CHECK(FirstField(t) == key, "child's order_key is not the root's");
  }
  for (size_t r = 1; r < sub_offsets.size(); ++r) {
    const size_t from = sub_offsets[r];
    const size_t to = r + 1 < sub_offsets.size() ? sub_offsets[r + 1] : sub_out.size();
    FUZZ_CHECK(from >= 6 && from < to && to <= sub_out.size(), "grandchild offsets out of order");
    const std::string_view t(sub_out.data() + from, to - from);
    FUZZ_CHECK(((static_cast<unsigned char>(t[0]) << 8) | static_cast<unsigned char>(t[1])) == 3,
               "grandchild tuple field count");
    FUZZ_CHECK(FirstField(t) == key, "grandchild's order_key is not the root's");
  }
  FUZZ_CHECK(sub_offsets.size() == 1 || rows > 0, "grandchildren without children");
  // One "items" key (nlohmann keeps the last duplicate, the encoder the first).
  if (Count(line, "\"items\"") == 1 && Count(line, "\\") == 0) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("items") && j["items"].is_array()) {
      FUZZ_CHECK(j["items"].size() == rows,
                 "child rows != elements: " + std::to_string(rows) + " vs " + std::to_string(j["items"].size()));
    }
  }
  return 0;
}
