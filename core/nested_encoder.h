// NestedEncoder: one input line of a root entity -> its row and the rows of
// the entities derived from it (`repeated_for`): one row of each derived
// entity per element of the root's List[Object] field it repeats for.
//
// The root row is encoded by a RowEncoder exactly as in a flat load. Each
// element's raw JSON object, with the copy_field values of the root object
// put in front under reserved keys, is then encoded by a RowEncoder over a
// view of the derived entity (json_get fields read the element's keys;
// required ones are NOT NULL there). A line is all or nothing: when any
// element is bad (a missing required key, a wrong type, the list not an array,
// empty when the field is not nullable, two elements with the same unicity
// key), nothing of the line is written and the error names the element:
//   "line_items[3].quantity: expected a number, got string"
// (elements are counted from 0). One level of derived entities is supported.
//
// Thread-safety: like RowEncoder, one per thread. The entities must outlive it.
#pragma once

#include <simdjson.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/byte_buffer.h"
#include "core/row_encoder.h"
#include "core/schema.h"
#include "core/status.h"

namespace nomnom {

class NestedEncoder {
 public:
  // Whether a nested load of root with these derived entities (from
  // DerivedEntities) is supported: every one repeats for root itself.
  static Status Check(const Entity& root, const std::vector<const Entity*>& derived);

  NestedEncoder(const Entity& root, std::vector<const Entity*> derived, RowEncoderOptions options);

  // Where one line's rows go: the root's tuple to *root, each derived
  // entity's tuples to children[d] (offsets appended to child_offsets[d]).
  struct Output {
    ByteBuffer* root = nullptr;
    std::vector<ByteBuffer*> children;
    std::vector<std::vector<uint32_t>*> child_offsets;
  };

  // Encodes `line` (see RowEncoder::Encode for `readable` and key_hash: the
  // root's key). On rejection returns false with *error set and every output
  // as it was.
  bool Encode(std::string_view line, size_t readable, const Output& out, uint64_t* key_hash, std::string* error);

 private:
  struct Derived {
    const Entity* entity;
    std::unique_ptr<Entity> view;  // the entity as the element is read
    std::unique_ptr<RowEncoder> encoder;
    const Field* list;  // the root's field it repeats for
    // The root fields copied into each element: (root field, reserved key).
    std::vector<std::pair<std::string, std::string>> copies;
  };
  bool EncodeChildren(size_t d, std::string_view list_raw, const Output& out, std::string* error);

  const Entity& root_;
  RowEncoder root_encoder_;
  std::vector<Derived> derived_;
  simdjson::ondemand::parser parser_;
  simdjson::ondemand::parser item_parser_;
  // The root object's values this line needs: each list, each copied field
  // (raw JSON text, empty when absent).
  std::vector<std::string_view> lists_;
  std::vector<std::string> list_seen_;  // "" absent, else the JSON type of a non-array
  std::vector<std::string> copy_names_;
  std::vector<std::string_view> copy_values_;
  std::string prefix_;             // the copied values as `"key":value,` for the current derived entity
  std::string row_;                // one element's object (+ padding)
  std::vector<std::string> keys_;  // unicity keys of the line's elements
};

}  // namespace nomnom
