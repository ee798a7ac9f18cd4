#include "core/pg/catalog_entity.h"

#include <charconv>
#include <optional>
#include <string>
#include <vector>

namespace nomnom {

namespace {

// Sets f's type (and length, precision, scale, array element type) for a
// column of PostgreSQL type `typname` (pg_type.typname; "_text" for text[])
// with type modifier `typmod`. False when nomnom cannot encode the type.
bool MapType(std::string_view typname, int typmod, Field* f) {
  f->max_length = 0;
  if (typname == "text") {
    f->type = FieldType::kString;
  } else if (typname == "varchar" || typname == "bpchar" || typname == "_varchar") {
    // varchar(n) and varchar(n)[]: the array column's typmod is its elements'.
    f->type = typname == "_varchar" ? FieldType::kTextArray : FieldType::kString;
    if (f->type == FieldType::kTextArray) f->array_element_oid = kVarcharOid;
    if (typmod > 4) f->max_length = static_cast<uint32_t>(typmod - 4);
  } else if (typname == "_text") {
    f->type = FieldType::kTextArray;
    f->array_element_oid = kTextOid;
  } else if (typname == "int2") {
    f->type = FieldType::kSmallInt;
  } else if (typname == "int4") {
    f->type = FieldType::kInteger;
  } else if (typname == "int8") {
    f->type = FieldType::kBigInt;
  } else if (typname == "float4") {
    f->type = FieldType::kReal;
  } else if (typname == "float8") {
    f->type = FieldType::kFloat;
  } else if (typname == "numeric") {
    f->type = FieldType::kDecimal;
    // typmod = ((precision << 16) | scale) + 4; PostgreSQL 15 allows a
    // negative scale (kept in pg_type only: the entity format has no spelling for it).
    if (typmod >= 4) {
      const int precision = ((typmod - 4) >> 16) & 0xFFFF;
      const int scale = (typmod - 4) & 0xFFFF;
      if (precision >= 1 && precision <= 1000 && scale <= precision) {
        f->precision = static_cast<uint16_t>(precision);
        f->scale = static_cast<uint16_t>(scale);
      }
    }
  } else if (typname == "bool") {
    f->type = FieldType::kBoolean;
  } else if (typname == "date") {
    f->type = FieldType::kDate;
  } else if (typname == "timestamptz" || typname == "timestamp") {
    f->type = FieldType::kDateTime;
  } else if (typname == "jsonb") {
    f->type = FieldType::kJson;
  } else if (typname == "json") {
    f->type = FieldType::kJsonText;
  } else if (typname == "uuid") {
    f->type = FieldType::kUuid;
  } else {
    return false;
  }
  return true;
}

// A YAML double-quoted scalar (JSON string syntax, which YAML accepts).
std::string Quoted(std::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace

bool IsTableEntityName(std::string_view entity_name) {
  return entity_name.size() > kTableEntityPrefix.size() &&
         entity_name.substr(0, kTableEntityPrefix.size()) == kTableEntityPrefix;
}

Result<Entity> TableEntityFromCatalog(PgConnection& conn, std::string_view table) {
  auto e = EntityFromCatalog(conn, table);
  if (!e.ok()) return e.status();
  auto plain = [](const std::string& s) {
    if (s.empty()) return false;
    for (const char c : s) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
  };
  if (!plain(e->table_schema) || !plain(e->table)) {
    return Status::InvalidArgument("table '" + e->table_schema + "." + e->table +
                                   "': only schema and table names of lower-case letters, digits and _ can be served");
  }
  e->name = std::string(kTableEntityPrefix) + e->table_schema + "." + e->table;
  return e;
}

std::string EntityToYaml(const Entity& entity) {
  std::string y = "entity:\n  name: " + Quoted(entity.name) + "\n  fields:\n";
  for (const Field& f : entity.fields) {
    y += "    - name: " + Quoted(f.name) + "\n      type: " + std::string(f.TypeSpelling()) + "\n";
    if ((f.type == FieldType::kString || f.type == FieldType::kTextArray) && f.max_length > 0) {
      y += "      args: [" + std::to_string(f.max_length) + "]\n";
    }
    if (f.type == FieldType::kDecimal && f.precision > 0) {
      y += "      args: [" + std::to_string(f.precision) + ", " + std::to_string(f.scale) + "]\n";
    }
    y += std::string("      nullable: ") + (f.nullable ? "true" : "false") + "\n";
    if (!f.pg_type.empty()) y += "      doc: " + Quoted("column type " + f.pg_type) + "\n";
  }
  const std::string table = entity.table_schema.empty() ? entity.table : entity.table_schema + "." + entity.table;
  y += "  persistence:\n    database:\n      conformant_table: " + Quoted(table) + "\n";
  if (!entity.key_fields.empty()) {
    y += "      unicity_fields: [";
    for (size_t i = 0; i < entity.key_fields.size(); ++i) {
      y += (i > 0 ? ", " : "") + Quoted(entity.fields[entity.key_fields[i]].name);
    }
    y += "]\n";
  }
  return y;
}

bool IsNomnomOwnTable(std::string_view table_name) {
  std::string lower(table_name);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower.rfind("nomnom_", 0) == 0;
}

Result<Entity> EntityFromCatalog(PgConnection& conn, std::string_view table) {
  const std::string name(table);
  {
    // Refused before the look-up too, so that a nomnom table not created yet
    // is refused as such rather than "does not exist".
    std::string last = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
    if (last.size() >= 2 && last.front() == '"' && last.back() == '"') last = last.substr(1, last.size() - 2);
    if (IsNomnomOwnTable(last)) {
      return Status::InvalidArgument("table '" + name + "' belongs to nomnom itself and cannot be loaded into");
    }
  }
  auto rel = conn.ExecParams(
      "SELECT c.oid::text, n.nspname, c.relname, c.relkind::text FROM pg_class c "
      "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
      {name});
  if (!rel.ok()) return Status::InvalidArgument("table '" + name + "': " + rel.status().message());
  if (rel->rows.empty()) return Status::NotFound("table '" + name + "' does not exist");
  const auto& r = rel->rows.front();
  const std::string oid = r.at(0).value_or("");
  const std::string schema = r.at(1).value_or("");
  const std::string relname = r.at(2).value_or("");
  const std::string relkind = r.at(3).value_or("");
  const std::string where = schema + "." + relname;
  if (relkind != "r" && relkind != "p") {
    return Status::InvalidArgument("'" + where + "' is not a table (relkind " + relkind + ")");
  }
  if (IsNomnomOwnTable(relname)) {
    return Status::InvalidArgument("table '" + where + "' belongs to nomnom itself and cannot be loaded into");
  }

  auto cols = conn.ExecParams(
      "SELECT a.attname, t.typname, a.atttypmod::text, a.attnotnull, a.attidentity::text, "
      "a.attgenerated::text, format_type(a.atttypid, a.atttypmod) "
      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
      {oid});
  if (!cols.ok()) return Status::InvalidArgument("table '" + where + "': " + cols.status().message());

  Entity e;
  e.name = relname;
  e.table_schema = schema;
  e.table = relname;
  e.source_file = "catalog:" + where;
  for (const auto& c : cols->rows) {
    const std::string col = c.at(0).value_or("");
    const std::string typname = c.at(1).value_or("");
    const std::string typmod_text = c.at(2).value_or("-1");
    int typmod = -1;
    std::from_chars(typmod_text.data(), typmod_text.data() + typmod_text.size(), typmod);
    const bool not_null = c.at(3).value_or("f") == "t";
    const std::string identity = c.at(4).value_or("");
    const std::string generated = c.at(5).value_or("");
    const std::string pretty = c.at(6).value_or(typname);
    if (!identity.empty() || !generated.empty()) continue;  // the server fills them
    Field f;
    f.name = col;
    f.nullable = !not_null;
    f.declared_type = pretty;
    f.pg_type = pretty;
    if (!MapType(typname, typmod, &f)) {
      return Status::InvalidArgument("table '" + where + "', column '" + col + "': type " + pretty +
                                     " is not supported (supported: text, varchar(n), char(n), smallint, integer, "
                                     "bigint, real, double precision, numeric, boolean, date, timestamp, timestamptz, "
                                     "json, jsonb, uuid, text[], varchar[])");
    }
    e.fields.push_back(std::move(f));
  }
  if (e.fields.empty()) return Status::InvalidArgument("table '" + where + "' has no column nomnom can fill");

  auto keys = conn.ExecParams(
      "SELECT i.indexrelid::text, a.attname FROM pg_index i "
      "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
      "WHERE i.indrelid = $1::oid AND (i.indisprimary OR i.indisunique) AND i.indpred IS NULL "
      "AND i.indexprs IS NULL AND i.indisvalid "
      "ORDER BY i.indisprimary DESC, i.indexrelid, k.ord",
      {oid});
  if (!keys.ok()) return Status::InvalidArgument("table '" + where + "': " + keys.status().message());
  // The first index (primary key first) whose columns are all input fields
  // and NOT NULL: a key over an identity column or a nullable column cannot
  // be the conflict key of an entity.
  std::string current;
  std::vector<size_t> candidate;
  bool usable = true;
  auto finish = [&] {
    if (!current.empty() && usable && !candidate.empty() && e.key_fields.empty()) e.key_fields = candidate;
    candidate.clear();
    usable = true;
  };
  for (const auto& k : keys->rows) {
    const std::string index = k.at(0).value_or("");
    if (index != current) {
      finish();
      current = index;
    }
    const int idx = e.FieldIndex(k.at(1).value_or(""));
    if (idx < 0 || e.fields[static_cast<size_t>(idx)].nullable) {
      usable = false;
    } else {
      candidate.push_back(static_cast<size_t>(idx));
    }
  }
  finish();
  return e;
}

}  // namespace nomnom
