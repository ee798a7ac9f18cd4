#include "core/nested_encoder.h"

#include <algorithm>

#include "core/ndjson_reader.h"

namespace nomnom {

namespace {

namespace od = simdjson::ondemand;

// Reserved keys under which a root's copied values are put in front of each
// element (an element key of that form would be taken for a duplicate).
constexpr std::string_view kCopyPrefix = "nomnom.parent.";

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
  for (const Entity* d : derived) {
    if (d->repeated_for.entity != root.name) {
      return Status::InvalidArgument("entity " + d->name + " repeats for " + d->repeated_for.entity +
                                     ", which is derived from " + root.name +
                                     ": nested loads support one level of derived entities");
    }
  }
  return Status::Ok();
}

NestedEncoder::NestedEncoder(const Entity& root, std::vector<const Entity*> derived, RowEncoderOptions options)
    : root_(root), root_encoder_(root, options) {
  for (const Entity* d : derived) {
    Derived der;
    der.entity = d;
    der.list = root.FindInput(d->repeated_for.field);
    der.view = std::make_unique<Entity>(*d);
    for (Field& f : der.view->fields) {
      if (f.computed.transform == Transform::kCopyField) {
        f.input_name = std::string(kCopyPrefix) + f.name;
        der.copies.emplace_back(f.computed.source_field, std::string(kCopyPrefix) + f.name);
        if (std::find(copy_names_.begin(), copy_names_.end(), f.computed.source_field) == copy_names_.end()) {
          copy_names_.push_back(f.computed.source_field);
        }
      } else if (f.computed.transform == Transform::kJsonGet) {
        f.input_name = f.computed.source_field;
        if (!f.computed.optional) f.nullable = false;
      }
    }
    der.encoder = std::make_unique<RowEncoder>(*der.view, options);
    derived_.push_back(std::move(der));
  }
  lists_.resize(derived_.size());
  list_seen_.resize(derived_.size());
  copy_values_.resize(copy_names_.size());
}

bool NestedEncoder::Encode(std::string_view line, size_t readable, const Output& out, uint64_t* key_hash,
                           std::string* error) {
  const size_t root_start = out.root->size();
  if (!root_encoder_.Encode(line, readable, out.root, key_hash, error)) return false;
  // The root encoder accepted the line: one valid JSON object. Find the
  // lists and copied values in it.
  for (auto& l : lists_) l = {};
  for (auto& s : list_seen_) s.clear();
  for (auto& v : copy_values_) v = {};
  auto fail = [&](std::string why) {
    *error = std::move(why);
    out.root->Truncate(root_start);
    return false;
  };
  od::document doc;
  od::object obj;
  if (auto err = parser_.iterate(line.data(), line.size(), readable).get(doc); err) {
    return fail(std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  if (auto err = doc.get_object().get(obj); err)
    return fail(std::string("malformed JSON: ") + simdjson::error_message(err));
  for (auto field_result : obj) {
    od::field field;
    if (auto err = std::move(field_result).get(field); err) {
      return fail(std::string("malformed JSON: ") + simdjson::error_message(err));
    }
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return fail("malformed JSON: invalid object key");
    const std::string name(key);
    od::value value = field.value();
    bool used = false;
    for (size_t d = 0; d < derived_.size(); ++d) {
      if (derived_[d].entity->repeated_for.field != name || !list_seen_[d].empty()) continue;
      used = true;
      od::json_type type;
      if (value.type().get(type) != simdjson::SUCCESS) return fail("malformed JSON in field '" + name + "'");
      if (type == od::json_type::array) {
        od::array arr;
        if (value.get_array().get(arr) != simdjson::SUCCESS || arr.raw_json().get(lists_[d]) != simdjson::SUCCESS) {
          return fail("malformed JSON in field '" + name + "'");
        }
        list_seen_[d] = "array";
      } else {
        list_seen_[d] = std::string(JsonTypeName(type));
      }
      break;
    }
    if (used) continue;
    for (size_t c = 0; c < copy_names_.size(); ++c) {
      if (copy_names_[c] != name || !copy_values_[c].empty()) continue;
      od::json_type type;
      if (value.type().get(type) != simdjson::SUCCESS) return fail("malformed JSON in field '" + name + "'");
      std::string_view raw;
      if (type == od::json_type::object) {
        od::object o;
        if (value.get_object().get(o) != simdjson::SUCCESS || o.raw_json().get(raw) != simdjson::SUCCESS) {
          return fail("malformed JSON in field '" + name + "'");
        }
      } else if (type == od::json_type::array) {
        od::array a;
        if (value.get_array().get(a) != simdjson::SUCCESS || a.raw_json().get(raw) != simdjson::SUCCESS) {
          return fail("malformed JSON in field '" + name + "'");
        }
      } else {
        raw = TrimJsonSpace(value.raw_json_token());
      }
      copy_values_[c] = raw;
      break;
    }
  }
  std::vector<size_t> child_start(derived_.size()), child_rows(derived_.size());
  for (size_t d = 0; d < derived_.size(); ++d) {
    child_start[d] = out.children[d]->size();
    child_rows[d] = out.child_offsets[d]->size();
  }
  for (size_t d = 0; d < derived_.size(); ++d) {
    const Derived& der = derived_[d];
    const std::string& list_name = der.entity->repeated_for.field;
    std::string why;
    bool ok = true;
    if (der.list == nullptr) continue;  // not a list of root (Check() refuses such a set)
    if (list_seen_[d].empty() || list_seen_[d] == "null") {
      if (!der.list->nullable) {
        why = "missing required field '" + list_name + "'";
        ok = false;
      }
    } else if (list_seen_[d] != "array") {
      why = "field '" + list_name + "': expected an array, got " + list_seen_[d];
      ok = false;
    } else {
      ok = EncodeChildren(d, lists_[d], out, &why);
    }
    if (!ok) {
      for (size_t k = 0; k < derived_.size(); ++k) {
        out.children[k]->Truncate(child_start[k]);
        out.child_offsets[k]->resize(child_rows[k]);
      }
      return fail(std::move(why));
    }
  }
  return true;
}

bool NestedEncoder::EncodeChildren(size_t d, std::string_view list_raw, const Output& out, std::string* error) {
  const Derived& der = derived_[d];
  const Entity& e = *der.entity;
  const std::string& list_name = e.repeated_for.field;
  // The copied values, as `"<reserved key>":<value>,`.
  prefix_.clear();
  for (const auto& [source, reserved] : der.copies) {
    const size_t c =
        static_cast<size_t>(std::find(copy_names_.begin(), copy_names_.end(), source) - copy_names_.begin());
    if (copy_values_[c].empty()) continue;  // absent: NULL, which the encoder checks
    prefix_ += '"';
    prefix_ += reserved;
    prefix_ += "\":";
    prefix_ += copy_values_[c];
    prefix_ += ',';
  }
  // list_raw points into the line, which has padding after it.
  od::document doc;
  od::array items;
  if (auto err = item_parser_.iterate(list_raw.data(), list_raw.size(), list_raw.size() + kChunkPadding).get(doc);
      err || doc.get_array().get(items) != simdjson::SUCCESS) {
    *error = "malformed JSON in field '" + list_name + "'";
    return false;
  }
  keys_.clear();
  size_t index = 0;
  for (auto item_result : items) {
    const std::string at = list_name + "[" + std::to_string(index) + "]";
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
    row_ += prefix_;
    std::string_view body = elem_raw.substr(1);
    size_t first = 0;
    while (first < body.size() &&
           (body[first] == ' ' || body[first] == '\t' || body[first] == '\r' || body[first] == '\n'))
      ++first;
    if (first < body.size() && body[first] == '}' && !prefix_.empty()) row_.pop_back();  // empty element: no comma
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
      for (size_t k = 0; k < keys_.size(); ++k) {
        if (keys_[k] == key) {
          std::string names;
          for (size_t kf : e.key_fields) names += (names.empty() ? "" : ", ") + e.fields[kf].name;
          *error = at + ": duplicate key (" + names + ") of " + list_name + "[" + std::to_string(k) + "]";
          return false;
        }
      }
      keys_.push_back(std::move(key));
    }
    out.child_offsets[d]->push_back(static_cast<uint32_t>(start));
    ++index;
  }
  if (index == 0 && !der.list->nullable) {
    *error = "field '" + list_name + "': empty array (each " + root_.name + " needs at least one " + e.name + ")";
    return false;
  }
  return true;
}

}  // namespace nomnom
