// NestedEncoder: one input line of a root entity -> its row and the rows of
// every entity derived from it (`repeated_for`), at any depth: one row of a
// derived entity per element of its parent's List[Object] field, where the
// parent is the root or another derived entity (an OrderLineItem repeats for
// Order.line_items, an OrderLineItemAdjustment for OrderLineItem.adjustments).
//
// The root row is encoded by a RowEncoder exactly as in a flat load. Each
// element's raw JSON object, with its copy_field values put in front under
// reserved keys, is then encoded by a RowEncoder over a view of the derived
// entity (json_get fields read the element's keys; required ones are NOT NULL
// there). copy_field may name the parent or any ancestor up to the root; the
// value is read from that ancestor's object (following copy_field chains to
// the key it came from). A line is all or nothing: when any element at any
// depth is bad (a missing required key, a wrong type, a list not an array,
// empty when the field is not nullable, two elements of one list with the
// same unicity key), nothing of the line is written and the error names the
// element by its full path (elements are counted from 0):
//   "line_items[3].quantity: expected a number, got string"
//   "line_items[2].adjustments[0].amount: expected a number, got string"
//
// Rows go to one output per derived entity, in the order of the entities
// given (DerivedEntities: parents before children); all rows of one line are
// consecutive in each output, so every derived row belongs to its root line.
//
// Thread-safety: like RowEncoder, one per thread. The entities must outlive it.
#pragma once

#include <simdjson.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/base/status.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"

namespace nomnom {

class NestedEncoder {
 public:
  // Whether a nested load of root with these derived entities (from
  // DerivedEntities) is supported: each repeats for root or for an entity
  // before it in `derived`, through a List field that entity has, and each
  // copy_field names an ancestor (or a field the root copies from above it).
  static Status Check(const Entity& root, const std::vector<const Entity*>& derived);

  // Expects a set Check() accepts (copies it cannot resolve are left NULL).
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
  // The objects of one entity as they are read (level 0: the root's line,
  // 1 + d: the elements of derived_[d]): what they feed their descendants.
  struct Level {
    std::vector<size_t> children;         // derived entities whose list is in this entity's objects
    std::vector<std::string> value_keys;  // keys whose raw values descendants copy
    // Of the object being read:
    std::vector<std::string_view> lists;                 // per child: the raw array
    std::vector<std::string> list_seen;                  // per child: "" absent, else the JSON type
    std::vector<std::string_view> values;                // per value key: raw JSON, empty when absent
    std::unique_ptr<simdjson::ondemand::parser> parser;  // reads the object for lists and values
  };
  struct Derived {
    const Entity* entity;
    size_t parent = 0;             // level of the parent
    std::unique_ptr<Entity> view;  // the entity as the element is read
    std::unique_ptr<RowEncoder> encoder;
    const Field* list = nullptr;  // the parent's field it repeats for
    // Copied values: (reserved key, (level, value slot)).
    std::vector<std::pair<std::string, std::pair<size_t, size_t>>> copies;
    std::unique_ptr<simdjson::ondemand::parser> list_parser;
    std::vector<std::string> keys;  // unicity keys of the current list's elements
    std::string prefix;             // the copied values as `"key":value,`
  };
  // Finds the lists and copied values of an object of `level`.
  bool Scan(size_t level, std::string_view raw, std::string* error);
  // Encodes the elements of child slot `slot` of the object of `level` read
  // last; `path` names that object ("" for the root, "line_items[2]").
  bool EncodeList(size_t level, size_t slot, const std::string& path, const Output& out, std::string* error);
  bool EncodeElements(size_t d, std::string_view list_raw, const std::string& list_path, const Output& out,
                      std::string* error);
  // Bytes readable from p (inside the line being encoded).
  size_t Readable(const char* p) const { return static_cast<size_t>(line_end_ - p); }

  const Entity& root_;
  RowEncoder root_encoder_;
  std::vector<Derived> derived_;
  std::vector<Level> levels_;
  const char* line_end_ = nullptr;  // end of the readable bytes of the line
  std::string row_;                 // one element's object (+ padding)
};

}  // namespace nomnom
