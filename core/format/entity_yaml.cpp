// ParseEntity: one entity file's YAML into an Entity (core/format/schema.h),
// checked as it is read. The entity model and everything else about
// entities are in schema.cpp.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/format/schema.h"

namespace nomnom {

namespace {

// The file name and line of node, for errors.
std::string Where(std::string_view origin, const YAML::Node& node) {
  std::string s(origin);
  if (node.IsDefined() && node.Mark().line >= 0) s += ":" + std::to_string(node.Mark().line + 1);
  return s;
}

// Names the entity and field (when known) of an error or warning.
std::string Ctx(std::string_view origin, const YAML::Node& node, const std::string& entity, const std::string& field,
                const std::string& key) {
  std::string s = Where(origin, node) + ":";
  if (!entity.empty()) s += " entity '" + entity + "'";
  if (!field.empty()) s += (entity.empty() ? " field '" : ", field '") + field + "'";
  if (!key.empty()) s += ((entity.empty() && field.empty()) ? " key '" : ", key '") + key + "'";
  return s + ":";
}

// Adds a warning for each key of `node` (a mapping) that is not in `known`.
void WarnUnknownKeys(std::string_view origin, const YAML::Node& node, std::initializer_list<std::string_view> known,
                     const std::string& entity, const std::string& field, const std::string& path,
                     std::vector<std::string>* warnings) {
  if (!node.IsMap()) return;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    warnings->push_back(Ctx(origin, kv.first, entity, field, path.empty() ? key : path + "." + key) +
                        " unknown key, ignored");
  }
}

// node[key] when node is a mapping, else an undefined node (indexing a
// missing node would throw).
YAML::Node Child(const YAML::Node& node, const char* key) {
  if (node.IsDefined() && node.IsMap()) {
    for (const auto& kv : node) {
      if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

// "List[Object]" -> true and inner "Object".
bool SplitListType(const std::string& t, std::string* inner) {
  if (t.size() < 6 || !NamesEqualIgnoreCase(std::string_view(t).substr(0, 5), "List[") || t.back() != ']') return false;
  *inner = t.substr(5, t.size() - 6);
  return true;
}

// The get type of a json_get transform name, e.g. "json_get_optional_int".
bool ParseJsonGet(const std::string& transform, FieldType* type, bool* optional) {
  std::string_view t = transform;
  if (t.rfind("json_get_", 0) != 0) return false;
  t.remove_prefix(9);
  *optional = false;
  if (t.rfind("optional_", 0) == 0) {
    *optional = true;
    t.remove_prefix(9);
  }
  if (t == "int" || t == "integer") {
    *type = FieldType::kInteger;
  } else if (t == "float" || t == "double") {
    *type = FieldType::kFloat;
  } else if (t == "string" || t == "str") {
    *type = FieldType::kString;
  } else if (t == "bool" || t == "boolean") {
    *type = FieldType::kBoolean;
  } else {
    return false;
  }
  return true;
}

// Whether a json_get of `get` can fill a column of type `col`.
bool GetTypeFits(FieldType get, FieldType col) {
  switch (get) {
    case FieldType::kInteger:
      return col == FieldType::kInteger || col == FieldType::kBigInt || col == FieldType::kSmallInt ||
             col == FieldType::kFloat || col == FieldType::kReal || col == FieldType::kDecimal ||
             col == FieldType::kJson || col == FieldType::kJsonText;
    case FieldType::kFloat:
      return col == FieldType::kFloat || col == FieldType::kReal || col == FieldType::kDecimal ||
             col == FieldType::kJson || col == FieldType::kJsonText;
    case FieldType::kString:
      return col == FieldType::kString || col == FieldType::kDate || col == FieldType::kDateTime ||
             col == FieldType::kDecimal || col == FieldType::kJson || col == FieldType::kJsonText;
    case FieldType::kBoolean:
      return col == FieldType::kBoolean || col == FieldType::kJson || col == FieldType::kJsonText;
    default:
      return true;
  }
}

Result<uint32_t> ParseLength(const YAML::Node& len, const std::string& where) {
  const int64_t n = len.as<int64_t>();
  if (n < 1 || n > 10485760) return Status::InvalidArgument(where + " length must be between 1 and 10485760");
  return static_cast<uint32_t>(n);
}

// Decimal `args: [precision]` or `[precision, scale]`, as PostgreSQL's NUMERIC accepts them.
Result<std::pair<uint16_t, uint16_t>> ParsePrecisionScale(const YAML::Node& args, const std::string& where) {
  const int64_t p = args[0].as<int64_t>();
  const int64_t s = args.size() > 1 ? args[1].as<int64_t>() : 0;
  if (args.size() > 2) return Status::InvalidArgument(where + " Decimal takes [precision, scale]");
  if (p < 1 || p > 1000) return Status::InvalidArgument(where + " precision must be between 1 and 1000");
  if (s < 0 || s > p) return Status::InvalidArgument(where + " scale must be between 0 and the precision");
  return std::make_pair(static_cast<uint16_t>(p), static_cast<uint16_t>(s));
}

// Sets f's type from its entity-file spelling `name` (not a List[...]): the
// element type of "VarcharArray" too.
Status SetFieldType(Field* f, const std::string& name) {
  auto type = ParseFieldType(name);
  if (!type.ok()) return type.status();
  f->type = *type;
  const bool varchar =
      NamesEqualIgnoreCase(name, "VarcharArray") || (f->type == FieldType::kTextArray && f->max_length > 0);
  f->array_element_oid = varchar ? kVarcharOid : kTextOid;
  return Status::Ok();
}

// A length in args applies to String and to the elements of a TextArray
// (which are then varchar(n)).
void SetMaxLength(Field* f, uint32_t n) {
  f->max_length = n;
  if (f->type == FieldType::kTextArray) f->array_element_oid = kVarcharOid;
}

}  // namespace

namespace {

// Applies a field's type arguments, as the entity file or a field override
// gives them: `len` (undefined when there is none) is the maximum length of a
// String or TextArray field, `args` ([precision, scale], may be undefined)
// those of a Decimal field; other types ignore them. `where` starts the
// errors ("<file>:<line>: field '<name>':").
Status ApplyTypeArgs(const YAML::Node& len, const YAML::Node& args, const std::string& where, Field* f) {
  if (len && (f->type == FieldType::kString || f->type == FieldType::kTextArray)) {
    auto n = ParseLength(len, where);
    if (!n.ok()) return n.status();
    SetMaxLength(f, *n);
  }
  if (f->type == FieldType::kDecimal && args && args.IsSequence() && args.size() > 0) {
    auto ps = ParsePrecisionScale(args, where);
    if (!ps.ok()) return ps.status();
    f->precision = ps->first;
    f->scale = ps->second;
  }
  return Status::Ok();
}

// Reads one entity file's YAML into an Entity: ParseEntity's steps, one
// method per part of the file, in the order ParseEntity runs them. Each step
// notes the field and key it is reading, so that a yaml-cpp exception thrown
// inside it (a value of the wrong kind) can be reported naming them: see
// ExceptionStatus. Errors are returned as InvalidArgument; warnings go to the
// entity's `warnings`. One reader reads one file, on one thread.
class EntityYamlReader {
 public:
  explicit EntityYamlReader(std::string_view origin) : origin_(origin) {}

  // The entity under root's "entity:" key. May throw YAML::Exception.
  Result<Entity> Read(YAML::Node root);
  // The error for an exception Read threw, naming what it was reading.
  Status ExceptionStatus(const YAML::Exception& ex) const;

 private:
  // An error at `at` naming the entity, `field` and key `k` (each when not empty).
  Status Fail(const YAML::Node& at, const std::string& field, const std::string& k, const std::string& why) const {
    return Status::InvalidArgument(Ctx(origin_, at, e_.name, field, k) + " " + why);
  }
  // The entity's name, doc and prefix (warning about keys it does not know).
  Status ReadHeader(const YAML::Node& node);
  // source_type, type (reference data) and repeated_for: what rows the entity
  // is made of.
  Status ReadSourceType(const YAML::Node& node);
  // One entry of `fields:` into *f; `earlier` are the fields before it.
  Status ReadField(const YAML::Node& fn, const std::vector<Field>& earlier, Field* f);
  // A field's `type:` (a List[...] is kept as json).
  Status ReadFieldType(const YAML::Node& fn, Field* f);
  // A field's computed_from mapping `cf`: copy_field or a json_get_* transform.
  Status ReadComputedFrom(const YAML::Node& cf, Field* f);
  // copy_field: the parent's field named by the one source in `sources`.
  Status ReadCopyField(const YAML::Node& cf, const YAML::Node& sources, Field* f);
  // A json_get_* transform (already parsed into f->computed) reading args.field.
  Status ReadJsonGet(const YAML::Node& cf, const std::string& transform, const YAML::Node& sources,
                     const YAML::Node& args, Field* f);
  // persistence.field_overrides `ov`: each override changes a field of *all
  // and marks it in *stored (a List field so named becomes a column).
  Status ApplyFieldOverrides(const YAML::Node& ov, std::vector<Field>* all, std::vector<bool>* stored);
  Status ApplyOverride(const YAML::Node& o, std::vector<Field>* all, std::vector<bool>* stored);
  // The table (and schema) from persistence.database.conformant_table `db`,
  // or the lower-cased entity name.
  void ReadTable(const YAML::Node& db);
  // persistence.database.unicity_fields: non-nullable columns.
  Status ReadUnicityFields(const YAML::Node& list);
  // persistence.primary_key `pk`: a non-nullable column, or an identity column
  // PostgreSQL fills.
  Status ReadPrimaryKey(const YAML::Node& pk);

  static constexpr const char* kOverridesKey = "persistence.field_overrides";

  std::string_view origin_;
  Entity e_;
  std::string field_;  // the field being read, for exceptions
  std::string key_;    // the key being read, for exceptions
};

Result<Entity> EntityYamlReader::Read(YAML::Node root) {
  YAML::Node node = root["entity"];
  if (!node.IsMap()) return Status::InvalidArgument(std::string(origin_) + ": expected a top-level 'entity:' mapping");
  e_.source_file = std::string(origin_);
  if (root.IsMap() && root.size() > 1) {
    WarnUnknownKeys(origin_, root, {"entity"}, "", "", "", &e_.warnings);
  }
  if (Status st = ReadHeader(node); !st.ok()) return st;
  if (Status st = ReadSourceType(node); !st.ok()) return st;
  key_ = "fields";
  const YAML::Node fields = node["fields"];
  if (!fields.IsSequence() || fields.size() == 0) {
    return Status::InvalidArgument(Where(origin_, node) + ": entity '" + e_.name + "' has no 'fields' list");
  }
  std::vector<Field> all;  // every field, columns and list inputs, in file order
  for (const YAML::Node& fn : fields) {
    Field f;
    if (Status st = ReadField(fn, all, &f); !st.ok()) return st;
    all.push_back(std::move(f));
  }
  field_.clear();
  if (all.size() > 1600) return Status::InvalidArgument(std::string(origin_) + ": more than 1600 fields");
  key_ = "persistence";
  const YAML::Node persistence = Child(node, "persistence");
  WarnUnknownKeys(origin_, persistence, {"database", "primary_key", "field_overrides"}, e_.name, "", "persistence",
                  &e_.warnings);
  const YAML::Node db = Child(persistence, "database");
  WarnUnknownKeys(origin_, db, {"conformant_table", "conformant_id_column", "unicity_fields"}, e_.name, "",
                  "persistence.database", &e_.warnings);
  std::vector<bool> stored(all.size(), false);
  if (const YAML::Node ov = Child(persistence, "field_overrides")) {
    if (Status st = ApplyFieldOverrides(ov, &all, &stored); !st.ok()) return st;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].is_list && !stored[i]) {
      e_.inputs.push_back(std::move(all[i]));
    } else {
      e_.fields.push_back(std::move(all[i]));
    }
  }
  if (e_.fields.empty()) {
    return Fail(fields, "", "fields", "has no column (List fields are columns only when field_overrides name them)");
  }
  ReadTable(db);
  if (db && db["unicity_fields"]) {
    if (Status st = ReadUnicityFields(db["unicity_fields"]); !st.ok()) return st;
  }
  if (const YAML::Node pk = Child(persistence, "primary_key")) {
    if (Status st = ReadPrimaryKey(pk); !st.ok()) return st;
  }
  if (db && db["conformant_id_column"]) {
    key_ = "persistence.database.conformant_id_column";
    e_.id_column = db["conformant_id_column"].as<std::string>();
    if (e_.FieldIndex(e_.id_column) < 0 && e_.id_column != e_.primary_key.name) {
      e_.warnings.push_back(Ctx(origin_, db["conformant_id_column"], e_.name, "", key_) + " '" + e_.id_column +
                            "' is neither a field nor the primary key");
    }
  }
  return std::move(e_);
}

Status EntityYamlReader::ExceptionStatus(const YAML::Exception& ex) const {
  std::string ctx = std::string(origin_) + ":";
  if (!e_.name.empty()) ctx += " entity '" + e_.name + "',";
  if (!field_.empty()) ctx += " field '" + field_ + "',";
  if (!key_.empty()) ctx += " key '" + key_ + "':";
  return Status::InvalidArgument(ctx + " " + ex.what());
}

Status EntityYamlReader::ReadHeader(const YAML::Node& node) {
  key_ = "name";
  if (!node["name"] || node["name"].as<std::string>().empty()) {
    return Status::InvalidArgument(Where(origin_, node) + ": entity has no 'name'");
  }
  e_.name = node["name"].as<std::string>();
  WarnUnknownKeys(
      origin_, node,
      {"name", "source_type", "type", "prefix", "doc", "description", "repeated_for", "fields", "persistence"}, e_.name,
      "", "", &e_.warnings);
  if (node["doc"]) e_.doc = node["doc"].as<std::string>();
  if (e_.doc.empty() && node["description"]) e_.doc = node["description"].as<std::string>();
  if (node["prefix"]) e_.prefix = node["prefix"].as<std::string>();
  return Status::Ok();
}

Status EntityYamlReader::ReadSourceType(const YAML::Node& node) {
  bool declared_derived = false;
  if (const YAML::Node st = node["source_type"]) {
    key_ = "source_type";
    const std::string v = st.as<std::string>();
    if (NamesEqualIgnoreCase(v, "root")) {
      e_.source_type = SourceType::kRoot;
    } else if (NamesEqualIgnoreCase(v, "derived")) {
      e_.source_type = SourceType::kDerived;
      declared_derived = true;
    } else if (NamesEqualIgnoreCase(v, "reference")) {
      e_.source_type = SourceType::kReference;
    } else {
      return Fail(st, "", "source_type", "unknown source_type '" + v + "' (expected root, derived or reference)");
    }
  }
  if (const YAML::Node t = node["type"]) {
    key_ = "type";
    const std::string v = t.as<std::string>();
    if (NamesEqualIgnoreCase(v, "reference")) {
      if (declared_derived) return Fail(t, "", "type", "a derived entity cannot be reference data");
      e_.source_type = SourceType::kReference;
    } else {
      e_.warnings.push_back(Ctx(origin_, t, e_.name, "", "type") + " entity type '" + v +
                            "' has no meaning to nomnom (only 'reference' does), ignored");
    }
  }
  const YAML::Node rf = node["repeated_for"];
  if (!rf) {
    if (!declared_derived) return Status::Ok();
    return Fail(node, "", "repeated_for",
                "missing: a derived entity needs repeated_for {entity, field} to say what it repeats for");
  }
  key_ = "repeated_for";
  if (!rf.IsMap()) return Fail(rf, "", "repeated_for", "expected a mapping {entity, field, each_known_as}");
  WarnUnknownKeys(origin_, rf, {"entity", "field", "each_known_as"}, e_.name, "", "repeated_for", &e_.warnings);
  if (!rf["entity"] || rf["entity"].as<std::string>().empty()) {
    return Fail(rf, "", "repeated_for.entity", "missing: the parent entity");
  }
  if (!rf["field"] || rf["field"].as<std::string>().empty()) {
    return Fail(rf, "", "repeated_for.field", "missing: the parent's List[Object] field");
  }
  e_.repeated_for.entity = rf["entity"].as<std::string>();
  e_.repeated_for.field = rf["field"].as<std::string>();
  e_.repeated_for.each_known_as = rf["each_known_as"] ? rf["each_known_as"].as<std::string>() : "item";
  if (node["source_type"] && !declared_derived) {
    return Fail(node["source_type"], "", "source_type", "an entity with repeated_for must be source_type derived");
  }
  e_.source_type = SourceType::kDerived;
  return Status::Ok();
}

Status EntityYamlReader::ReadField(const YAML::Node& fn, const std::vector<Field>& earlier, Field* f) {
  field_.clear();
  key_ = "name";
  if (!fn["name"]) return Status::InvalidArgument(Where(origin_, fn) + ": a field has no 'name'");
  f->name = fn["name"].as<std::string>();
  if (f->name.empty()) return Status::InvalidArgument(Where(origin_, fn) + ": a field has an empty 'name'");
  field_ = f->name;
  for (const Field& g : earlier) {
    if (g.name == f->name) {
      return Status::InvalidArgument(Where(origin_, fn) + ": field '" + f->name + "' is defined twice");
    }
  }
  WarnUnknownKeys(origin_, fn,
                  {"name", "type", "args", "nullable", "doc", "description", "computed_from", "max_length", "length"},
                  e_.name, f->name, "", &e_.warnings);
  if (Status st = ReadFieldType(fn, f); !st.ok()) return st;
  key_ = "nullable";
  if (fn["nullable"]) f->nullable = fn["nullable"].as<bool>();
  key_ = "doc";
  if (fn["doc"]) f->doc = fn["doc"].as<std::string>();
  if (f->doc.empty() && fn["description"]) f->doc = fn["description"].as<std::string>();
  // yaml-cpp's Node::operator= assigns through to the node, so use reset() to rebind.
  key_ = "args";
  YAML::Node len(YAML::NodeType::Undefined);
  if (fn["max_length"]) {
    len.reset(fn["max_length"]);
  } else if (fn["length"]) {
    len.reset(fn["length"]);
  } else if (fn["args"] && fn["args"].IsSequence() && fn["args"].size() > 0) {
    len.reset(fn["args"][0]);
  }
  if (Status st = ApplyTypeArgs(len, fn["args"], Where(origin_, fn) + ": field '" + f->name + "':", f); !st.ok()) {
    return st;
  }
  if (const YAML::Node cf = fn["computed_from"]) return ReadComputedFrom(cf, f);
  if (e_.IsDerived()) {
    // A derived entity's plain field is the element's key of the same name.
    f->computed.transform = Transform::kJsonGet;
    f->computed.source_field = f->name;
    f->computed.get_type = f->type;
    f->computed.optional = f->nullable;
  }
  return Status::Ok();
}

Status EntityYamlReader::ReadFieldType(const YAML::Node& fn, Field* f) {
  key_ = "type";
  if (!fn["type"]) return Status::InvalidArgument(Where(origin_, fn) + ": field '" + f->name + "' has no 'type'");
  f->declared_type = fn["type"].as<std::string>();
  std::string inner;
  if (SplitListType(f->declared_type, &inner)) {
    f->is_list = true;
    f->type = FieldType::kJson;
    if (!NamesEqualIgnoreCase(inner, "Object") && !ParseFieldType(inner).ok()) {
      return Fail(fn["type"], f->name, "type", "unknown list element type '" + inner + "'");
    }
  } else if (Status st = SetFieldType(f, f->declared_type); !st.ok()) {
    return Status::InvalidArgument(Where(origin_, fn) + ": field '" + f->name + "': " + st.message());
  }
  return Status::Ok();
}

Status EntityYamlReader::ReadComputedFrom(const YAML::Node& cf, Field* f) {
  key_ = "computed_from";
  if (!cf.IsMap()) return Fail(cf, f->name, "computed_from", "expected a mapping {transform, sources, args}");
  WarnUnknownKeys(origin_, cf, {"transform", "sources", "args"}, e_.name, f->name, "computed_from", &e_.warnings);
  if (!cf["transform"]) return Fail(cf, f->name, "computed_from.transform", "missing");
  const std::string transform = cf["transform"].as<std::string>();
  const YAML::Node sources = Child(cf, "sources");
  const YAML::Node args = Child(cf, "args");
  if (transform == "copy_field") return ReadCopyField(cf, sources, f);
  if (ParseJsonGet(transform, &f->computed.get_type, &f->computed.optional)) {
    return ReadJsonGet(cf, transform, sources, args, f);
  }
  return Fail(cf["transform"], f->name, "computed_from.transform",
              "unknown transform '" + transform +
                  "' (expected copy_field, json_get_{int,float,string,bool} or json_get_optional_*)");
}

Status EntityYamlReader::ReadCopyField(const YAML::Node& cf, const YAML::Node& sources, Field* f) {
  if (!e_.IsDerived()) {
    return Fail(cf, f->name, "computed_from.transform",
                "copy_field copies from the parent, but the entity has no repeated_for");
  }
  if (!sources.IsSequence() || sources.size() != 1 || !sources[0].IsMap() || !sources[0]["source"] ||
      !sources[0]["field"]) {
    return Fail(cf, f->name, "computed_from.sources",
                "copy_field needs exactly one source {source: <parent entity>, field: <its field>}");
  }
  f->computed.transform = Transform::kCopyField;
  f->computed.source_entity = sources[0]["source"].as<std::string>();
  f->computed.source_field = sources[0]["field"].as<std::string>();
  return Status::Ok();
}

Status EntityYamlReader::ReadJsonGet(const YAML::Node& cf, const std::string& transform, const YAML::Node& sources,
                                     const YAML::Node& args, Field* f) {
  f->computed.transform = Transform::kJsonGet;
  if (!args.IsMap() || !args["field"] || args["field"].as<std::string>().empty()) {
    return Fail(cf, f->name, "computed_from.args.field", "missing: " + transform + " needs args {field: <key>}");
  }
  f->computed.source_field = args["field"].as<std::string>();
  if (e_.IsDerived()) {
    if (!sources.IsSequence() || sources.size() != 1 || sources[0].as<std::string>() != e_.repeated_for.each_known_as) {
      return Fail(
          cf, f->name, "computed_from.sources",
          "expected [" + e_.repeated_for.each_known_as + "] (the element, as repeated_for's each_known_as names it)");
    }
  } else if (f->computed.source_field != f->name) {
    f->input_name = f->computed.source_field;  // a root entity reads it from another key
  }
  if (!GetTypeFits(f->computed.get_type, f->type)) {
    return Fail(cf["transform"], f->name, "computed_from.transform",
                transform + " cannot fill a " + std::string(FieldTypeName(f->type)) + " field");
  }
  if (f->computed.optional && !f->nullable) {
    return Fail(cf["transform"], f->name, "computed_from.transform",
                transform + " gives NULL for a missing key, but the field is not nullable");
  }
  return Status::Ok();
}

Status EntityYamlReader::ApplyFieldOverrides(const YAML::Node& ov, std::vector<Field>* all, std::vector<bool>* stored) {
  key_ = kOverridesKey;
  if (!ov.IsSequence()) return Fail(ov, "", key_, "expected a list of {name, type, nullable}");
  for (const YAML::Node& o : ov) {
    if (Status st = ApplyOverride(o, all, stored); !st.ok()) return st;
  }
  field_.clear();
  return Status::Ok();
}

Status EntityYamlReader::ApplyOverride(const YAML::Node& o, std::vector<Field>* all, std::vector<bool>* stored) {
  const std::string key = kOverridesKey;
  if (!o.IsMap() || !o["name"]) return Fail(o, "", key, "an override has no 'name'");
  const std::string name = o["name"].as<std::string>();
  field_ = name;
  WarnUnknownKeys(origin_, o, {"name", "type", "nullable", "args"}, e_.name, name, key, &e_.warnings);
  auto it = std::find_if(all->begin(), all->end(), [&](const Field& f) { return f.name == name; });
  if (it == all->end()) return Fail(o, name, key, "names a field the entity does not have");
  (*stored)[static_cast<size_t>(it - all->begin())] = true;
  if (o["type"]) {
    const std::string t = o["type"].as<std::string>();
    std::string inner;
    if (SplitListType(t, &inner)) {
      it->type = FieldType::kJson;
    } else {
      if (Status st = SetFieldType(&*it, t); !st.ok()) return Fail(o["type"], name, key + ".type", st.message());
      if (it->computed.transform == Transform::kJsonGet && !GetTypeFits(it->computed.get_type, it->type)) {
        return Fail(o["type"], name, key + ".type",
                    "the field's transform cannot fill a " + std::string(FieldTypeName(it->type)) + " column");
      }
    }
    if (it->type != FieldType::kString && it->type != FieldType::kTextArray) it->max_length = 0;
  }
  if (o["nullable"]) it->nullable = o["nullable"].as<bool>();
  const YAML::Node args = o["args"];
  const bool has_args = args && args.IsSequence() && args.size() > 0;
  if (Status st = ApplyTypeArgs(has_args ? args[0] : YAML::Node(YAML::NodeType::Undefined), args,
                                Where(origin_, o) + ": field '" + name + "':", &*it);
      !st.ok()) {
    return st;
  }
  if (it->computed.optional && !it->nullable) {
    return Fail(o, name, key + ".nullable",
                "the field's transform gives NULL for a missing key, so it must stay nullable");
  }
  return Status::Ok();
}

void EntityYamlReader::ReadTable(const YAML::Node& db) {
  key_ = "persistence.database.conformant_table";
  std::string table = db && db["conformant_table"] ? db["conformant_table"].as<std::string>() : "";
  if (table.empty()) {
    // Without persistence settings the table is the lower-cased entity name.
    table = e_.name;
    std::transform(table.begin(), table.end(), table.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  if (auto dot = table.find('.'); dot != std::string::npos) {
    e_.table_schema = table.substr(0, dot);
    table = table.substr(dot + 1);
  }
  e_.table = table;
}

Status EntityYamlReader::ReadUnicityFields(const YAML::Node& list) {
  key_ = "persistence.database.unicity_fields";
  for (const YAML::Node& k : list) {
    const std::string ukey = k.as<std::string>();
    const int idx = e_.FieldIndex(ukey);
    if (idx < 0) {
      return Status::InvalidArgument(Where(origin_, k) + ": unicity field '" + ukey + "' is not a field of '" +
                                     e_.name + "'");
    }
    if (e_.fields[static_cast<size_t>(idx)].nullable) {
      return Status::InvalidArgument(Where(origin_, k) + ": unicity field '" + ukey + "' must not be nullable");
    }
    e_.key_fields.push_back(static_cast<size_t>(idx));
  }
  return Status::Ok();
}

Status EntityYamlReader::ReadPrimaryKey(const YAML::Node& pk) {
  key_ = "persistence.primary_key";
  const std::string& key = key_;
  if (!pk.IsMap() || !pk["name"] || pk["name"].as<std::string>().empty()) {
    return Fail(pk, "", key + ".name", "missing: the primary key column's name");
  }
  WarnUnknownKeys(origin_, pk, {"name", "type", "autogenerate"}, e_.name, "", key, &e_.warnings);
  PrimaryKey& p = e_.primary_key;
  p.name = pk["name"].as<std::string>();
  p.autogenerate = pk["autogenerate"] && pk["autogenerate"].as<bool>();
  if (pk["type"]) {
    auto type = ParseFieldType(pk["type"].as<std::string>());
    if (!type.ok()) return Fail(pk["type"], "", key + ".type", type.status().message());
    p.type = *type;
  } else {
    p.type = FieldType::kBigInt;
  }
  const int idx = e_.FieldIndex(p.name);
  if (p.autogenerate) {
    if (p.type != FieldType::kInteger && p.type != FieldType::kBigInt) {
      return Fail(pk["type"], "", key + ".type", "an autogenerated primary key must be Integer or BigInt");
    }
    if (idx >= 0 || e_.FindInput(p.name) != nullptr) {
      return Fail(pk["name"], p.name, key + ".name",
                  "an autogenerated primary key is filled by PostgreSQL, so it cannot also be a field");
    }
  } else {
    if (idx < 0) {
      return Fail(pk["name"], p.name, key + ".name",
                  "is not a field of the entity (set autogenerate: true for an identity column)");
    }
    if (e_.fields[static_cast<size_t>(idx)].nullable) {
      return Fail(pk["name"], p.name, key + ".name", "a primary key field must not be nullable");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Entity> ParseEntity(std::string_view yaml_text, std::string_view origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string(origin) + ": invalid YAML: " + e.what());
  }
  EntityYamlReader reader(origin);
  try {
    return reader.Read(root);
  } catch (const YAML::Exception& ex) {
    return reader.ExceptionStatus(ex);
  }
}

}  // namespace nomnom
