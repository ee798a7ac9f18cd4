#include "core/schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/pg_connection.h"

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
  }
  return "?";
}

Result<FieldType> ParseFieldType(std::string_view name) {
  struct Alias {
    std::string_view name;
    FieldType type;
  };
  static constexpr Alias kAliases[] = {
      {"String", FieldType::kString},   {"Text", FieldType::kString},       {"Integer", FieldType::kInteger},
      {"Int", FieldType::kInteger},     {"BigInt", FieldType::kBigInt},     {"Long", FieldType::kBigInt},
      {"Float", FieldType::kFloat},     {"Double", FieldType::kFloat},      {"Decimal", FieldType::kDecimal},
      {"Numeric", FieldType::kDecimal}, {"Boolean", FieldType::kBoolean},   {"Bool", FieldType::kBoolean},
      {"Date", FieldType::kDate},       {"DateTime", FieldType::kDateTime}, {"Timestamp", FieldType::kDateTime},
      {"Json", FieldType::kJson},
  };
  for (const auto& a : kAliases) {
    if (EqualsIgnoreCase(a.name, name)) return a.type;
  }
  return Status::InvalidArgument("unknown field type '" + std::string(name) +
                                 "' (expected String, Integer, BigInt, Float, Decimal, Boolean, Date, "
                                 "DateTime or Json)");
}

std::string Field::PgTypeName() const {
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
      return "numeric";
    case FieldType::kBoolean:
      return "boolean";
    case FieldType::kDate:
      return "date";
    case FieldType::kDateTime:
      return "timestamp with time zone";
    case FieldType::kJson:
      return "jsonb";
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
  for (const Field& f : fields) {
    sql += "  " + QuoteIdent(f.name) + " " + f.PgTypeName();
    if (!f.nullable) sql += " NOT NULL";
    sql += ",\n";
  }
  if (!key_fields.empty()) {
    sql += "  PRIMARY KEY (";
    for (size_t i = 0; i < key_fields.size(); ++i) {
      if (i > 0) sql += ", ";
      sql += QuoteIdent(fields[key_fields[i]].name);
    }
    sql += ")\n";
  } else {
    sql.erase(sql.size() - 2, 1);  // drop the last comma
  }
  sql += ")";
  return sql;
}

Result<Entity> ParseEntity(std::string_view yaml_text, std::string_view origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string(origin) + ": invalid YAML: " + e.what());
  }
  try {
    YAML::Node node = root["entity"];
    if (!node.IsMap()) return Status::InvalidArgument(std::string(origin) + ": expected a top-level 'entity:' mapping");
    Entity e;
    e.source_file = std::string(origin);
    if (!node["name"] || node["name"].as<std::string>().empty()) {
      return Status::InvalidArgument(Where(origin, node) + ": entity has no 'name'");
    }
    e.name = node["name"].as<std::string>();
    const YAML::Node fields = node["fields"];
    if (!fields.IsSequence() || fields.size() == 0) {
      return Status::InvalidArgument(Where(origin, node) + ": entity '" + e.name + "' has no 'fields' list");
    }
    for (const YAML::Node& fn : fields) {
      Field f;
      if (!fn["name"]) return Status::InvalidArgument(Where(origin, fn) + ": a field has no 'name'");
      f.name = fn["name"].as<std::string>();
      if (f.name.empty()) return Status::InvalidArgument(Where(origin, fn) + ": a field has an empty 'name'");
      if (e.FieldIndex(f.name) >= 0) {
        return Status::InvalidArgument(Where(origin, fn) + ": field '" + f.name + "' is defined twice");
      }
      if (!fn["type"]) return Status::InvalidArgument(Where(origin, fn) + ": field '" + f.name + "' has no 'type'");
      auto type = ParseFieldType(fn["type"].as<std::string>());
      if (!type.ok())
        return Status::InvalidArgument(Where(origin, fn) + ": field '" + f.name + "': " + type.status().message());
      f.type = *type;
      if (fn["nullable"]) f.nullable = fn["nullable"].as<bool>();
      if (fn["doc"]) f.doc = fn["doc"].as<std::string>();
      // yaml-cpp's Node::operator= assigns through to the node, so use reset() to rebind.
      YAML::Node len(YAML::NodeType::Undefined);
      if (fn["max_length"]) {
        len.reset(fn["max_length"]);
      } else if (fn["length"]) {
        len.reset(fn["length"]);
      } else if (fn["args"] && fn["args"].IsSequence() && fn["args"].size() > 0) {
        len.reset(fn["args"][0]);
      }
      if (len && f.type == FieldType::kString) {
        const int64_t n = len.as<int64_t>();
        if (n < 1 || n > 10485760) {
          return Status::InvalidArgument(Where(origin, fn) + ": field '" + f.name +
                                         "': length must be between 1 and 10485760");
        }
        f.max_length = static_cast<uint32_t>(n);
      }
      e.fields.push_back(std::move(f));
    }
    if (e.fields.size() > 1600) return Status::InvalidArgument(std::string(origin) + ": more than 1600 fields");
    const YAML::Node db = node["persistence"]["database"];
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
      for (const YAML::Node& k : db["unicity_fields"]) {
        const std::string key = k.as<std::string>();
        const int idx = e.FieldIndex(key);
        if (idx < 0) {
          return Status::InvalidArgument(Where(origin, k) + ": unicity field '" + key + "' is not a field of '" +
                                         e.name + "'");
        }
        if (e.fields[static_cast<size_t>(idx)].nullable) {
          return Status::InvalidArgument(Where(origin, k) + ": unicity field '" + key + "' must not be nullable");
        }
        e.key_fields.push_back(static_cast<size_t>(idx));
      }
    }
    return e;
  } catch (const YAML::Exception& ex) {
    return Status::InvalidArgument(std::string(origin) + ": " + ex.what());
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
  return entities;
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
