#include "core/pg/fresh_table.h"

#include <cstdlib>

namespace nomnom {

namespace {

constexpr std::string_view kMarkerTable = "nomnom_fresh_loads";

// The session advisory lock of a fresh load of the table with this oid: the
// high half "nnfr", the low half the oid.
std::string LockKeySql(const std::string& oid) {
  return "((x'6e6e6672'::bigint << 32) | " + oid + "::bigint)";  // oid: digits from pg_class
}

struct TableInfo {
  std::string oid;     // digits
  std::string schema;  // quoted
  std::string relkind;
  bool is_partition = false;
};

// The table's catalog facts; nullopt when it does not exist.
Result<std::optional<TableInfo>> LookUp(PgConnection& conn, const std::string& regclass) {
  PgRows rows;
  if (auto err = conn.TryExecParams(
          "SELECT c.oid::text, quote_ident(n.nspname), c.relkind::text, c.relispartition FROM pg_class c"
          " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
          {regclass}, &rows)) {
    return ToStatus(*err, "cannot look up table " + regclass);
  }
  if (rows.rows.empty()) return std::optional<TableInfo>();
  const auto& r = rows.rows[0];
  return std::optional<TableInfo>(
      TableInfo{r.at(0).value_or(""), r.at(1).value_or(""), r.at(2).value_or(""), r.at(3).value_or("f") == "t"});
}

std::string ColumnList(const Entity& e, std::string_view prefix = "") {
  std::string s;
  for (const Field& f : e.fields) s += (s.empty() ? "" : ", ") + std::string(prefix) + QuoteIdent(f.name);
  return s;
}

std::string KeyList(const Entity& e, std::string_view prefix = "") {
  std::string s;
  for (size_t k : e.key_fields) s += (s.empty() ? "" : ", ") + std::string(prefix) + QuoteIdent(e.fields[k].name);
  return s;
}

std::string Cell(const PgRows& rows, size_t r, size_t c) { return rows.rows.at(r).at(c).value_or(""); }

// Rolls back (when the connection still works) and returns s.
Status RollBack(PgConnection& conn, Status s) {
  if (conn.IsOk()) conn.TryExec("ROLLBACK");
  return s;
}

}  // namespace

Result<std::unique_ptr<FreshTable>> FreshTable::Begin(std::unique_ptr<PgConnection> conn, const Entity& entity,
                                                      const std::string& what) {
  std::unique_ptr<FreshTable> t(new FreshTable(std::move(conn), entity, what));
  PgConnection& c = *t->conn_;
  const std::string table = entity.QualifiedTable();
  auto info = LookUp(c, table);
  if (!info.ok()) return info.status();
  if (!info->has_value()) return Status::NotFound(what + ": table " + table + " does not exist");
  t->oid_ = (*info)->oid;
  t->marker_ = (*info)->schema + "." + QuoteIdent(kMarkerTable);
  const std::string refused = what + " refused: " + table;
  if ((*info)->relkind == "p") return Status::InvalidArgument(refused + " is a partitioned table");
  if ((*info)->is_partition) return Status::InvalidArgument(refused + " is a partition of another table");

  PgRows locked;
  if (auto err = c.TryExec("SELECT pg_try_advisory_lock(" + LockKeySql(t->oid_) + ")", &locked)) {
    return ToStatus(*err, what + ": cannot take the lock of " + table);
  }
  if (Cell(locked, 0, 0) != "t") return Status::Conflict(refused + " is being loaded by another fresh load");

  if (auto err = c.TryExec("BEGIN; LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE")) {
    return RollBack(c, ToStatus(*err, what + ": cannot lock " + table));
  }
  PgRows refs;
  if (auto err = c.TryExecParams(
          "SELECT string_agg(quote_ident(conname) || ' on ' || conrelid::regclass::text, ', ' ORDER BY conname)"
          " FROM pg_constraint WHERE contype = 'f' AND confrelid = $1::oid",
          {t->oid_}, &refs)) {
    return RollBack(c, ToStatus(*err, what + ": cannot read the foreign keys of " + table));
  }
  if (!Cell(refs, 0, 0).empty()) {
    return RollBack(c, Status::InvalidArgument(refused + " is referenced by foreign keys (" + Cell(refs, 0, 0) +
                                               "), whose checks need its key"));
  }
  PgRows any;
  if (auto err = c.TryExec("SELECT EXISTS (SELECT 1 FROM " + table + ")", &any)) {
    return RollBack(c, ToStatus(*err, what + ": cannot read " + table));
  }
  if (Cell(any, 0, 0) == "t") return RollBack(c, Status::InvalidArgument(refused + " is not empty"));
  PgRows key;
  if (auto err = c.TryExecParams(
          "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'p' AND conrelid = $1::oid",
          {t->oid_}, &key)) {
    return RollBack(c, ToStatus(*err, what + ": cannot read the primary key of " + table));
  }
  if (key.rows.empty()) return RollBack(c, Status::InvalidArgument(refused + " has no primary key"));
  t->key_name_ = Cell(key, 0, 0);
  t->key_def_ = Cell(key, 0, 1);

  if (auto err = c.TryExec("CREATE TABLE IF NOT EXISTS " + t->marker_ +
                           " (table_oid oid PRIMARY KEY, table_name text NOT NULL, key_name text NOT NULL,"
                           " key_def text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(),"
                           " started_by text NOT NULL)")) {
    return RollBack(c, ToStatus(*err, what + ": cannot create " + t->marker_));
  }
  if (auto err = c.TryExecParams("INSERT INTO " + t->marker_ +
                                     " (table_oid, table_name, key_name, key_def, started_by) VALUES ($1::oid, $2, $3,"
                                     " $4, current_user || ' (backend pid ' || pg_backend_pid() || ')')",
                                 {t->oid_, table, t->key_name_, t->key_def_})) {
    return RollBack(c, ToStatus(*err, what + ": cannot record the load in " + t->marker_));
  }
  if (auto err = c.TryExec("ALTER TABLE " + table + " DROP CONSTRAINT " + QuoteIdent(t->key_name_) + "; COMMIT")) {
    return RollBack(c, ToStatus(*err, what + ": cannot drop the primary key of " + table));
  }
  return t;
}

FreshTable::~FreshTable() = default;

Status FreshTable::Finish(const RestageFn& restage, std::vector<DuplicateRow>* duplicates) {
  PgConnection& c = *conn_;
  const std::string table = entity_.QualifiedTable();
  const std::string add_key = "ALTER TABLE " + table + " ADD CONSTRAINT " + QuoteIdent(key_name_) + " " + key_def_;
  if (auto err = c.TryExec("BEGIN; " + add_key)) {
    if (err->sqlstate != "23505") return RollBack(c, ToStatus(*err, what_ + ": cannot build the key of " + table));
    c.TryExec("ROLLBACK");
    return ResolveDuplicates(restage, duplicates);
  }
  if (auto err = c.TryExecParams("DELETE FROM " + marker_ + " WHERE table_oid = $1::oid", {oid_})) {
    return RollBack(c, ToStatus(*err, what_ + ": cannot remove the marker of " + table));
  }
  if (auto err = c.TryExec("COMMIT")) return RollBack(c, ToStatus(*err, what_ + ": cannot commit the key of " + table));
  done_ = true;
  return Status::Ok();
}

Status FreshTable::ResolveDuplicates(const RestageFn& restage, std::vector<DuplicateRow>* duplicates) {
  PgConnection& c = *conn_;
  const std::string table = entity_.QualifiedTable();
  const std::string cols = ColumnList(entity_);
  const std::string keys = KeyList(entity_);
  auto fail = [&](const PgError& err, const std::string& doing) {
    return RollBack(c, ToStatus(err, what_ + ": " + doing + " (resolving duplicate keys of " + table + ")"));
  };
  if (auto err =
          c.TryExec("BEGIN; CREATE TEMP TABLE nomnom_fresh_rows ON COMMIT DROP AS SELECT " + cols + " FROM " + table +
                    " WITH NO DATA; ALTER TABLE pg_temp.nomnom_fresh_rows ADD COLUMN nomnom_src integer,"
                    " ADD COLUMN nomnom_line bigint")) {
    return fail(*err, "cannot create the table of input positions");
  }
  if (Status s = restage(
          c, "COPY pg_temp.nomnom_fresh_rows (" + cols + ", nomnom_src, nomnom_line) FROM STDIN " + "(FORMAT binary)");
      !s.ok()) {
    return RollBack(c, s);
  }
  // Every occurrence of a key the table holds more than once, first in input order ranked 1.
  if (auto err = c.TryExec("CREATE TEMP TABLE nomnom_fresh_ranked ON COMMIT DROP AS SELECT r.*, row_number() OVER"
                           " (PARTITION BY " +
                           KeyList(entity_, "r.") + " ORDER BY r.nomnom_src, r.nomnom_line) AS nomnom_rn FROM" +
                           " pg_temp.nomnom_fresh_rows r WHERE (" + KeyList(entity_, "r.") + ") IN (SELECT " + keys +
                           " FROM " + table + " GROUP BY " + keys + " HAVING count(*) > 1)")) {
    return fail(*err, "cannot rank the duplicates");
  }
  PgRows counts;
  if (auto err = c.TryExec("SELECT (SELECT count(*) FROM pg_temp.nomnom_fresh_ranked), (SELECT count(*) FROM " + table +
                               " WHERE (" + keys + ") IN (SELECT " + keys + " FROM pg_temp.nomnom_fresh_ranked))",
                           &counts)) {
    return fail(*err, "cannot count the duplicates");
  }
  if (Cell(counts, 0, 0) != Cell(counts, 0, 1) || Cell(counts, 0, 0) == "0") {
    return RollBack(c, Status::Internal(what_ + ": " + table + " holds " + Cell(counts, 0, 1) +
                                        " rows of duplicated keys but reading the input again found " +
                                        Cell(counts, 0, 0) + " (did an input change during the load?)"));
  }
  std::string same_key;
  for (size_t k : entity_.key_fields) {
    const std::string col = QuoteIdent(entity_.fields[k].name);
    same_key += " AND w." + col + " = l." + col;
  }
  PgRows losers;
  if (auto err =
          c.TryExec("SELECT l.nomnom_src, l.nomnom_line, w.nomnom_src, w.nomnom_line, ROW(" + KeyList(entity_, "l.") +
                        ")::text FROM pg_temp.nomnom_fresh_ranked l JOIN pg_temp.nomnom_fresh_ranked w ON"
                        " w.nomnom_rn = 1" +
                        same_key + " WHERE l.nomnom_rn > 1 ORDER BY 1, 2",
                    &losers)) {
    return fail(*err, "cannot list the duplicates");
  }
  if (auto err = c.TryExec("DELETE FROM " + table + " WHERE (" + keys + ") IN (SELECT " + keys +
                           " FROM pg_temp.nomnom_fresh_ranked); INSERT INTO " + table + " (" + cols + ") SELECT " +
                           cols + " FROM pg_temp.nomnom_fresh_ranked WHERE nomnom_rn = 1")) {
    return fail(*err, "cannot keep the first occurrences");
  }
  if (auto err = c.TryExec("ALTER TABLE " + table + " ADD CONSTRAINT " + QuoteIdent(key_name_) + " " + key_def_)) {
    return fail(*err, "cannot build the key");
  }
  if (auto err = c.TryExecParams("DELETE FROM " + marker_ + " WHERE table_oid = $1::oid", {oid_})) {
    return fail(*err, "cannot remove the marker");
  }
  if (auto err = c.TryExec("COMMIT")) return fail(*err, "cannot commit");
  done_ = true;
  for (size_t i = 0; i < losers.rows.size(); ++i) {
    duplicates->push_back(DuplicateRow{static_cast<uint32_t>(std::strtoul(Cell(losers, i, 0).c_str(), nullptr, 10)),
                                       std::strtoull(Cell(losers, i, 1).c_str(), nullptr, 10),
                                       static_cast<uint32_t>(std::strtoul(Cell(losers, i, 2).c_str(), nullptr, 10)),
                                       std::strtoull(Cell(losers, i, 3).c_str(), nullptr, 10), Cell(losers, i, 4)});
  }
  return Status::Ok();
}

Status FreshTable::Abandon() {
  PgConnection& c = *conn_;
  const std::string table = entity_.QualifiedTable();
  if (auto err = c.TryExec("BEGIN; TRUNCATE " + table + "; ALTER TABLE " + table + " ADD CONSTRAINT " +
                           QuoteIdent(key_name_) + " " + key_def_)) {
    return RollBack(c, ToStatus(*err, what_ + ": cannot undo the load of " + table));
  }
  if (auto err = c.TryExecParams("DELETE FROM " + marker_ + " WHERE table_oid = $1::oid; ", {oid_})) {
    return RollBack(c, ToStatus(*err, what_ + ": cannot remove the marker of " + table));
  }
  if (auto err = c.TryExec("COMMIT")) return RollBack(c, ToStatus(*err, what_ + ": cannot undo the load of " + table));
  done_ = true;
  return Status::Ok();
}

Result<std::string> RecoverInterruptedFreshLoad(PgConnection& conn, const Entity& entity, const std::string& what) {
  const std::string table = entity.QualifiedTable();
  auto info = LookUp(conn, table);
  if (!info.ok()) return info.status();
  if (!info->has_value()) return std::string();
  const std::string oid = (*info)->oid;
  const std::string marker = (*info)->schema + "." + QuoteIdent(kMarkerTable);
  PgRows exists;
  if (auto err = conn.TryExecParams("SELECT to_regclass($1) IS NOT NULL", {marker}, &exists)) {
    return ToStatus(*err, "cannot look up " + marker);
  }
  if (Cell(exists, 0, 0) != "t") return std::string();
  const std::string select_marker =
      "SELECT key_name, key_def, started_at::text, started_by FROM " + marker + " WHERE table_oid = $1::oid";
  PgRows m;
  if (auto err = conn.TryExecParams(select_marker, {oid}, &m)) return ToStatus(*err, "cannot read " + marker);
  if (m.rows.empty()) return std::string();

  PgRows locked;
  if (auto err = conn.TryExec("SELECT pg_try_advisory_lock(" + LockKeySql(oid) + ")", &locked)) {
    return ToStatus(*err, "cannot take the lock of " + table);
  }
  if (Cell(locked, 0, 0) != "t") {
    return Status::Conflict("a fresh load (" + what + ") of " + table + " is running (started " + Cell(m, 0, 2) +
                            " by " + Cell(m, 0, 3) + "); " + table + " has no primary key until it finishes");
  }
  auto release = [&] {
    if (conn.IsOk()) conn.TryExec("SELECT pg_advisory_unlock(" + LockKeySql(oid) + ")");
  };
  auto unlock = [&](Status s) -> Status {
    release();
    return s;
  };
  // Under the lock and the table's lock, read the marker again: a loader may
  // have finished in between.
  if (auto err = conn.TryExec("BEGIN; LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE")) {
    return unlock(RollBack(conn, ToStatus(*err, "cannot lock " + table)));
  }
  if (auto err = conn.TryExecParams(select_marker + " FOR UPDATE", {oid}, &m)) {
    return unlock(RollBack(conn, ToStatus(*err, "cannot read " + marker)));
  }
  if (m.rows.empty()) {
    conn.TryExec("ROLLBACK");
    release();
    return std::string();
  }
  const std::string key_name = Cell(m, 0, 0);
  PgRows rows, has_key;
  std::optional<PgError> err = conn.TryExec("SELECT count(*) FROM " + table, &rows);
  if (!err) err = conn.TryExec("TRUNCATE " + table);
  if (!err) {
    err = conn.TryExecParams("SELECT count(*) FROM pg_constraint WHERE conrelid = $1::oid AND contype = 'p'", {oid},
                             &has_key);
  }
  if (!err && Cell(has_key, 0, 0) == "0") {
    err = conn.TryExec("ALTER TABLE " + table + " ADD CONSTRAINT " + QuoteIdent(key_name) + " " + Cell(m, 0, 1));
  }
  if (!err) err = conn.TryExecParams("DELETE FROM " + marker + " WHERE table_oid = $1::oid", {oid});
  if (!err) err = conn.TryExec("COMMIT");
  if (err) return unlock(RollBack(conn, ToStatus(*err, "cannot clean up the interrupted fresh load of " + table)));
  release();
  return "found an interrupted fresh load (" + what + ") of " + table + " (started " + Cell(m, 0, 2) + " by " +
         Cell(m, 0, 3) + "): removed its " + Cell(rows, 0, 0) + " rows and restored the primary key " +
         QuoteIdent(key_name);
}

}  // namespace nomnom
