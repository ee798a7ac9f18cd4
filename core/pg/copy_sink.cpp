#include "core/pg/copy_sink.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>

#include "core/format/pg_binary.h"

namespace nomnom {

namespace {

const ByteBuffer& CopyHeader() {
  static const ByteBuffer* header = [] {
    auto* b = new ByteBuffer();
    pg::AppendCopyHeader(*b);
    return b;
  }();
  return *header;
}

const ByteBuffer& CopyTrailer() {
  static const ByteBuffer* trailer = [] {
    auto* b = new ByteBuffer();
    pg::AppendCopyTrailer(*b);
    return b;
  }();
  return *trailer;
}

std::string ColumnList(const Entity& e) {
  std::string s;
  for (const Field& f : e.fields) {
    if (!s.empty()) s += ", ";
    s += QuoteIdent(f.name);
  }
  return s;
}

std::string KeyColumnList(const Entity& e) {
  std::string s;
  for (size_t k : e.key_fields) {
    if (!s.empty()) s += ", ";
    s += QuoteIdent(e.fields[k].name);
  }
  return s;
}

// PostgreSQL reports the failing row of a COPY in the error context as a line
// "COPY <table>, line <n>[, column ...]" (the last one, after e.g. a trigger
// function's own context lines); returns n (1-based) or 0.
size_t CopyLineFromContext(std::string_view context) {
  size_t start = 0;
  while (start < context.size()) {
    size_t end = context.find('\n', start);
    if (end == std::string_view::npos) end = context.size();
    const std::string_view line = context.substr(start, end - start);
    start = end + 1;
    const size_t at = line.find(", line ");
    if (line.rfind("COPY ", 0) != 0 || at == std::string_view::npos) continue;
    size_t n = 0;
    for (size_t i = at + 7; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i) {
      n = n * 10 + static_cast<size_t>(line[i] - '0');
    }
    return n;
  }
  return 0;
}

// kVersionTablePrefix + table, within PostgreSQL's 63-byte identifiers (a
// longer name is cut and made unique by a hash of the whole).
std::string VersionTableName(const std::string& table) {
  std::string name = std::string(kVersionTablePrefix) + table;
  if (name.size() <= 63) return name;
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 16777619u;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", h);
  name.resize(54);
  while (!name.empty() && (static_cast<unsigned char>(name.back()) & 0xC0) == 0x80) name.pop_back();
  if (!name.empty() && static_cast<unsigned char>(name.back()) >= 0xC0) name.pop_back();
  return name + "_" + hex;
}

// The SQL of CopySink::Prepare's merge (kNothing/kUpdate). Pure string
// builders; identifiers are quoted here.

// The tables and column lists every merge statement names.
struct MergeTables {
  std::string target;  // quoted, qualified
  std::string stage;   // pg_temp.<staging table>
  std::string cols;    // ColumnList
  std::string keys;    // KeyColumnList
};

// " AND a.<l[0]> = b.<r[0]> AND ..." over the shorter of the two lists.
std::string ColumnsMatch(std::string_view a, const std::vector<std::string>& l, std::string_view b,
                         const std::vector<std::string>& r) {
  std::string s;
  for (size_t i = 0; i < l.size() && i < r.size(); ++i) {
    s += " AND " + std::string(a) + "." + QuoteIdent(l[i]) + " = " + std::string(b) + "." + QuoteIdent(r[i]);
  }
  return s;
}

// " AND a.<key> = b.<key> ..." over the entity's key columns.
std::string KeyMatch(const Entity& e, std::string_view a, std::string_view b) {
  std::string s;
  for (size_t k : e.key_fields) {
    const std::string col = QuoteIdent(e.fields[k].name);
    s += " AND " + std::string(a) + "." + col + " = " + std::string(b) + "." + col;
  }
  return s;
}

// With a roots table: " AND r.<root key column> = x.<root column> ..." (x
// the derived table's alias); "" without one.
std::string RootMatch(const CopySinkOptions& o, std::string_view x) {
  if (o.roots_table.empty()) return "";
  return ColumnsMatch("r", o.parent_key_columns, x, o.parent_columns);
}

// "t.<parent column> = s.<parent column> AND ..." ("" without parent columns).
std::string ParentMatch(const CopySinkOptions& o) {
  const std::string m = ColumnsMatch("t", o.parent_columns, "s", o.parent_columns);
  return m.empty() ? m : m.substr(5);  // without the leading " AND "
}

// kNothing: the staged rows into the target, skipping existing keys; with a
// parent, no rows for a parent that has rows already; with a roots table,
// none for a root that existed before the batch; with mark_existing_roots_table
// a statement returning its insert count that marks the roots it skipped.
std::string NothingMergeSql(const Entity& e, const CopySinkOptions& o, const MergeTables& t) {
  const std::string parent_match = ParentMatch(o);
  const std::string root_match = RootMatch(o, "s");
  std::string only_new_parents =
      parent_match.empty() ? "" : " s WHERE NOT EXISTS (SELECT 1 FROM " + t.target + " t WHERE " + parent_match + ")";
  if (!root_match.empty()) {
    only_new_parents =
        " s WHERE NOT EXISTS (SELECT 1 FROM " + o.roots_table + " r WHERE r.nomnom_existed" + root_match + ")";
  }
  std::string merge = "INSERT INTO " + t.target + " (" + t.cols + ") SELECT " + t.cols + " FROM " + t.stage +
                      only_new_parents + " ON CONFLICT (" + t.keys + ") DO NOTHING";
  if (o.mark_existing_roots_table.empty()) return merge;
  // What ON CONFLICT skipped was there before or was inserted by a
  // transaction this one waited for: either way not this batch's root.
  return "WITH ins AS (" + merge + " RETURNING " + t.keys + "), mark AS (UPDATE " + o.mark_existing_roots_table +
         " r SET nomnom_existed = true WHERE NOT EXISTS (SELECT 1 FROM ins WHERE true" + KeyMatch(e, "ins", "r") +
         ")) SELECT count(*) FROM ins";
}

// kUpdate, a derived entity: the DELETE of the rows the batch's parents (or
// roots) no longer have, and with a roots table and the parent's version
// table the same only for roots whose applied version is the line's
// (before_merge_sql_, before_merge_seq_sql_; "" when none applies).
std::pair<std::string, std::string> BeforeMergeSql(const Entity& e, const CopySinkOptions& o, const MergeTables& t) {
  const std::string root_match = RootMatch(o, "t");
  const std::string key_match = KeyMatch(e, "s", "t");
  if (!root_match.empty()) {
    const std::string head =
        "DELETE FROM " + t.target + " t WHERE EXISTS (SELECT 1 FROM " + o.roots_table + " r WHERE true" + root_match;
    const std::string tail = ") AND NOT EXISTS (SELECT 1 FROM " + t.stage + " s WHERE true" + key_match + ")";
    std::string seq;
    if (!o.parent_version_table.empty()) {
      seq = head + " AND NOT EXISTS (SELECT 1 FROM " + o.parent_version_table +
            " v WHERE v.nomnom_stream_seq > r.nomnom_stream_seq" +
            ColumnsMatch("v", o.parent_key_columns, "r", o.parent_key_columns) + ")" + tail;
    }
    return {head + tail, seq};
  }
  if (o.parent_columns.empty()) return {};
  std::string parents;
  for (const std::string& c : o.parent_columns) parents += (parents.empty() ? "" : ", ") + QuoteIdent(c);
  return {"DELETE FROM " + t.target + " t WHERE (" + parents + ") IN (SELECT " + parents + " FROM " + t.stage +
              ") AND NOT EXISTS (SELECT 1 FROM " + t.stage + " s WHERE true" + key_match + ")",
          ""};
}

// kUpdate: the tail of the merge's INSERT (ON CONFLICT DO UPDATE ...) and the
// statement counting inserted and all merged rows. A partitioned table cannot
// return system columns (xmax) from INSERT ... RETURNING, so there a row
// counts as inserted when its key was not in the table in the statement's
// snapshot.
std::string UpdateReturningSql(const Entity& e, const MergeTables& t, bool partitioned) {
  std::string set;
  for (const Field& f : e.fields) {
    if (!set.empty()) set += ", ";
    set += QuoteIdent(f.name) + " = EXCLUDED." + QuoteIdent(f.name);
  }
  const std::string upsert = " ON CONFLICT (" + t.keys + ") DO UPDATE SET " + set;
  if (partitioned) {
    return upsert + " RETURNING " + t.keys + ") SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM " + t.target +
           " t WHERE true" + KeyMatch(e, "t", "ins") + ")), count(*) FROM ins";
  }
  return upsert + " RETURNING (xmax = 0) AS inserted) SELECT count(*) FILTER (WHERE inserted), count(*) FROM ins";
}

// kUpdate with stream sequences, a derived entity: drops the staged rows
// whose parent's applied version is newer than their own message ("" without
// the parent's version table).
std::string ParentGuardSql(const CopySinkOptions& o, const MergeTables& t) {
  if (o.parent_version_table.empty() || o.parent_key_columns.size() != o.parent_columns.size()) return "";
  return "DELETE FROM " + t.stage + " s WHERE EXISTS (SELECT 1 FROM " + o.parent_version_table +
         " v WHERE v.nomnom_stream_seq > s.nomnom_stream_seq" +
         ColumnsMatch("v", o.parent_key_columns, "s", o.parent_columns) + ")";
}

// kUpdate with stream sequences: upserts each staged key's newest sequence
// into the version table and drops the staged rows of keys that lost. A NULL
// key never conflicts, so such rows are neither versioned nor dropped.
std::string VersionGuardSql(const Entity& e, const std::string& version_table, const MergeTables& t) {
  std::string not_null;
  for (size_t k : e.key_fields) {
    not_null += (not_null.empty() ? "" : " AND ") + ("s." + QuoteIdent(e.fields[k].name) + " IS NOT NULL");
  }
  return "WITH v AS (INSERT INTO " + version_table + " AS v (" + t.keys + ", nomnom_stream_seq) SELECT DISTINCT ON (" +
         t.keys + ") " + t.keys + ", nomnom_stream_seq FROM " + t.stage + " s WHERE " + not_null + " ORDER BY " +
         t.keys + ", nomnom_stream_seq DESC ON CONFLICT (" + t.keys +
         ") DO UPDATE SET nomnom_stream_seq = EXCLUDED.nomnom_stream_seq"
         " WHERE v.nomnom_stream_seq <= EXCLUDED.nomnom_stream_seq RETURNING " +
         t.keys + ") DELETE FROM " + t.stage + " s WHERE " + not_null + " AND NOT EXISTS (SELECT 1 FROM v WHERE true" +
         KeyMatch(e, "v", "s") + ")";
}

}  // namespace

CopySink::CopySink(std::unique_ptr<PgConnection> owned, PgConnection* conn, const Entity& entity, ConflictMode mode,
                   CopySinkOptions options)
    : owned_conn_(std::move(owned)), conn_(conn), entity_(entity), mode_(mode), options_(std::move(options)) {}

Result<std::unique_ptr<CopySink>> CopySink::Create(std::unique_ptr<PgConnection> conn, const Entity& entity,
                                                   ConflictMode mode, CopySinkOptions options) {
  PgConnection* c = conn.get();
  std::unique_ptr<CopySink> sink(new CopySink(std::move(conn), c, entity, mode, std::move(options)));
  if (Status s = sink->Prepare(); !s.ok()) return s;
  return sink;
}

Result<std::unique_ptr<CopySink>> CopySink::CreateShared(PgConnection* conn, const Entity& entity, ConflictMode mode,
                                                         CopySinkOptions options) {
  std::unique_ptr<CopySink> sink(new CopySink(nullptr, conn, entity, mode, std::move(options)));
  if (Status s = sink->Prepare(); !s.ok()) return s;
  return sink;
}

std::string VersionTableFor(const Entity& entity) {
  return QuoteQualified(entity.table_schema, VersionTableName(entity.table));
}

Status CopySink::BeginBatch(const std::vector<const EncodedPart*>& parts) {
  parts_ = &parts;
  part_start_.clear();
  size_t total = 0;
  sequenced_ = false;
  for (const EncodedPart* p : parts) {
    part_start_.push_back(total);
    total += p->rows();
    if (mode_ == ConflictMode::kUpdate) {
      for (const RowOrigin& o : p->origins) sequenced_ = sequenced_ || o.stream_seq != 0;
    }
  }
  if (!sequenced_) return Status::Ok();
  // A derived entity with a parent guard keeps no version table of its own.
  if (parent_guard_sql_.empty() && !version_table_ready_) {
    if (Status s = EnsureVersionTable(); !s.ok()) return s;
  }
  BuildSequencedTuples(total);
  return Status::Ok();
}

std::optional<PgError> CopySink::LoadRows(size_t lo, size_t hi, bool whole_batch, bool allow_direct,
                                          BatchResult* result, size_t* bad_row) {
  allow_direct_ = allow_direct;
  auto err = TryLoad(lo, hi, whole_batch, result, bad_row);
  allow_direct_ = true;
  return err;
}

Status CopySink::Reconnect() {
  if (Status s = conn_->Reconnect(); !s.ok()) return s;
  return Prepare();
}

Status CopySink::Prepare() {
  const std::string cols = ColumnList(entity_);
  const std::string target = entity_.QualifiedTable();
  if (mode_ == ConflictMode::kError) {
    copy_sql_ = "COPY " + target + " (" + cols + ") FROM STDIN (FORMAT binary)";
    return Status::Ok();
  }
  if (Status s = CreateStagingTable(); !s.ok()) return s;
  const MergeTables t{target, "pg_temp." + QuoteIdent(options_.staging_table), cols, KeyColumnList(entity_)};
  copy_sql_ = "COPY " + t.stage + " (" + cols + ") FROM STDIN (FORMAT binary)";
  direct_copy_sql_ = "COPY " + target + " (" + cols + ") FROM STDIN (FORMAT binary)";
  before_merge_sql_.clear();
  before_merge_seq_sql_.clear();
  if (mode_ == ConflictMode::kNothing) {
    merge_sql_ = NothingMergeSql(entity_, options_, t);
    merge_count_in_row_ = !options_.mark_existing_roots_table.empty();
    return Status::Ok();
  }
  std::tie(before_merge_sql_, before_merge_seq_sql_) = BeforeMergeSql(entity_, options_, t);
  // A partitioned table cannot return system columns (xmax) from INSERT
  // ... RETURNING (see UpdateReturningSql).
  PgRows kind;
  if (auto err = conn_->TryExecParams("SELECT relkind::text FROM pg_class WHERE oid = $1::regclass", {target}, &kind)) {
    return ToStatus(*err, "cannot read the kind of table " + target);
  }
  const bool partitioned = !kind.rows.empty() && kind.rows[0].at(0).value_or("") == "p";
  const std::string returning = UpdateReturningSql(entity_, t, partitioned);
  // One pass when the batch has no duplicate keys (the common case); see
  // MergeUpdate for batches that do.
  merge_sql_ = "WITH ins AS (INSERT INTO " + target + " (" + cols + ") SELECT " + cols + " FROM " + t.stage + returning;
  max_dup_sql_ =
      "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM " + t.stage + " GROUP BY " + t.keys + ") d";
  // Rows without a stream sequence have NULL there: input order decides.
  merge_pass_sql_ = "WITH ranked AS (SELECT " + cols + ", row_number() OVER (PARTITION BY " + t.keys +
                    " ORDER BY nomnom_stream_seq, nomnom_seq) AS nomnom_rn FROM " + t.stage +
                    "), ins AS (INSERT INTO " + target + " (" + cols + ") SELECT " + cols +
                    " FROM ranked WHERE nomnom_rn = $1" + returning;
  seq_copy_sql_ = "COPY " + t.stage + " (" + cols + ", nomnom_stream_seq) FROM STDIN (FORMAT binary)";
  version_table_ = QuoteQualified(entity_.table_schema, VersionTableName(entity_.table));
  parent_guard_sql_ = ParentGuardSql(options_, t);
  version_guard_sql_ = VersionGuardSql(entity_, version_table_, t);
  return Status::Ok();
}

Status CopySink::CreateStagingTable() {
  // The staging table has the target's column types but none of its
  // constraints; ON COMMIT DELETE ROWS empties it after every batch.
  const std::string create = "CREATE TEMP TABLE " + QuoteIdent(options_.staging_table) +
                             " ON COMMIT DELETE ROWS AS SELECT " + ColumnList(entity_) + " FROM " +
                             entity_.QualifiedTable() + " WITH NO DATA";
  if (auto err = conn_->TryExec(create)) return ToStatus(*err, "cannot create the staging table");
  if (mode_ != ConflictMode::kUpdate) return Status::Ok();
  // Arrival order, so the last occurrence of a key wins; and the stream
  // sequence of the row's message, when it has one.
  if (auto err = conn_->TryExec("ALTER TABLE pg_temp." + QuoteIdent(options_.staging_table) +
                                " ADD COLUMN nomnom_seq bigint GENERATED ALWAYS AS IDENTITY,"
                                " ADD COLUMN nomnom_stream_seq bigint")) {
    return ToStatus(*err, "cannot prepare the staging table");
  }
  return Status::Ok();
}

const RowOrigin& CopySink::Origin(size_t row) const {
  const auto it = std::upper_bound(part_start_.begin(), part_start_.end(), row) - 1;
  const size_t p = static_cast<size_t>(it - part_start_.begin());
  return (*parts_)[p]->origins[row - *it];
}

Status CopySink::EnsureVersionTable() {
  // One transaction under an advisory lock, so that concurrent workers do not
  // race on CREATE TABLE; outside the batch's transaction, so the table stays
  // whatever becomes of the batch.
  const std::string keys = KeyColumnList(entity_);
  auto fail = [&](const PgError& err) {
    if (!err.connection_lost) conn_->TryExec("ROLLBACK");
    return ToStatus(err, "cannot create the version table " + version_table_);
  };
  if (auto err = conn_->TryExec("BEGIN; SELECT pg_advisory_xact_lock(7346653412)")) return fail(*err);
  PgRows exists;
  if (auto err = conn_->TryExecParams("SELECT to_regclass($1) IS NOT NULL", {version_table_}, &exists)) {
    return fail(*err);
  }
  if (exists.rows.at(0).at(0).value_or("f") != "t") {
    if (auto err = conn_->TryExec("CREATE TABLE " + version_table_ + " AS SELECT " + keys +
                                  ", NULL::bigint AS nomnom_stream_seq FROM " + entity_.QualifiedTable() +
                                  " WITH NO DATA; ALTER TABLE " + version_table_ + " ADD PRIMARY KEY (" + keys +
                                  "), ALTER COLUMN nomnom_stream_seq SET NOT NULL")) {
      return fail(*err);
    }
  }
  if (auto err = conn_->TryExec("COMMIT")) return fail(*err);
  version_table_ready_ = true;
  return Status::Ok();
}

void CopySink::BuildSequencedTuples(size_t total) {
  seq_tuples_.clear();
  seq_offsets_.clear();
  seq_offsets_.reserve(total + 1);
  for (const EncodedPart* part : *parts_) {
    for (size_t r = 0; r < part->rows(); ++r) {
      const size_t from = part->offsets[r];
      const size_t to = r + 1 < part->rows() ? part->offsets[r + 1] : part->tuples.size();
      const auto* t = reinterpret_cast<const unsigned char*>(part->tuples.data() + from);
      seq_offsets_.push_back(seq_tuples_.size());
      // int16 field count, one more; the fields; then the int8 sequence.
      seq_tuples_.PutI16(static_cast<int16_t>(((t[0] << 8) | t[1]) + 1));
      seq_tuples_.Append(part->tuples.data() + from + 2, to - from - 2);
      seq_tuples_.PutI32(8);
      seq_tuples_.PutU64(part->origins[r].stream_seq);
    }
  }
  seq_offsets_.push_back(seq_tuples_.size());
}

void CopySink::Slices(size_t lo, size_t hi, std::vector<std::string_view>* out) const {
  out->clear();
  out->push_back(CopyHeader().view());
  if (sequenced_) {
    out->emplace_back(seq_tuples_.data() + seq_offsets_[lo], seq_offsets_[hi] - seq_offsets_[lo]);
    out->push_back(CopyTrailer().view());
    return;
  }
  for (size_t p = 0; p < parts_->size() && lo < hi; ++p) {
    const EncodedPart& part = *(*parts_)[p];
    const size_t begin = part_start_[p];
    const size_t end = begin + part.rows();
    if (end <= lo || part.rows() == 0) continue;
    if (begin >= hi) break;
    const size_t a = std::max(lo, begin) - begin;
    const size_t b = std::min(hi, end) - begin;
    const size_t from = part.offsets[a];
    const size_t to = b < part.rows() ? part.offsets[b] : part.tuples.size();
    out->emplace_back(part.tuples.data() + from, to - from);
  }
  out->push_back(CopyTrailer().view());
}

std::optional<PgError> CopySink::TryLoad(size_t lo, size_t hi, bool whole_batch, BatchResult* result, size_t* bad_row,
                                         const char* enclosing_savepoint) {
  *bad_row = SIZE_MAX;
  Slices(lo, hi, &slices_);
  const uint64_t rows = hi - lo;
  uint64_t copied = 0;
  last_direct_ = false;
  if (mode_ != ConflictMode::kError && whole_batch && optimistic_ && allow_direct_ && !sequenced_) {
    // Optimistic path: while no key of this load has conflicted yet, COPY the
    // batch straight into the target. If no row conflicts, the outcome is the
    // merge's (every row inserted) at the cost of a plain COPY. A unique
    // violation (an existing key, or one repeated in the batch) rolls it back
    // and switches this connection to the staging merge for good; any other
    // error rolls it back and lets the staging path isolate the bad rows.
    // The caller's savepoint, when it has one right before this call, undoes
    // a failed attempt; otherwise one of its own (a nested subtransaction per
    // batch costs the server CPU: bench/README.md §2).
    const bool own_savepoint = enclosing_savepoint == nullptr;
    if (own_savepoint) {
      if (auto err = conn_->TryExec("SAVEPOINT nomnom_direct")) return err;
    }
    auto err = conn_->CopyIn(direct_copy_sql_, slices_, &copied);
    if (!err) {
      if (own_savepoint) {
        if (auto e = conn_->TryExec("RELEASE SAVEPOINT nomnom_direct")) return e;
      }
      result->inserted += copied;
      last_direct_ = true;
      return std::nullopt;
    }
    if (err->IsInfrastructure()) return err;
    if (auto e = conn_->TryExec(
            own_savepoint ? std::string("ROLLBACK TO SAVEPOINT nomnom_direct; RELEASE SAVEPOINT nomnom_direct")
                          : std::string("ROLLBACK TO SAVEPOINT ") + enclosing_savepoint)) {
      return e;
    }
    if (err->sqlstate == "23505") optimistic_ = false;
    copied = 0;
  }
  if (auto err = conn_->CopyIn(sequenced_ ? seq_copy_sql_ : copy_sql_, slices_, &copied)) {
    const size_t line = CopyLineFromContext(err->context);
    if (line >= 1 && line <= rows) *bad_row = lo + line - 1;
    return err;
  }
  if (mode_ == ConflictMode::kError) {
    result->inserted += copied;
    return std::nullopt;
  }
  uint64_t superseded = 0;  // rows older than their key's applied version
  if (sequenced_) {
    PgRows dropped;
    if (auto err = conn_->TryExec(parent_guard_sql_.empty() ? version_guard_sql_ : parent_guard_sql_, &dropped)) {
      return err;
    }
    superseded = std::strtoull(dropped.command_tuples.c_str(), nullptr, 10);
  }
  PgRows merged;
  const std::string& before_merge =
      roots_sequenced_ && !before_merge_seq_sql_.empty() ? before_merge_seq_sql_ : before_merge_sql_;
  if (!before_merge.empty()) {
    PgRows deleted;
    if (auto err = conn_->TryExec(before_merge, &deleted)) return err;
    result->deleted += std::strtoull(deleted.command_tuples.c_str(), nullptr, 10);
  }
  if (mode_ == ConflictMode::kUpdate) {
    if (auto err = MergeUpdate(&merged)) return err;
  } else if (auto err = conn_->TryExec(merge_sql_, &merged)) {
    return err;
  }
  if (!whole_batch) {
    // Inside an isolation pass the staging table must be emptied for the next
    // range; for a whole batch ON COMMIT DELETE ROWS does it.
    if (auto err = conn_->TryExec("TRUNCATE pg_temp." + QuoteIdent(options_.staging_table))) return err;
  }
  if (mode_ == ConflictMode::kNothing) {
    const uint64_t inserted = std::strtoull(
        merge_count_in_row_ ? merged.rows.at(0).at(0).value_or("0").c_str() : merged.command_tuples.c_str(), nullptr,
        10);
    result->inserted += inserted;
    result->skipped += rows - inserted;
  } else {
    const uint64_t inserted = std::strtoull(merged.rows.at(0).at(0).value_or("0").c_str(), nullptr, 10);
    result->inserted += inserted;
    result->updated += rows - superseded - inserted;
    result->skipped += superseded;
  }
  return std::nullopt;
}

std::optional<PgError> CopySink::MergeUpdate(PgRows* merged) {
  // ON CONFLICT DO UPDATE cannot touch one row twice in a statement, so a
  // batch holding a key more than once fails the one-pass merge (SQLSTATE
  // 21000). Then apply the k-th occurrence of every key in pass k: each row
  // is checked by PostgreSQL and applied in input order, as row by row, and
  // the last occurrence wins.
  if (auto err = conn_->TryExec("SAVEPOINT nomnom_merge")) return err;
  auto err = conn_->TryExec(merge_sql_, merged);
  if (!err) return conn_->TryExec("RELEASE SAVEPOINT nomnom_merge");
  if (err->sqlstate != "21000") return err;
  if (auto e = conn_->TryExec("ROLLBACK TO SAVEPOINT nomnom_merge; RELEASE SAVEPOINT nomnom_merge")) return e;
  PgRows max_dup;
  if (auto e = conn_->TryExec(max_dup_sql_, &max_dup)) return e;
  const uint64_t passes = std::strtoull(max_dup.rows.at(0).at(0).value_or("0").c_str(), nullptr, 10);
  uint64_t inserted = 0, total = 0;
  for (uint64_t k = 1; k <= passes; ++k) {
    PgRows pass;
    if (auto e = conn_->TryExecParams(merge_pass_sql_, {std::to_string(k)}, &pass)) return e;
    inserted += std::strtoull(pass.rows.at(0).at(0).value_or("0").c_str(), nullptr, 10);
    total += std::strtoull(pass.rows.at(0).at(1).value_or("0").c_str(), nullptr, 10);
  }
  merged->rows = {{std::to_string(inserted), std::to_string(total)}};
  return std::nullopt;
}

std::optional<PgError> CopySink::LoadRange(size_t lo, size_t hi, bool whole_batch, BatchResult* result) {
  if (lo >= hi) return std::nullopt;
  if (auto err = conn_->TryExec("SAVEPOINT nomnom_range")) return err;
  size_t bad_row = SIZE_MAX;
  BatchResult attempt;
  auto err = TryLoad(lo, hi, whole_batch, &attempt, &bad_row, "nomnom_range");
  if (!err) {
    if (auto e = conn_->TryExec("RELEASE SAVEPOINT nomnom_range")) return e;
    result->inserted += attempt.inserted;
    result->updated += attempt.updated;
    result->skipped += attempt.skipped;
    result->deleted += attempt.deleted;
    return std::nullopt;
  }
  if (!err->IsRowLevel()) return err;
  if (auto e = conn_->TryExec("ROLLBACK TO SAVEPOINT nomnom_range; RELEASE SAVEPOINT nomnom_range")) return e;
  if (hi - lo == 1) {
    rejected_.push_back(
        RejectedRow{&Origin(lo), "rejected by PostgreSQL: " + err->message + " (SQLSTATE " + err->sqlstate + ")"});
    return std::nullopt;
  }
  if (bad_row != SIZE_MAX) {
    // PostgreSQL named the row: load what precedes it, isolate it, and bisect
    // the rest (it may hold more bad rows).
    if (auto e = LoadRange(lo, bad_row, false, result)) return e;
    if (auto e = LoadRange(bad_row, bad_row + 1, false, result)) return e;
    lo = bad_row + 1;
    if (lo >= hi) return std::nullopt;
  }
  const size_t mid = lo + (hi - lo) / 2;
  if (auto e = LoadRange(lo, mid, false, result)) return e;
  return LoadRange(mid, hi, false, result);
}

Result<BatchResult> CopySink::Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject,
                                    const BeforeCommitFn& before_commit) {
  parts_ = &parts;
  part_start_.clear();
  size_t total = 0;
  sequenced_ = false;
  for (const EncodedPart* p : parts) {
    part_start_.push_back(total);
    total += p->rows();
    if (mode_ == ConflictMode::kUpdate) {
      for (const RowOrigin& o : p->origins) sequenced_ = sequenced_ || o.stream_seq != 0;
    }
  }
  if (sequenced_) {
    if (!version_table_ready_) {
      if (Status s = EnsureVersionTable(); !s.ok()) {
        parts_ = nullptr;
        return s;
      }
    }
    BuildSequencedTuples(total);
  }
  uint64_t retries = 0;
  for (int attempt = 0;; ++attempt) {
    BatchResult result;
    rejected_.clear();
    std::optional<PgError> err = conn_->TryExec("BEGIN");
    if (!err) err = LoadRange(0, total, true, &result);
    if (!err && before_commit) err = before_commit(*conn_, rejected_);
    if (!err) err = conn_->TryExec("COMMIT");
    if (!err) {
      parts_ = nullptr;
      result.rejected = rejected_.size();
      result.retries = retries;
      for (const RejectedRow& r : rejected_) on_reject(*r.origin, r.error);
      rejected_.clear();
      return result;
    }
    if (!err->connection_lost) conn_->TryExec("ROLLBACK");
    const bool can_retry =
        err->IsTransient() && attempt < options_.max_transient_retries && (!err->connection_lost || options_.reconnect);
    if (!can_retry) {
      parts_ = nullptr;
      return ToStatus(*err, "loading into " + entity_.QualifiedTable() + " over " + conn_->Endpoint());
    }
    ++retries;
    const int64_t backoff = std::min<int64_t>(options_.max_backoff_ms, int64_t{50} << std::min(attempt, 10));
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    if (err->connection_lost) {
      // Keep trying to reconnect within the same retry budget.
      Status s = Reconnect();
      while (!s.ok() && attempt < options_.max_transient_retries) {
        ++attempt;
        std::this_thread::sleep_for(std::chrono::milliseconds(
            std::min<int64_t>(options_.max_backoff_ms, int64_t{50} << std::min(attempt, 10))));
        s = Reconnect();
      }
      if (!s.ok()) {
        parts_ = nullptr;
        return s;
      }
    }
  }
}

}  // namespace nomnom
