#include "core/pg/table_setup.h"

#include <set>

namespace nomnom {

namespace {

std::string KeyList(const Entity& e) {
  std::string s;
  for (size_t k : e.key_fields) {
    if (!s.empty()) s += ", ";
    s += e.fields[k].name;
  }
  return s;
}

// Verifies an existing table against the entity.
Status CheckTable(PgConnection& conn, const Entity& entity, const std::string& regclass, ConflictMode mode) {
  auto cols = conn.ExecParams(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
      "       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' "
      "FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
      "ORDER BY a.attnum",
      {regclass});
  if (!cols.ok()) return cols.status();
  std::vector<std::string> problems;
  std::set<std::string> seen;
  for (const auto& row : cols->rows) {
    const std::string name = row[0].value_or("");
    const std::string type = row[1].value_or("");
    const bool not_null = row[2].value_or("f") == "t";
    const bool has_default = row[3].value_or("f") == "t";
    const int idx = entity.FieldIndex(name);
    if (idx < 0) {
      if (not_null && !has_default) {
        problems.push_back("column " + name + " is NOT NULL without a default, and the entity does not define it");
      }
      continue;
    }
    seen.insert(name);
    const Field& f = entity.fields[static_cast<size_t>(idx)];
    if (type != f.PgTypeName()) {
      problems.push_back("column " + name + " is " + type + ", the entity's " + std::string(FieldTypeName(f.type)) +
                         " field needs " + f.PgTypeName());
    }
    if (not_null && f.nullable) {
      problems.push_back("column " + name + " is NOT NULL but the entity allows null");
    }
  }
  for (const Field& f : entity.fields) {
    if (seen.count(f.name) == 0) problems.push_back("column " + f.name + " (" + f.PgTypeName() + ") is missing");
  }
  if (mode != ConflictMode::kError) {
    // ON CONFLICT (key) needs a unique, non-partial index on exactly the key columns.
    auto idx = conn.ExecParams(
        "SELECT count(*) FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL "
        "AND i.indexprs IS NULL AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a "
        "  WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) = "
        "  (SELECT array_agg(x ORDER BY x) FROM unnest(string_to_array($2, ',')) x) "
        "AND i.indnkeyatts = cardinality(string_to_array($2, ','))",
        {regclass, [&] {
           std::string s;
           for (size_t k : entity.key_fields) s += (s.empty() ? "" : ",") + entity.fields[k].name;
           return s;
         }()});
    if (!idx.ok()) return idx.status();
    if (idx->rows.at(0).at(0).value_or("0") == "0") {
      problems.push_back("there is no unique index on (" + KeyList(entity) + "), which conflict mode " +
                         std::string(ConflictModeName(mode)) + " needs");
    }
  }
  if (problems.empty()) return Status::Ok();
  std::string msg = "table " + regclass + " does not match entity " + entity.name + " (" + entity.source_file + "):";
  for (const auto& p : problems) msg += "\n  - " + p;
  return Status::SchemaMismatch(msg);
}

}  // namespace

Status EnsureTable(PgConnection& conn, const Entity& entity, ConflictMode mode) {
  if (mode != ConflictMode::kError && entity.key_fields.empty()) {
    return Status::InvalidArgument("entity " + entity.name + " has no unicity_fields, so conflict mode " +
                                   std::string(ConflictModeName(mode)) + " has no key; use conflict mode error");
  }
  const std::string regclass = entity.QualifiedTable();
  auto exists = conn.ExecParams("SELECT to_regclass($1) IS NOT NULL", {regclass});
  if (!exists.ok()) return exists.status();
  if (exists->rows.at(0).at(0).value_or("f") == "t") return CheckTable(conn, entity, regclass, mode);
  if (!entity.table_schema.empty()) {
    if (auto err = conn.TryExec("CREATE SCHEMA IF NOT EXISTS " + QuoteIdent(entity.table_schema))) {
      return ToStatus(*err, "cannot create schema " + entity.table_schema);
    }
  }
  if (auto err = conn.TryExec(entity.CreateTableSql())) {
    // Another loader may have created it concurrently (unique violation on the catalog).
    if (err->sqlstate != "23505" && err->sqlstate != "42P07") return ToStatus(*err, "cannot create table " + regclass);
  }
  return CheckTable(conn, entity, regclass, mode);
}

}  // namespace nomnom
