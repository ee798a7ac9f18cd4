#include "core/nested_encoder.h"

#include <algorithm>

#include "core/ndjson_reader.h"

namespace nomnom {

namespace {

namespace dom = simdjson::dom;

std::string_view TypeName(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY:
      return "an array";
    case dom::element_type::OBJECT:
      return "an object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
      return "an integer";
    case dom::element_type::DOUBLE:
      return "a number";
    case dom::element_type::STRING:
      return "a string";
    case dom::element_type::BOOL:
      return "a boolean";
    case dom::element_type::NULL_VALUE:
      return "null";
  }
  return "a value";
}

// Whether a JSON value of type t is what json_get_<type> asks for.
bool Fits(FieldType want, dom::element_type t) {
  switch (want) {
    case FieldType::kInteger:
    case FieldType::kBigInt:
      return t == dom::element_type::INT64 || t == dom::element_type::UINT64;
    case FieldType::kFloat:
    case FieldType::kDecimal:
      return t == dom::element_type::INT64 || t == dom::element_type::UINT64 || t == dom::element_type::DOUBLE;
    case FieldType::kBoolean:
      return t == dom::element_type::BOOL;
    case FieldType::kJson:
      return true;
    default:
      return t == dom::element_type::STRING;
  }
}

std::string_view WantName(FieldType want) {
  switch (want) {
    case FieldType::kInteger:
    case FieldType::kBigInt:
      return "an integer";
    case FieldType::kFloat:
    case FieldType::kDecimal:
      return "a number";
    case FieldType::kBoolean:
      return "a boolean";
    case FieldType::kJson:
      return "a value";
    default:
      return "a string";
  }
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static const char kHex[] = "0123456789abcdef";
      out->append("\\u00");
      out->push_back(kHex[(c >> 4) & 0xF]);
      out->push_back(kHex[c & 0xF]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
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
    derived_.push_back(
        Derived{d, std::make_unique<RowEncoder>(*d, RowEncoderOptions{}), root.FindInput(d->repeated_for.field)});
  }
}

bool NestedEncoder::Encode(std::string_view line, size_t readable, const Output& out, uint64_t* key_hash,
                           std::string* error) {
  const size_t root_start = out.root->size();
  if (!root_encoder_.Encode(line, readable, out.root, key_hash, error)) return false;
  // The root encoder accepted the line, so it is one valid JSON object.
  const char* data = line.data();
  size_t len = line.size();
  if (readable < len + simdjson::SIMDJSON_PADDING) {
    padded_.assign(line);
    padded_.resize(len + simdjson::SIMDJSON_PADDING, ' ');
    data = padded_.data();
  }
  dom::object obj;
  if (auto err = dom_.parse(data, len, false).get_object().get(obj); err) {
    *error = std::string("malformed JSON: ") + simdjson::error_message(err);
    out.root->Truncate(root_start);
    return false;
  }
  std::vector<size_t> child_start(derived_.size()), child_rows(derived_.size());
  for (size_t d = 0; d < derived_.size(); ++d) {
    child_start[d] = out.children[d]->size();
    child_rows[d] = out.child_offsets[d]->size();
  }
  for (size_t d = 0; d < derived_.size(); ++d) {
    if (!EncodeChildren(d, obj, out, error)) {
      out.root->Truncate(root_start);
      for (size_t k = 0; k < derived_.size(); ++k) {
        out.children[k]->Truncate(child_start[k]);
        out.child_offsets[k]->resize(child_rows[k]);
      }
      return false;
    }
  }
  return true;
}

bool NestedEncoder::EncodeChildren(size_t d, const dom::object& root, const Output& out, std::string* error) {
  const Derived& der = derived_[d];
  const Entity& e = *der.entity;
  const std::string& list_name = e.repeated_for.field;
  dom::element list;
  const auto found = root.at_key(list_name).get(list);
  if (found == simdjson::NO_SUCH_FIELD || (found == simdjson::SUCCESS && list.is_null())) {
    if (der.list->nullable) return true;
    *error = "missing required field '" + list_name + "'";
    return false;
  }
  if (found != simdjson::SUCCESS) {
    *error = std::string("field '") + list_name + "': " + simdjson::error_message(found);
    return false;
  }
  dom::array items;
  if (list.get_array().get(items) != simdjson::SUCCESS) {
    *error = "field '" + list_name + "': expected an array, got " + std::string(TypeName(list.type()));
    return false;
  }
  if (items.size() == 0) {
    if (der.list->nullable) return true;
    *error = "field '" + list_name + "': empty array (each " + root_.name + " needs at least one " + e.name + ")";
    return false;
  }
  keys_.clear();
  size_t index = 0;
  for (dom::element item : items) {
    const std::string at = list_name + "[" + std::to_string(index) + "]";
    dom::object elem;
    if (item.get_object().get(elem) != simdjson::SUCCESS) {
      *error = at + ": expected an object, got " + std::string(TypeName(item.type()));
      return false;
    }
    row_.clear();
    row_.push_back('{');
    std::string key;  // the element's unicity key, as JSON texts
    for (size_t i = 0; i < e.fields.size(); ++i) {
      const Field& f = e.fields[i];
      dom::element v;
      simdjson::error_code err;
      if (f.computed.transform == Transform::kCopyField) {
        err = root.at_key(f.computed.source_field).get(v);
        if (err == simdjson::NO_SUCH_FIELD) continue;  // NULL; the encoder knows whether it may be
      } else {
        err = elem.at_key(f.computed.source_field).get(v);
        if (err == simdjson::NO_SUCH_FIELD || (err == simdjson::SUCCESS && v.is_null())) {
          if (f.computed.optional) continue;
          *error = at + "." + f.computed.source_field + ": missing required field";
          return false;
        }
        if (err == simdjson::SUCCESS && !Fits(f.computed.get_type, v.type())) {
          *error = at + "." + f.computed.source_field + ": expected " + std::string(WantName(f.computed.get_type)) +
                   ", got " + std::string(TypeName(v.type()));
          return false;
        }
      }
      if (err != simdjson::SUCCESS) {
        *error = at + "." + f.computed.source_field + ": " + simdjson::error_message(err);
        return false;
      }
      if (row_.size() > 1) row_.push_back(',');
      AppendJsonString(&row_, f.name);
      row_.push_back(':');
      const std::string value = simdjson::minify(v);
      row_ += value;
      if (std::find(e.key_fields.begin(), e.key_fields.end(), i) != e.key_fields.end()) {
        key += value;
        key.push_back('\x1f');
      }
    }
    row_.push_back('}');
    if (!e.key_fields.empty()) {
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
    const size_t row_size = row_.size();
    row_.resize(row_size + kChunkPadding, ' ');
    const size_t start = out.children[d]->size();
    std::string why;
    if (!der.encoder->Encode(std::string_view(row_.data(), row_size), row_.size(), out.children[d], nullptr, &why)) {
      *error = ElementError(at, e, why);
      return false;
    }
    out.child_offsets[d]->push_back(static_cast<uint32_t>(start));
    ++index;
  }
  return true;
}

}  // namespace nomnom
