#include "core/format/schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/format/sql_ident.h"

namespace nomnom {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string Where(std::string_view origin, const YAML::Node& node) {
  std::string s(origin);
  if (node.IsDefined() && node.Mark().line >= 0) s += ":" + std::to_string(node.Mark().line + 1);
  return s;
}

}  // namespace

std::string_view FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kString:
      return "String";
    case FieldType::kInteger:
      return "Integer";
    case FieldType::kBigInt:
      return "BigInt";
    case FieldType::kFloat:
      return "Float";
    case FieldType::kDecimal:
      return "Decimal";
    case FieldType::kBoolean:
      return "Boolean";
    case FieldType::kDate:
      return "Date";
    case FieldType::kDateTime:
      return "DateTime";
    case FieldType::kJson:
      return "Json";
    case FieldType::kUuid:
      return "Uuid";
    case FieldType::kSmallInt:
      return "SmallInt";
    case FieldType::kReal:
      return "Real";
    case FieldType::kJsonText:
      return "JsonText";
    case FieldType::kTextArray:
      return "TextArray";
  }
  return "?";
}

std::string_view Field::TypeSpelling() const {
  if (type == FieldType::kTextArray && array_element_oid == kVarcharOid) return "VarcharArray";
  return FieldTypeName(type);
}

Result<FieldType> ParseFieldType(std::string_view name) {
  struct Alias {
    std::string_view name;
    FieldType type;
  };
  static constexpr Alias kAliases[] = {
      {"String", FieldType::kString},       {"Text", FieldType::kString},       {"Integer", FieldType::kInteger},
      {"Int", FieldType::kInteger},         {"BigInt", FieldType::kBigInt},     {"Long", FieldType::kBigInt},
      {"Float", FieldType::kFloat},         {"Double", FieldType::kFloat},      {"Decimal", FieldType::kDecimal},
      {"Numeric", FieldType::kDecimal},     {"Boolean", FieldType::kBoolean},   {"Bool", FieldType::kBoolean},
      {"Date", FieldType::kDate},           {"DateTime", FieldType::kDateTime}, {"Timestamp", FieldType::kDateTime},
      {"Json", FieldType::kJson},           {"Object", FieldType::kJson},       {"Uuid", FieldType::kUuid},
      {"SmallInt", FieldType::kSmallInt},   {"Int2", FieldType::kSmallInt},     {"Short", FieldType::kSmallInt},
      {"Real", FieldType::kReal},           {"Float4", FieldType::kReal},       {"JsonText", FieldType::kJsonText},
      {"TextArray", FieldType::kTextArray}, {"Text[]", FieldType::kTextArray},  {"VarcharArray", FieldType::kTextArray},
  };
  for (const auto& a : kAliases) {
    if (EqualsIgnoreCase(a.name, name)) return a.type;
  }
  return Status::InvalidArgument(
      "unknown field type '" + std::string(name) +
      "' (expected String, Integer, BigInt, SmallInt, Float, Real, Decimal, Boolean, Date, "
      "DateTime, Json, JsonText, Uuid, TextArray, VarcharArray or Object; List[...] for lists)");
}

std::string Field::PgTypeName() const {
  if (!pg_type.empty()) return pg_type;
  switch (type) {
    case FieldType::kString:
      return max_length > 0 ? "character varying(" + std::to_string(max_length) + ")" : "text";
    case FieldType::kInteger:
      return "integer";
    case FieldType::kBigInt:
      return "bigint";
    case FieldType::kFloat:
      return "double precision";
    case FieldType::kDecimal:
      if (precision > 0) return "numeric(" + std::to_string(precision) + "," + std::to_string(scale) + ")";
      return "numeric";
    case FieldType::kBoolean:
      return "boolean";
    case FieldType::kDate:
      return "date";
    case FieldType::kDateTime:
      return "timestamp with time zone";
    case FieldType::kJson:
      return "jsonb";
    case FieldType::kUuid:
      return "uuid";
    case FieldType::kSmallInt:
      return "smallint";
    case FieldType::kReal:
      return "real";
    case FieldType::kJsonText:
      return "json";
    case FieldType::kTextArray:
      if (array_element_oid != kVarcharOid) return "text[]";
      return max_length > 0 ? "character varying(" + std::to_string(max_length) + ")[]" : "character varying[]";
  }
  return "text";
}

int Entity::FieldIndex(std::string_view field_name) const {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].name == field_name) return static_cast<int>(i);
  }
  return -1;
}

std::string Entity::QualifiedTable() const { return QuoteQualified(table_schema, table); }

std::string Entity::CreateTableSql() const {
  std::string sql = "CREATE TABLE IF NOT EXISTS " + QualifiedTable() + " (\n";
  if (primary_key.autogenerate) {
    sql += "  " + QuoteIdent(primary_key.name) + " " +
           (primary_key.type == FieldType::kInteger ? "integer" : "bigint") + " GENERATED BY DEFAULT AS IDENTITY,\n";
  }
  for (const Field& f : fields) {
    sql += "  " + QuoteIdent(f.name) + " " + f.PgTypeName();
    if (!f.nullable) sql += " NOT NULL";
    sql += ",\n";
  }
  auto key_list = [&] {
    std::string s;
    for (size_t i = 0; i < key_fields.size(); ++i) {
      if (i > 0) s += ", ";
      s += QuoteIdent(fields[key_fields[i]].name);
    }
    return s;
  };
  if (!primary_key.name.empty()) {
    sql += "  PRIMARY KEY (" + QuoteIdent(primary_key.name) + ")";
    const bool key_is_pk = key_fields.size() == 1 && fields[key_fields[0]].name == primary_key.name;
    if (!key_fields.empty() && !key_is_pk) sql += ",\n  UNIQUE (" + key_list() + ")";
    sql += "\n";
  } else if (!key_fields.empty()) {
    sql += "  PRIMARY KEY (" + key_list() + ")\n";
  } else {
    sql.erase(sql.size() - 2, 1);  // drop the last comma
  }
  sql += ")";
  return sql;
}

namespace {

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
  if (t.size() < 6 || !EqualsIgnoreCase(std::string_view(t).substr(0, 5), "List[") || t.back() != ']') return false;
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
      EqualsIgnoreCase(name, "VarcharArray") || (f->type == FieldType::kTextArray && f->max_length > 0);
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

std::string_view SourceTypeName(SourceType t) {
  switch (t) {
    case SourceType::kRoot:
      return "root";
    case SourceType::kDerived:
      return "derived";
    case SourceType::kReference:
      return "reference";
  }
  return "?";
}

const Field* Entity::FindInput(std::string_view field_name) const {
  for (const Field& f : fields) {
    if (f.name == field_name) return &f;
  }
  for (const Field& f : inputs) {
    if (f.name == field_name) return &f;
  }
  return nullptr;
}

Result<Entity> ParseEntity(std::string_view yaml_text, std::string_view origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string(origin) + ": invalid YAML: " + e.what());
  }
  std::string entity_name, field_name, key;  // what is being read, for exceptions
  try {
    YAML::Node node = root["entity"];
    if (!node.IsMap()) return Status::InvalidArgument(std::string(origin) + ": expected a top-level 'entity:' mapping");
    Entity e;
    e.source_file = std::string(origin);
    if (root.IsMap() && root.size() > 1) {
      WarnUnknownKeys(origin, root, {"entity"}, "", "", "", &e.warnings);
    }
    key = "name";
    if (!node["name"] || node["name"].as<std::string>().empty()) {
      return Status::InvalidArgument(Where(origin, node) + ": entity has no 'name'");
    }
    e.name = node["name"].as<std::string>();
    entity_name = e.name;
    auto fail = [&](const YAML::Node& at, const std::string& field, const std::string& k, const std::string& why) {
      return Status::InvalidArgument(Ctx(origin, at, e.name, field, k) + " " + why);
    };
    WarnUnknownKeys(
        origin, node,
        {"name", "source_type", "type", "prefix", "doc", "description", "repeated_for", "fields", "persistence"},
        e.name, "", "", &e.warnings);
    if (node["doc"]) e.doc = node["doc"].as<std::string>();
    if (e.doc.empty() && node["description"]) e.doc = node["description"].as<std::string>();
    if (node["prefix"]) e.prefix = node["prefix"].as<std::string>();
    bool declared_derived = false;
    if (const YAML::Node st = node["source_type"]) {
      key = "source_type";
      const std::string v = st.as<std::string>();
      if (EqualsIgnoreCase(v, "root")) {
        e.source_type = SourceType::kRoot;
      } else if (EqualsIgnoreCase(v, "derived")) {
        e.source_type = SourceType::kDerived;
        declared_derived = true;
      } else if (EqualsIgnoreCase(v, "reference")) {
        e.source_type = SourceType::kReference;
      } else {
        return fail(st, "", "source_type", "unknown source_type '" + v + "' (expected root, derived or reference)");
      }
    }
    if (const YAML::Node t = node["type"]) {
      key = "type";
      const std::string v = t.as<std::string>();
      if (EqualsIgnoreCase(v, "reference")) {
        if (declared_derived) return fail(t, "", "type", "a derived entity cannot be reference data");
        e.source_type = SourceType::kReference;
      } else {
        e.warnings.push_back(Ctx(origin, t, e.name, "", "type") + " entity type '" + v +
                             "' has no meaning to nomnom (only 'reference' does), ignored");
      }
    }
    if (const YAML::Node rf = node["repeated_for"]) {
      key = "repeated_for";
      if (!rf.IsMap()) return fail(rf, "", "repeated_for", "expected a mapping {entity, field, each_known_as}");
      WarnUnknownKeys(origin, rf, {"entity", "field", "each_known_as"}, e.name, "", "repeated_for", &e.warnings);
      if (!rf["entity"] || rf["entity"].as<std::string>().empty()) {
        return fail(rf, "", "repeated_for.entity", "missing: the parent entity");
      }
      if (!rf["field"] || rf["field"].as<std::string>().empty()) {
        return fail(rf, "", "repeated_for.field", "missing: the parent's List[Object] field");
      }
      e.repeated_for.entity = rf["entity"].as<std::string>();
      e.repeated_for.field = rf["field"].as<std::string>();
      e.repeated_for.each_known_as = rf["each_known_as"] ? rf["each_known_as"].as<std::string>() : "item";
      if (node["source_type"] && !declared_derived) {
        return fail(node["source_type"], "", "source_type", "an entity with repeated_for must be source_type derived");
      }
      e.source_type = SourceType::kDerived;
    } else if (declared_derived) {
      return fail(node, "", "repeated_for",
                  "missing: a derived entity needs repeated_for {entity, field} to say what it repeats for");
    }
    key = "fields";
    const YAML::Node fields = node["fields"];
    if (!fields.IsSequence() || fields.size() == 0) {
      return Status::InvalidArgument(Where(origin, node) + ": entity '" + e.name + "' has no 'fields' list");
    }
    std::vector<Field> all;  // every field, columns and list inputs, in file order
    for (const YAML::Node& fn : fields) {
      Field f;
      field_name.clear();
      key = "name";
      if (!fn["name"]) return Status::InvalidArgument(Where(origin, fn) + ": a field has no 'name'");
      f.name = fn["name"].as<std::string>();
      if (f.name.empty()) return Status::InvalidArgument(Where(origin, fn) + ": a field has an empty 'name'");
      field_name = f.name;
      for (const Field& g : all) {
        if (g.name == f.name) {
          return Status::InvalidArgument(Where(origin, fn) + ": field '" + f.name + "' is defined twice");
        }
      }
      WarnUnknownKeys(
          origin, fn,
          {"name", "type", "args", "nullable", "doc", "description", "computed_from", "max_length", "length"}, e.name,
          f.name, "", &e.warnings);
      key = "type";
      if (!fn["type"]) return Status::InvalidArgument(Where(origin, fn) + ": field '" + f.name + "' has no 'type'");
      f.declared_type = fn["type"].as<std::string>();
      std::string inner;
      if (SplitListType(f.declared_type, &inner)) {
        f.is_list = true;
        f.type = FieldType::kJson;
        if (!EqualsIgnoreCase(inner, "Object") && !ParseFieldType(inner).ok()) {
          return fail(fn["type"], f.name, "type", "unknown list element type '" + inner + "'");
        }
      } else if (Status st = SetFieldType(&f, f.declared_type); !st.ok()) {
        return Status::InvalidArgument(Where(origin, fn) + ": field '" + f.name + "': " + st.message());
      }
      key = "nullable";
      if (fn["nullable"]) f.nullable = fn["nullable"].as<bool>();
      key = "doc";
      if (fn["doc"]) f.doc = fn["doc"].as<std::string>();
      if (f.doc.empty() && fn["description"]) f.doc = fn["description"].as<std::string>();
      // yaml-cpp's Node::operator= assigns through to the node, so use reset() to rebind.
      key = "args";
      YAML::Node len(YAML::NodeType::Undefined);
      if (fn["max_length"]) {
        len.reset(fn["max_length"]);
      } else if (fn["length"]) {
        len.reset(fn["length"]);
      } else if (fn["args"] && fn["args"].IsSequence() && fn["args"].size() > 0) {
        len.reset(fn["args"][0]);
      }
      if (len && (f.type == FieldType::kString || f.type == FieldType::kTextArray)) {
        auto n = ParseLength(len, Where(origin, fn) + ": field '" + f.name + "':");
        if (!n.ok()) return n.status();
        SetMaxLength(&f, *n);
      }
      if (f.type == FieldType::kDecimal && fn["args"] && fn["args"].IsSequence() && fn["args"].size() > 0) {
        auto ps = ParsePrecisionScale(fn["args"], Where(origin, fn) + ": field '" + f.name + "':");
        if (!ps.ok()) return ps.status();
        f.precision = ps->first;
        f.scale = ps->second;
      }
      if (const YAML::Node cf = fn["computed_from"]) {
        key = "computed_from";
        if (!cf.IsMap()) return fail(cf, f.name, "computed_from", "expected a mapping {transform, sources, args}");
        WarnUnknownKeys(origin, cf, {"transform", "sources", "args"}, e.name, f.name, "computed_from", &e.warnings);
        if (!cf["transform"]) return fail(cf, f.name, "computed_from.transform", "missing");
        const std::string transform = cf["transform"].as<std::string>();
        const YAML::Node sources = Child(cf, "sources");
        const YAML::Node args = Child(cf, "args");
        if (transform == "copy_field") {
          if (!e.IsDerived()) {
            return fail(cf, f.name, "computed_from.transform",
                        "copy_field copies from the parent, but the entity has no repeated_for");
          }
          if (!sources.IsSequence() || sources.size() != 1 || !sources[0].IsMap() || !sources[0]["source"] ||
              !sources[0]["field"]) {
            return fail(cf, f.name, "computed_from.sources",
                        "copy_field needs exactly one source {source: <parent entity>, field: <its field>}");
          }
          f.computed.transform = Transform::kCopyField;
          f.computed.source_entity = sources[0]["source"].as<std::string>();
          f.computed.source_field = sources[0]["field"].as<std::string>();
        } else if (ParseJsonGet(transform, &f.computed.get_type, &f.computed.optional)) {
          f.computed.transform = Transform::kJsonGet;
          if (!args.IsMap() || !args["field"] || args["field"].as<std::string>().empty()) {
            return fail(cf, f.name, "computed_from.args.field", "missing: " + transform + " needs args {field: <key>}");
          }
          f.computed.source_field = args["field"].as<std::string>();
          if (e.IsDerived()) {
            if (!sources.IsSequence() || sources.size() != 1 ||
                sources[0].as<std::string>() != e.repeated_for.each_known_as) {
              return fail(cf, f.name, "computed_from.sources",
                          "expected [" + e.repeated_for.each_known_as +
                              "] (the element, as repeated_for's each_known_as names it)");
            }
          } else if (f.computed.source_field != f.name) {
            f.input_name = f.computed.source_field;  // a root entity reads it from another key
          }
          if (!GetTypeFits(f.computed.get_type, f.type)) {
            return fail(cf["transform"], f.name, "computed_from.transform",
                        transform + " cannot fill a " + std::string(FieldTypeName(f.type)) + " field");
          }
          if (f.computed.optional && !f.nullable) {
            return fail(cf["transform"], f.name, "computed_from.transform",
                        transform + " gives NULL for a missing key, but the field is not nullable");
          }
        } else {
          return fail(cf["transform"], f.name, "computed_from.transform",
                      "unknown transform '" + transform +
                          "' (expected copy_field, json_get_{int,float,string,bool} or json_get_optional_*)");
        }
      } else if (e.IsDerived()) {
        // A derived entity's plain field is the element's key of the same name.
        f.computed.transform = Transform::kJsonGet;
        f.computed.source_field = f.name;
        f.computed.get_type = f.type;
        f.computed.optional = f.nullable;
      }
      all.push_back(std::move(f));
    }
    field_name.clear();
    if (all.size() > 1600) return Status::InvalidArgument(std::string(origin) + ": more than 1600 fields");
    key = "persistence";
    const YAML::Node persistence = Child(node, "persistence");
    WarnUnknownKeys(origin, persistence, {"database", "primary_key", "field_overrides"}, e.name, "", "persistence",
                    &e.warnings);
    const YAML::Node db = Child(persistence, "database");
    WarnUnknownKeys(origin, db, {"conformant_table", "conformant_id_column", "unicity_fields"}, e.name, "",
                    "persistence.database", &e.warnings);
    // field_overrides: a List field named here is a column; any field's type
    // and nullability can be changed.
    std::vector<bool> stored(all.size(), false);
    if (const YAML::Node ov = Child(persistence, "field_overrides")) {
      key = "persistence.field_overrides";
      if (!ov.IsSequence()) return fail(ov, "", key, "expected a list of {name, type, nullable}");
      for (const YAML::Node& o : ov) {
        if (!o.IsMap() || !o["name"]) return fail(o, "", key, "an override has no 'name'");
        const std::string name = o["name"].as<std::string>();
        field_name = name;
        WarnUnknownKeys(origin, o, {"name", "type", "nullable", "args"}, e.name, name, key, &e.warnings);
        auto it = std::find_if(all.begin(), all.end(), [&](const Field& f) { return f.name == name; });
        if (it == all.end()) return fail(o, name, key, "names a field the entity does not have");
        stored[static_cast<size_t>(it - all.begin())] = true;
        if (o["type"]) {
          const std::string t = o["type"].as<std::string>();
          std::string inner;
          if (SplitListType(t, &inner)) {
            it->type = FieldType::kJson;
          } else {
            if (Status st = SetFieldType(&*it, t); !st.ok()) return fail(o["type"], name, key + ".type", st.message());
            if (it->computed.transform == Transform::kJsonGet && !GetTypeFits(it->computed.get_type, it->type)) {
              return fail(o["type"], name, key + ".type",
                          "the field's transform cannot fill a " + std::string(FieldTypeName(it->type)) + " column");
            }
          }
          if (it->type != FieldType::kString && it->type != FieldType::kTextArray) it->max_length = 0;
        }
        if (o["nullable"]) it->nullable = o["nullable"].as<bool>();
        if (o["args"] && o["args"].IsSequence() && o["args"].size() > 0 &&
            (it->type == FieldType::kString || it->type == FieldType::kTextArray)) {
          auto n = ParseLength(o["args"][0], Where(origin, o) + ": field '" + name + "':");
          if (!n.ok()) return n.status();
          SetMaxLength(&*it, *n);
        }
        if (o["args"] && o["args"].IsSequence() && o["args"].size() > 0 && it->type == FieldType::kDecimal) {
          auto ps = ParsePrecisionScale(o["args"], Where(origin, o) + ": field '" + name + "':");
          if (!ps.ok()) return ps.status();
          it->precision = ps->first;
          it->scale = ps->second;
        }
        if (it->computed.optional && !it->nullable) {
          return fail(o, name, key + ".nullable",
                      "the field's transform gives NULL for a missing key, so it must stay nullable");
        }
      }
      field_name.clear();
    }
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i].is_list && !stored[i]) {
        e.inputs.push_back(std::move(all[i]));
      } else {
        e.fields.push_back(std::move(all[i]));
      }
    }
    if (e.fields.empty()) {
      return fail(fields, "", "fields", "has no column (List fields are columns only when field_overrides name them)");
    }
    key = "persistence.database.conformant_table";
    std::string table = db && db["conformant_table"] ? db["conformant_table"].as<std::string>() : "";
    if (table.empty()) {
      // Without persistence settings the table is the lower-cased entity name.
      table = e.name;
      std::transform(table.begin(), table.end(), table.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
    if (auto dot = table.find('.'); dot != std::string::npos) {
      e.table_schema = table.substr(0, dot);
      table = table.substr(dot + 1);
    }
    e.table = table;
    if (db && db["unicity_fields"]) {
      key = "persistence.database.unicity_fields";
      for (const YAML::Node& k : db["unicity_fields"]) {
        const std::string ukey = k.as<std::string>();
        const int idx = e.FieldIndex(ukey);
        if (idx < 0) {
          return Status::InvalidArgument(Where(origin, k) + ": unicity field '" + ukey + "' is not a field of '" +
                                         e.name + "'");
        }
        if (e.fields[static_cast<size_t>(idx)].nullable) {
          return Status::InvalidArgument(Where(origin, k) + ": unicity field '" + ukey + "' must not be nullable");
        }
        e.key_fields.push_back(static_cast<size_t>(idx));
      }
    }
    if (const YAML::Node pk = Child(persistence, "primary_key")) {
      key = "persistence.primary_key";
      if (!pk.IsMap() || !pk["name"] || pk["name"].as<std::string>().empty()) {
        return fail(pk, "", key + ".name", "missing: the primary key column's name");
      }
      WarnUnknownKeys(origin, pk, {"name", "type", "autogenerate"}, e.name, "", key, &e.warnings);
      e.primary_key.name = pk["name"].as<std::string>();
      e.primary_key.autogenerate = pk["autogenerate"] && pk["autogenerate"].as<bool>();
      if (pk["type"]) {
        auto type = ParseFieldType(pk["type"].as<std::string>());
        if (!type.ok()) return fail(pk["type"], "", key + ".type", type.status().message());
        e.primary_key.type = *type;
      } else {
        e.primary_key.type = FieldType::kBigInt;
      }
      const int idx = e.FieldIndex(e.primary_key.name);
      if (e.primary_key.autogenerate) {
        if (e.primary_key.type != FieldType::kInteger && e.primary_key.type != FieldType::kBigInt) {
          return fail(pk["type"], "", key + ".type", "an autogenerated primary key must be Integer or BigInt");
        }
        if (idx >= 0 || e.FindInput(e.primary_key.name) != nullptr) {
          return fail(pk["name"], e.primary_key.name, key + ".name",
                      "an autogenerated primary key is filled by PostgreSQL, so it cannot also be a field");
        }
      } else {
        if (idx < 0) {
          return fail(pk["name"], e.primary_key.name, key + ".name",
                      "is not a field of the entity (set autogenerate: true for an identity column)");
        }
        if (e.fields[static_cast<size_t>(idx)].nullable) {
          return fail(pk["name"], e.primary_key.name, key + ".name", "a primary key field must not be nullable");
        }
      }
    }
    if (db && db["conformant_id_column"]) {
      key = "persistence.database.conformant_id_column";
      e.id_column = db["conformant_id_column"].as<std::string>();
      if (e.FieldIndex(e.id_column) < 0 && e.id_column != e.primary_key.name) {
        e.warnings.push_back(Ctx(origin, db["conformant_id_column"], e.name, "", key) + " '" + e.id_column +
                             "' is neither a field nor the primary key");
      }
    }
    return e;
  } catch (const YAML::Exception& ex) {
    std::string ctx = std::string(origin) + ":";
    if (!entity_name.empty()) ctx += " entity '" + entity_name + "',";
    if (!field_name.empty()) ctx += " field '" + field_name + "',";
    if (!key.empty()) ctx += " key '" + key + "':";
    return Status::InvalidArgument(ctx + " " + ex.what());
  }
}

Result<Entity> LoadEntityFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read entity file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseEntity(ss.str(), path);
}

Result<std::vector<Entity>> LoadEntityDir(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) paths.push_back(entry.path().string());
  }
  if (ec) return Status::NotFound("cannot read entity directory " + dir + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  std::vector<Entity> entities;
  for (const auto& p : paths) {
    auto e = LoadEntityFile(p);
    if (!e.ok()) return e.status();
    if (FindEntity(entities, e->name) != nullptr) {
      return Status::InvalidArgument(p + ": entity '" + e->name + "' is already defined in " +
                                     FindEntity(entities, e->name)->source_file);
    }
    entities.push_back(std::move(e).value());
  }
  if (entities.empty()) return Status::NotFound("no entity definitions (*.yaml) in " + dir);
  if (Status s = ValidateEntitySet(entities); !s.ok()) return s;
  for (Entity& e : entities) {
    for (const Field& f : e.inputs) {
      bool fed = false;
      for (const Entity& d : entities) {
        fed =
            fed || (d.IsDerived() && EqualsIgnoreCase(d.repeated_for.entity, e.name) && d.repeated_for.field == f.name);
      }
      if (!fed) {
        e.warnings.push_back(e.source_file + ": entity '" + e.name + "', field '" + f.name + "': " + f.declared_type +
                             " is neither a column (name it in persistence.field_overrides to store it as jsonb) nor "
                             "repeated_for by an entity, so it is not stored");
      }
    }
  }
  return entities;
}

Status ValidateEntitySet(const std::vector<Entity>& entities) {
  for (const Entity& e : entities) {
    if (!e.IsDerived()) continue;
    const std::string ctx = e.source_file + ": entity '" + e.name + "'";
    const Entity* parent = FindEntity(entities, e.repeated_for.entity);
    if (parent == nullptr) {
      return Status::InvalidArgument(ctx + ", key 'repeated_for.entity': no entity '" + e.repeated_for.entity +
                                     "' in this set");
    }
    // No cycles: following parents ends at an entity that is not derived.
    std::vector<const Entity*> chain = {&e};
    for (const Entity* at = parent; at != nullptr;
         at = at->IsDerived() ? FindEntity(entities, at->repeated_for.entity) : nullptr) {
      if (std::find(chain.begin(), chain.end(), at) != chain.end()) {
        std::string names;
        const size_t from = static_cast<size_t>(std::find(chain.begin(), chain.end(), at) - chain.begin());
        for (size_t i = from; i < chain.size(); ++i) names += chain[i]->name + " -> ";
        return Status::InvalidArgument(ctx + ", key 'repeated_for': entities repeat for each other in a cycle (" +
                                       names + at->name + ")");
      }
      chain.push_back(at);
    }
    const Field* list = parent->FindInput(e.repeated_for.field);
    if (list == nullptr || !list->is_list) {
      return Status::InvalidArgument(ctx + ", key 'repeated_for.field': entity '" + parent->name +
                                     "' has no List field '" + e.repeated_for.field + "'");
    }
    for (const Field& f : e.fields) {
      if (f.computed.transform != Transform::kCopyField) continue;
      // The parent or any ancestor (chain[1] is the parent).
      const Entity* source = nullptr;
      for (size_t i = 1; i < chain.size() && source == nullptr; ++i) {
        if (EqualsIgnoreCase(chain[i]->name, f.computed.source_entity)) source = chain[i];
      }
      if (source == nullptr) {
        std::string ancestors;
        for (size_t i = 1; i < chain.size(); ++i) ancestors += (i > 1 ? ", " : "") + ("'" + chain[i]->name + "'");
        return Status::InvalidArgument(ctx + ", field '" + f.name +
                                       "', key 'computed_from.sources': copy_field copies from the parent or an "
                                       "ancestor (" +
                                       ancestors + "), not '" + f.computed.source_entity + "'");
      }
      const int idx = source->FieldIndex(f.computed.source_field);
      if (idx < 0) {
        return Status::InvalidArgument(ctx + ", field '" + f.name + "', key 'computed_from.sources': entity '" +
                                       source->name + "' has no column '" + f.computed.source_field + "'");
      }
    }
  }
  return Status::Ok();
}

std::vector<const Entity*> DerivedEntities(const std::vector<Entity>& entities, const Entity& root) {
  std::vector<const Entity*> out;
  std::vector<const Entity*> todo = {&root};
  while (!todo.empty() && out.size() <= entities.size()) {
    const Entity* parent = todo.front();
    todo.erase(todo.begin());
    for (const Entity& d : entities) {
      if (d.IsDerived() && EqualsIgnoreCase(d.repeated_for.entity, parent->name)) {
        out.push_back(&d);
        todo.push_back(&d);
      }
    }
  }
  return out;
}

Result<std::string> ResolveEntityDir(const std::string& explicit_dir) {
  if (!explicit_dir.empty()) return explicit_dir;
  if (const char* env = std::getenv("NOMNOM_ENTITIES"); env != nullptr && *env != '\0') return std::string(env);
  for (const char* dir : {NOMNOM_SOURCE_ENTITIES_DIR, NOMNOM_INSTALL_ENTITIES_DIR}) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) return std::string(dir);
  }
  return Status::NotFound(
      std::string("no entity definitions found: name a directory of entity files, or set NOMNOM_ENTITIES (looked in ") +
      NOMNOM_SOURCE_ENTITIES_DIR + " and " + NOMNOM_INSTALL_ENTITIES_DIR + ")");
}

const Entity* FindEntity(const std::vector<Entity>& entities, std::string_view name) {
  for (const auto& e : entities) {
    if (EqualsIgnoreCase(e.name, name)) return &e;
  }
  return nullptr;
}

}  // namespace nomnom
