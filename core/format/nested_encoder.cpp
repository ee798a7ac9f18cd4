#include "core/format/nested_encoder.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "core/format/json_check.h"
#include "core/format/ndjson_reader.h"

namespace nomnom {

namespace {

namespace od = simdjson::ondemand;

// Reserved keys under which an element's copied values are put in front of
// it (an element key of that form would be taken for a duplicate).
constexpr std::string_view kCopyPrefix = "nomnom.parent.";

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The level of each entity's parent (entities[0] is the root, entities[1 + d]
// derived[d]): the first entity before it that it repeats for; SIZE_MAX for
// the root and for an entity whose parent is not before it.
std::vector<size_t> ParentLevels(const std::vector<const Entity*>& entities) {
  std::vector<size_t> parent(entities.size(), SIZE_MAX);
  for (size_t i = 1; i < entities.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (SameName(entities[j]->name, entities[i]->repeated_for.entity)) {
        parent[i] = j;
        break;
      }
    }
  }
  return parent;
}

// Where the value that a copy_field of entities[level] copies from
// (source_entity, source_field) is read: the level of the object holding it
// and its key there. A copy of a copy is followed up to the key it came
// from; an entity above the loaded root is read from the root's own copy of
// the same field. False with *why when it cannot be resolved.
bool ResolveCopy(const std::vector<const Entity*>& entities, const std::vector<size_t>& parent, size_t level,
                 const std::string& source_entity, const std::string& source_field, size_t* at, std::string* key,
                 std::string* why) {
  size_t a = parent[level];
  while (a != SIZE_MAX && !SameName(entities[a]->name, source_entity)) a = parent[a];
  if (a == SIZE_MAX) {
    for (const Field& f : entities[0]->fields) {
      if (f.computed.transform == Transform::kCopyField && SameName(f.computed.source_entity, source_entity) &&
          f.computed.source_field == source_field) {
        *at = 0;
        *key = f.InputName();
        return true;
      }
    }
    *why = "copy_field copies from '" + source_entity + "', which is neither " + entities[level]->name +
           "'s parent nor an ancestor of it in a nested load of " + entities[0]->name;
    return false;
  }
  const Entity& src = *entities[a];
  const int idx = src.FieldIndex(source_field);
  if (idx < 0) {
    *why = "entity '" + src.name + "' has no column '" + source_field + "'";
    return false;
  }
  const Field& f = src.fields[static_cast<size_t>(idx)];
  if (a != 0 && f.computed.transform == Transform::kCopyField) {
    // parent[a] < a: the chain ends.
    return ResolveCopy(entities, parent, a, f.computed.source_entity, f.computed.source_field, at, key, why);
  }
  *at = a;
  *key = a != 0 && f.computed.transform == Transform::kJsonGet ? f.computed.source_field : f.InputName();
  return true;
}

// RowEncoder's "field 'col': why" and "missing required field 'col'" about a
// derived entity's column, said of the element key it came from.
std::string ElementError(const std::string& prefix, const Entity& e, const std::string& error) {
  for (const Field& f : e.fields) {
    const std::string about = "field '" + f.name + "': ";
    const std::string& key = f.computed.transform == Transform::kJsonGet ? f.computed.source_field : f.name;
    if (error.rfind(about, 0) == 0) return prefix + "." + key + ": " + error.substr(about.size());
    if (error == "missing required field '" + f.name + "'") return prefix + "." + key + ": missing required field";
  }
  return prefix + ": " + error;
}

// The values of the key fields of a binary COPY tuple, as bytes.
std::string TupleKey(const char* t, size_t size, const std::vector<size_t>& key_fields) {
  std::string key;
  size_t at = 2;
  for (size_t field = 0; at + 4 <= size; ++field) {
    const auto* u = reinterpret_cast<const unsigned char*>(t + at);
    const int32_t len =
        static_cast<int32_t>((uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3]);
    const size_t bytes = len < 0 ? 0 : static_cast<size_t>(len);
    if (std::find(key_fields.begin(), key_fields.end(), field) != key_fields.end()) key.append(t + at, 4 + bytes);
    at += 4 + bytes;
  }
  return key;
}

}  // namespace

Status NestedEncoder::Check(const Entity& root, const std::vector<const Entity*>& derived) {
  std::vector<const Entity*> entities = {&root};
  entities.insert(entities.end(), derived.begin(), derived.end());
  const std::vector<size_t> parent = ParentLevels(entities);
  for (size_t i = 1; i < entities.size(); ++i) {
    const Entity& e = *entities[i];
    if (parent[i] == SIZE_MAX) {
      return Status::InvalidArgument("entity " + e.name + " repeats for " + e.repeated_for.entity +
                                     ", which a nested load of " + root.name + " does not fill before it");
    }
    const Entity& p = *entities[parent[i]];
    const Field* list = p.FindInput(e.repeated_for.field);
    if (list == nullptr || !list->is_list) {
      return Status::InvalidArgument("entity " + e.name + " repeats for " + p.name + "." + e.repeated_for.field +
                                     ", which is not a List field of " + p.name);
    }
    for (const Field& f : e.fields) {
      if (f.computed.transform != Transform::kCopyField) continue;
      size_t at = 0;
      std::string key, why;
      if (!ResolveCopy(entities, parent, i, f.computed.source_entity, f.computed.source_field, &at, &key, &why)) {
        return Status::InvalidArgument("entity " + e.name + ", field '" + f.name + "': " + why);
      }
    }
  }
  return Status::Ok();
}

NestedEncoder::NestedEncoder(const Entity& root, std::vector<const Entity*> derived, RowEncoderOptions options)
    : root_(root), root_encoder_(root, options) {
  std::vector<const Entity*> entities = {&root};
  entities.insert(entities.end(), derived.begin(), derived.end());
  const std::vector<size_t> parent = ParentLevels(entities);
  levels_.resize(entities.size());
  for (size_t d = 0; d < derived.size(); ++d) {
    Derived der;
    der.entity = derived[d];
    der.parent = parent[1 + d];
    der.list_parser = std::make_unique<od::parser>();
    der.view = std::make_unique<Entity>(*der.entity);
    if (der.parent != SIZE_MAX) {
      der.list = entities[der.parent]->FindInput(der.entity->repeated_for.field);
      levels_[der.parent].children.push_back(d);
    }
    for (Field& f : der.view->fields) {
      if (f.computed.transform == Transform::kCopyField) {
        f.input_name = std::string(kCopyPrefix) + f.name;
        size_t at = 0;
        std::string key, why;
        if (der.parent == SIZE_MAX ||
            !ResolveCopy(entities, parent, 1 + d, f.computed.source_entity, f.computed.source_field, &at, &key, &why)) {
          continue;  // never set: NULL (Check() refuses such a set)
        }
        std::vector<std::string>& keys = levels_[at].value_keys;
        const size_t slot = static_cast<size_t>(std::find(keys.begin(), keys.end(), key) - keys.begin());
        if (slot == keys.size()) keys.push_back(key);
        der.copies.push_back({f.input_name, {at, slot}});
      } else if (f.computed.transform == Transform::kJsonGet) {
        f.input_name = f.computed.source_field;
        if (!f.computed.optional) f.nullable = false;
      }
    }
    der.encoder = std::make_unique<RowEncoder>(*der.view, options);
    derived_.push_back(std::move(der));
  }
  for (Level& lv : levels_) {
    lv.lists.resize(lv.children.size());
    lv.list_seen.resize(lv.children.size());
    lv.values.resize(lv.value_keys.size());
    if (!lv.children.empty()) lv.parser = std::make_unique<od::parser>();
  }
}

bool NestedEncoder::Scan(size_t level, std::string_view raw, std::string* error) {
  Level& lv = levels_[level];
  for (auto& l : lv.lists) l = {};
  for (auto& s : lv.list_seen) s.clear();
  for (auto& v : lv.values) v = {};
  const bool top = level == 0;
  od::document doc;
  od::object obj;
  if (auto err = lv.parser->iterate(raw.data(), raw.size(), Readable(raw.data())).get(doc); err) {
    *error = std::string(top ? "" : ": ") + "malformed JSON: " + simdjson::error_message(err);
    return false;
  }
  if (auto err = doc.get_object().get(obj); err) {
    *error = std::string(top ? "" : ": ") + "malformed JSON: " + simdjson::error_message(err);
    return false;
  }
  for (auto field_result : obj) {
    od::field field;
    if (auto err = std::move(field_result).get(field); err) {
      *error = std::string(top ? "" : ": ") + "malformed JSON: " + simdjson::error_message(err);
      return false;
    }
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
      *error = std::string(top ? "" : ": ") + "malformed JSON: invalid object key";
      return false;
    }
    bool wanted = false;
    for (size_t c = 0; c < lv.children.size() && !wanted; ++c) {
      wanted = lv.list_seen[c].empty() && derived_[lv.children[c]].entity->repeated_for.field == key;
    }
    for (size_t v = 0; v < lv.value_keys.size() && !wanted; ++v) {
      wanted = lv.values[v].empty() && lv.value_keys[v] == key;
    }
    if (!wanted) continue;
    const std::string name(key);
    od::value value = field.value();
    od::json_type type;
    std::string_view value_raw;
    bool ok = value.type().get(type) == simdjson::SUCCESS;
    if (ok && type == od::json_type::object) {
      od::object o;
      ok = value.get_object().get(o) == simdjson::SUCCESS && o.raw_json().get(value_raw) == simdjson::SUCCESS;
    } else if (ok && type == od::json_type::array) {
      od::array a;
      ok = value.get_array().get(a) == simdjson::SUCCESS && a.raw_json().get(value_raw) == simdjson::SUCCESS;
    } else if (ok) {
      value_raw = TrimJsonSpace(value.raw_json_token());
    }
    if (!ok) {
      *error = top ? "malformed JSON in field '" + name + "'" : "." + name + ": malformed JSON";
      return false;
    }
    for (size_t c = 0; c < lv.children.size(); ++c) {
      if (!lv.list_seen[c].empty() || derived_[lv.children[c]].entity->repeated_for.field != name) continue;
      if (type == od::json_type::array) {
        lv.list_seen[c] = "array";
        lv.lists[c] = value_raw;
      } else {
        lv.list_seen[c] = std::string(JsonTypeName(type));
      }
    }
    for (size_t v = 0; v < lv.value_keys.size(); ++v) {
      if (lv.values[v].empty() && lv.value_keys[v] == name) lv.values[v] = value_raw;
    }
  }
  return true;
}

bool NestedEncoder::Encode(std::string_view line, size_t readable, const Output& out, uint64_t* key_hash,
                           std::string* error) {
  const size_t root_start = out.root->size();
  if (!root_encoder_.Encode(line, readable, out.root, key_hash, error)) return false;
  if (levels_[0].children.empty()) return true;
  line_end_ = line.data() + readable;
  // The root encoder accepted the line: one valid JSON object. Find the
  // lists and copied values in it, then encode the elements depth first.
  std::string why;
  if (!Scan(0, line, &why)) {
    *error = std::move(why);
    out.root->Truncate(root_start);
    return false;
  }
  std::vector<size_t> child_start(derived_.size()), child_rows(derived_.size());
  for (size_t d = 0; d < derived_.size(); ++d) {
    child_start[d] = out.children[d]->size();
    child_rows[d] = out.child_offsets[d]->size();
  }
  for (size_t slot = 0; slot < levels_[0].children.size(); ++slot) {
    if (EncodeList(0, slot, "", out, &why)) continue;
    for (size_t k = 0; k < derived_.size(); ++k) {
      out.children[k]->Truncate(child_start[k]);
      out.child_offsets[k]->resize(child_rows[k]);
    }
    *error = std::move(why);
    out.root->Truncate(root_start);
    return false;
  }
  return true;
}

bool NestedEncoder::EncodeList(size_t level, size_t slot, const std::string& path, const Output& out,
                               std::string* error) {
  const Level& lv = levels_[level];
  const size_t d = lv.children[slot];
  const Derived& der = derived_[d];
  if (der.list == nullptr) return true;  // not a List of the parent (Check() refuses such a set)
  const std::string& name = der.entity->repeated_for.field;
  const bool top = level == 0;
  const std::string list_path = top ? name : path + "." + name;
  const std::string& seen = lv.list_seen[slot];
  if (seen.empty() || seen == "null") {
    if (der.list->nullable) return true;
    *error = top ? "missing required field '" + name + "'" : list_path + ": missing required field";
    return false;
  }
  if (seen != "array") {
    *error = (top ? "field '" + name + "'" : list_path) + ": expected an array, got " + seen;
    return false;
  }
  return EncodeElements(d, lv.lists[slot], list_path, out, error);
}

bool NestedEncoder::EncodeElements(size_t d, std::string_view list_raw, const std::string& list_path, const Output& out,
                                   std::string* error) {
  Derived& der = derived_[d];
  const Entity& e = *der.entity;
  const bool top = der.parent == 0;
  // The copied values, as `"<reserved key>":<value>,`. The ancestors'
  // objects stay the same while this list is read.
  der.prefix.clear();
  for (const auto& [reserved, from] : der.copies) {
    const std::string_view value = levels_[from.first].values[from.second];
    if (value.empty()) continue;  // absent: NULL, which the encoder checks
    der.prefix += '"';
    der.prefix += reserved;
    der.prefix += "\":";
    der.prefix += value;
    der.prefix += ',';
  }
  // list_raw points into the line, which has padding after it.
  od::document doc;
  od::array items;
  if (auto err = der.list_parser->iterate(list_raw.data(), list_raw.size(), Readable(list_raw.data())).get(doc);
      err || doc.get_array().get(items) != simdjson::SUCCESS) {
    *error = top ? "malformed JSON in field '" + list_path + "'" : list_path + ": malformed JSON";
    return false;
  }
  der.keys.clear();
  const Level& own = levels_[1 + d];
  size_t index = 0;
  for (auto item_result : items) {
    const std::string at = list_path + "[" + std::to_string(index) + "]";
    od::value item;
    od::json_type type;
    if (std::move(item_result).get(item) != simdjson::SUCCESS || item.type().get(type) != simdjson::SUCCESS) {
      *error = at + ": malformed JSON";
      return false;
    }
    od::object elem;
    std::string_view elem_raw;
    if (type != od::json_type::object) {
      *error = at + ": expected an object, got " + std::string(JsonTypeName(type));
      return false;
    }
    if (item.get_object().get(elem) != simdjson::SUCCESS || elem.raw_json().get(elem_raw) != simdjson::SUCCESS ||
        elem_raw.empty() || elem_raw.front() != '{') {
      *error = at + ": malformed JSON";
      return false;
    }
    row_.assign("{");
    row_ += der.prefix;
    std::string_view body = elem_raw.substr(1);
    size_t first = 0;
    while (first < body.size() &&
           (body[first] == ' ' || body[first] == '\t' || body[first] == '\r' || body[first] == '\n'))
      ++first;
    if (first < body.size() && body[first] == '}' && !der.prefix.empty()) row_.pop_back();  // empty element: no comma
    row_ += body;
    const size_t row_size = row_.size();
    row_.resize(row_size + kChunkPadding, ' ');
    const size_t start = out.children[d]->size();
    std::string why;
    if (!der.encoder->Encode(std::string_view(row_.data(), row_size), row_.size(), out.children[d], nullptr, &why)) {
      *error = ElementError(at, e, why);
      return false;
    }
    if (!e.key_fields.empty()) {
      std::string key = TupleKey(out.children[d]->data() + start, out.children[d]->size() - start, e.key_fields);
      for (size_t k = 0; k < der.keys.size(); ++k) {
        if (der.keys[k] == key) {
          std::string names;
          for (size_t kf : e.key_fields) names += (names.empty() ? "" : ", ") + e.fields[kf].name;
          *error = at + ": duplicate key (" + names + ") of " + list_path + "[" + std::to_string(k) + "]";
          return false;
        }
      }
      der.keys.push_back(std::move(key));
    }
    out.child_offsets[d]->push_back(static_cast<uint32_t>(start));
    // The element's own derived entities, depth first (elem_raw is in the
    // line, which stays readable).
    if (!own.children.empty()) {
      if (!Scan(1 + d, elem_raw, &why)) {
        *error = at + why;
        return false;
      }
      for (size_t slot = 0; slot < own.children.size(); ++slot) {
        if (!EncodeList(1 + d, slot, at, out, error)) return false;
      }
    }
    ++index;
  }
  if (index == 0 && !der.list->nullable) {
    const std::string& parent = der.parent == 0 ? root_.name : derived_[der.parent - 1].entity->name;
    *error = (top ? "field '" + list_path + "'" : list_path) + ": empty array (each " + parent +
             " needs at least one " + e.name + ")";
    return false;
  }
  return true;
}

}  // namespace nomnom
