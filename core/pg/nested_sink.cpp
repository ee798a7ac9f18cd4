#include "core/pg/nested_sink.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <thread>
#include <unordered_map>

#include "core/format/pg_binary.h"

namespace nomnom {

namespace {

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The root field that field `f` of a derived entity holds a copy of
// (following copy_field chains through the load's entities; entities[0] is
// the root), or "" when it holds none.
std::string RootFieldOf(const std::vector<const Entity*>& entities, const Field& f, size_t depth = 0) {
  if (f.computed.transform != Transform::kCopyField || depth > entities.size()) return "";
  for (size_t s = 0; s < entities.size(); ++s) {
    if (!SameName(entities[s]->name, f.computed.source_entity)) continue;
    if (s == 0) return f.computed.source_field;
    const int idx = entities[s]->FieldIndex(f.computed.source_field);
    if (idx < 0) return "";
    return RootFieldOf(entities, entities[s]->fields[static_cast<size_t>(idx)], depth + 1);
  }
  // An entity above the loaded root (a derived entity loaded as the root):
  // the root's own copy of the same field.
  for (const Field& r : entities[0]->fields) {
    if (r.computed.transform == Transform::kCopyField && SameName(r.computed.source_entity, f.computed.source_entity) &&
        r.computed.source_field == f.computed.source_field) {
      return r.name;
    }
  }
  return "";
}

// The values of the key fields of a binary COPY tuple, as bytes (each with
// its length word), or "" when the tuple is malformed.
std::string TupleKey(const char* t, size_t size, const std::vector<size_t>& key_fields) {
  std::string key;
  size_t at = 2;
  size_t field = 0;
  size_t next = 0;  // index into key_fields (sorted copy)
  std::vector<size_t> want(key_fields);
  std::sort(want.begin(), want.end());
  while (next < want.size() && at + 4 <= size) {
    const auto* u = reinterpret_cast<const unsigned char*>(t + at);
    const int32_t len =
        static_cast<int32_t>((uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3]);
    const size_t bytes = len < 0 ? 0 : static_cast<size_t>(len);
    if (field == want[next]) {
      key.append(t + at, 4 + bytes);
      ++next;
    }
    at += 4 + bytes;
    ++field;
  }
  return key;
}

}  // namespace

Result<std::unique_ptr<NestedSink>> NestedSink::Create(std::unique_ptr<PgConnection> conn, const Entity& root,
                                                       const std::vector<const Entity*>& derived, ConflictMode mode,
                                                       CopySinkOptions options) {
  std::unique_ptr<NestedSink> sink(new NestedSink());
  sink->conn_ = std::move(conn);
  sink->mode_ = mode;
  sink->options_ = options;
  sink->entities_.push_back(&root);
  for (const Entity* d : derived) sink->entities_.push_back(d);
  // The root's key columns, in table order (as TupleKey reads them).
  sink->root_keys_ = root.key_fields;
  std::sort(sink->root_keys_.begin(), sink->root_keys_.end());
  std::vector<std::string> root_key_names;
  for (size_t k : sink->root_keys_) root_key_names.push_back(root.fields[k].name);
  std::vector<CopySinkOptions> table_options;
  for (size_t t = 0; t < sink->entities_.size(); ++t) {
    const Entity& e = *sink->entities_[t];
    CopySinkOptions o = options;
    o.parent_columns.clear();
    o.staging_table = t == 0 ? "nomnom_stage" : "nomnom_stage_" + std::to_string(t);
    if (t > 0) {
      // This table's columns holding the root's key, when it has them all.
      std::vector<std::string> root_columns;
      for (const std::string& k : root_key_names) {
        for (const Field& f : e.fields) {
          if (RootFieldOf(sink->entities_, f) == k) {
            root_columns.push_back(f.name);
            break;
          }
        }
      }
      if (!root_key_names.empty() && root_columns.size() == root_key_names.size() && mode != ConflictMode::kError) {
        // Rules by the root (any depth); the root's later message owns its
        // subtree (kUpdate through workers).
        o.roots_table = "pg_temp." + QuoteIdent(kRootsTable);
        o.parent_columns = root_columns;
        o.parent_key_columns = root_key_names;
        o.parent_version_table = VersionTableFor(root);
        sink->roots_ = true;
      } else {
        // Rules by the columns copied from the parent.
        for (const Field& f : e.fields) {
          if (f.computed.transform == Transform::kCopyField) o.parent_columns.push_back(f.name);
        }
      }
    }
    table_options.push_back(std::move(o));
  }
  // The roots table exists before the sinks, whose statements name it.
  if (Status s = sink->PrepareRoots(); !s.ok()) return s;
  if (sink->roots_ && mode == ConflictMode::kNothing) {
    table_options[0].mark_existing_roots_table = "pg_temp." + QuoteIdent(kRootsTable);
  }
  for (size_t t = 0; t < sink->entities_.size(); ++t) {
    auto s = CopySink::CreateShared(sink->conn_.get(), *sink->entities_[t], mode, table_options[t]);
    if (!s.ok()) return s.status();
    sink->sinks_.push_back(std::move(s).value());
  }
  return sink;
}

Status NestedSink::PrepareRoots() {
  if (!roots_) return Status::Ok();
  const Entity& root = *entities_[0];
  std::string keys;
  for (size_t k : root_keys_) keys += (keys.empty() ? "" : ", ") + QuoteIdent(root.fields[k].name);
  const std::string table = "pg_temp." + QuoteIdent(kRootsTable);
  if (auto err = conn_->TryExec("CREATE TEMP TABLE " + QuoteIdent(kRootsTable) + " ON COMMIT DELETE ROWS AS SELECT " +
                                keys + " FROM " + root.QualifiedTable() + " WITH NO DATA; ALTER TABLE " + table +
                                " ADD COLUMN nomnom_stream_seq bigint,"
                                " ADD COLUMN nomnom_existed boolean NOT NULL DEFAULT false")) {
    return ToStatus(*err, "cannot create the staging table of root keys");
  }
  roots_copy_sql_ = "COPY " + table + " (" + keys + ", nomnom_stream_seq) FROM STDIN (FORMAT binary)";
  return Status::Ok();
}

size_t NestedSink::ChildRow(size_t t, size_t row) const {
  const size_t total = part_start_.back();
  if (row >= total) return table_part_start_[t - 1].back();
  const auto it = std::upper_bound(part_start_.begin(), part_start_.end(), row) - 1;
  const size_t p = static_cast<size_t>(it - part_start_.begin());
  return table_part_start_[t - 1][p] + tables_[t - 1][p]->by_parent[row - *it];
}

const RowOrigin& NestedSink::Origin(size_t row) const {
  const auto it = std::upper_bound(part_start_.begin(), part_start_.end(), row) - 1;
  const size_t p = static_cast<size_t>(it - part_start_.begin());
  return (*parts_)[p]->origins[row - *it];
}

std::optional<PgError> NestedSink::LoadRoots(size_t lo, size_t hi, bool whole_batch) {
  // At the start of the transaction the table is empty (ON COMMIT DELETE ROWS).
  if (!whole_batch) {
    if (auto err = conn_->TryExec("TRUNCATE pg_temp." + QuoteIdent(kRootsTable))) return err;
  }
  roots_tuples_.clear();
  pg::AppendCopyHeader(roots_tuples_);
  const Entity& root = *entities_[0];
  for (size_t row = lo; row < hi; ++row) {
    const auto it = std::upper_bound(part_start_.begin(), part_start_.end(), row) - 1;
    const size_t p = static_cast<size_t>(it - part_start_.begin());
    const EncodedPart& part = *(*parts_)[p];
    const size_t r = row - *it;
    const size_t from = part.offsets[r];
    const size_t to = r + 1 < part.rows() ? part.offsets[r + 1] : part.tuples.size();
    roots_tuples_.PutI16(static_cast<int16_t>(root_keys_.size() + 1));
    const std::string key = TupleKey(part.tuples.data() + from, to - from, root.key_fields);
    roots_tuples_.Append(key.data(), key.size());
    if (sequenced_) {
      roots_tuples_.PutI32(8);
      roots_tuples_.PutU64(part.origins[r].stream_seq);
    } else {
      roots_tuples_.PutI32(-1);
    }
  }
  pg::AppendCopyTrailer(roots_tuples_);
  uint64_t copied = 0;
  // kNothing: the root's merge marks the roots it did not insert (nomnom_existed).
  return conn_->CopyIn(roots_copy_sql_, {roots_tuples_.view()}, &copied);
}

std::optional<PgError> NestedSink::LoadLines(size_t lo, size_t hi, bool whole_batch,
                                             std::vector<BatchResult::Table>* counts) {
  if (lo >= hi) return std::nullopt;
  if (auto err = conn_->TryExec("SAVEPOINT nomnom_lines")) return err;
  if (roots_) {
    if (auto err = LoadRoots(lo, hi, whole_batch)) return err;
  }
  std::vector<BatchResult> attempt(sinks_.size());
  std::optional<PgError> err;
  size_t bad_line = SIZE_MAX;
  bool parents_direct = false;
  std::string table;
  for (size_t t = 0; t < sinks_.size() && !err; ++t) {
    const size_t a = t == 0 ? lo : ChildRow(t, lo);
    const size_t b = t == 0 ? hi : ChildRow(t, hi);
    if (a >= b) continue;
    size_t bad_row = SIZE_MAX;
    err = sinks_[t]->LoadRows(a, b, whole_batch, t == 0 || parents_direct, &attempt[t], &bad_row);
    if (t == 0) parents_direct = sinks_[0]->last_load_direct();
    if (err) {
      table = entities_[t]->QualifiedTable();
      if (bad_row != SIZE_MAX) {
        if (t == 0) {
          bad_line = bad_row;
        } else {
          // The line owning child row bad_row: the last line whose first child row is <= it.
          size_t l = lo, h = hi;
          while (h - l > 1) {
            const size_t m = l + (h - l) / 2;
            if (ChildRow(t, m) <= bad_row) {
              l = m;
            } else {
              h = m;
            }
          }
          bad_line = l;
        }
      }
    }
  }
  if (!err) {
    if (auto e = conn_->TryExec("RELEASE SAVEPOINT nomnom_lines")) return e;
    for (size_t t = 0; t < sinks_.size(); ++t) {
      (*counts)[t].inserted += attempt[t].inserted;
      (*counts)[t].updated += attempt[t].updated;
      (*counts)[t].skipped += attempt[t].skipped;
      (*counts)[t].deleted += attempt[t].deleted;
    }
    return std::nullopt;
  }
  if (!err->IsRowLevel()) return err;
  if (auto e = conn_->TryExec("ROLLBACK TO SAVEPOINT nomnom_lines; RELEASE SAVEPOINT nomnom_lines")) return e;
  if (hi - lo == 1) {
    rejected_.emplace_back(
        lo, "rejected by PostgreSQL (table " + table + "): " + err->message + " (SQLSTATE " + err->sqlstate + ")");
    return std::nullopt;
  }
  if (bad_line != SIZE_MAX && bad_line >= lo && bad_line < hi) {
    if (auto e = LoadLines(lo, bad_line, false, counts)) return e;
    if (auto e = LoadLines(bad_line, bad_line + 1, false, counts)) return e;
    lo = bad_line + 1;
    if (lo >= hi) return std::nullopt;
  }
  const size_t mid = lo + (hi - lo) / 2;
  if (auto e = LoadLines(lo, mid, false, counts)) return e;
  return LoadLines(mid, hi, false, counts);
}

void NestedSink::DropShadowedChildren(size_t total) {
  filtered_.clear();
  if (entities_[0]->key_fields.empty() || total < 2) return;
  // Root row -> its key; the winning row of each key.
  std::vector<std::string> keys(total);
  std::unordered_map<std::string, size_t> winner;
  bool duplicates = false;
  for (size_t p = 0, row = 0; p < parts_->size(); ++p) {
    const EncodedPart& part = *(*parts_)[p];
    for (size_t r = 0; r < part.rows(); ++r, ++row) {
      const size_t from = part.offsets[r];
      const size_t to = r + 1 < part.rows() ? part.offsets[r + 1] : part.tuples.size();
      keys[row] = TupleKey(part.tuples.data() + from, to - from, entities_[0]->key_fields);
      auto [it, fresh] = winner.emplace(keys[row], row);
      if (!fresh) {
        duplicates = true;
        if (mode_ == ConflictMode::kUpdate) it->second = row;
      }
    }
  }
  if (!duplicates) return;
  for (size_t d = 0; d + 1 < sinks_.size(); ++d) {
    size_t child_total = 0;
    for (size_t p = 0, row = 0; p < parts_->size(); ++p) {
      const EncodedPart& part = *(*parts_)[p];
      const EncodedPart& from = *tables_[d][p];
      auto kept = std::make_unique<EncodedPart>();
      kept->seq = from.seq;
      kept->chunk = from.chunk;
      for (size_t r = 0; r < part.rows(); ++r, ++row) {
        kept->by_parent.push_back(static_cast<uint32_t>(kept->rows()));
        if (winner[keys[row]] != row) continue;
        for (size_t c = from.by_parent[r]; c < from.by_parent[r + 1]; ++c) {
          const size_t a = from.offsets[c];
          const size_t b = c + 1 < from.rows() ? from.offsets[c + 1] : from.tuples.size();
          kept->offsets.push_back(static_cast<uint32_t>(kept->tuples.size()));
          kept->tuples.Append(from.tuples.data() + a, b - a);
          kept->origins.push_back(from.origins[c]);
        }
      }
      kept->by_parent.push_back(static_cast<uint32_t>(kept->rows()));
      table_part_start_[d][p] = child_total;
      child_total += kept->rows();
      tables_[d][p] = kept.get();
      filtered_.push_back(std::move(kept));
    }
    table_part_start_[d].back() = child_total;
  }
}

Result<BatchResult> NestedSink::Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject,
                                      const BeforeCommitFn& before_commit) {
  parts_ = &parts;
  part_start_.clear();
  tables_.assign(sinks_.size() - 1, {});
  table_part_start_.assign(sinks_.size() - 1, {});
  size_t total = 0;
  std::vector<size_t> child_total(sinks_.size() - 1, 0);
  for (const EncodedPart* p : parts) {
    part_start_.push_back(total);
    total += p->rows();
    for (size_t d = 0; d + 1 < sinks_.size(); ++d) {
      const EncodedPart* c = p->children.at(d).get();
      tables_[d].push_back(c);
      table_part_start_[d].push_back(child_total[d]);
      child_total[d] += c->rows();
    }
  }
  part_start_.push_back(total);
  for (size_t d = 0; d + 1 < sinks_.size(); ++d) table_part_start_[d].push_back(child_total[d]);
  sequenced_ = false;
  if (mode_ == ConflictMode::kUpdate) {
    for (const EncodedPart* p : parts) {
      for (const RowOrigin& o : p->origins) sequenced_ = sequenced_ || o.stream_seq != 0;
    }
  }
  for (size_t t = 1; t < sinks_.size(); ++t) sinks_[t]->SetRootsSequenced(sequenced_);
  if (mode_ != ConflictMode::kError) DropShadowedChildren(total);
  Status begun = sinks_[0]->BeginBatch(parts);
  for (size_t d = 0; begun.ok() && d + 1 < sinks_.size(); ++d) begun = sinks_[d + 1]->BeginBatch(tables_[d]);
  auto end_batch = [&] {
    for (auto& s : sinks_) s->EndBatch();
    parts_ = nullptr;
    filtered_.clear();
  };
  if (!begun.ok()) {
    end_batch();
    return begun;
  }
  uint64_t retries = 0;
  for (int attempt = 0;; ++attempt) {
    std::vector<BatchResult::Table> counts(sinks_.size());
    rejected_.clear();
    std::optional<PgError> err = conn_->TryExec("BEGIN");
    if (!err) err = LoadLines(0, total, true, &counts);
    if (!err && before_commit) {
      std::vector<RejectedRow> rejected;
      for (const auto& [row, why] : rejected_) rejected.push_back(RejectedRow{&Origin(row), why});
      err = before_commit(*conn_, rejected);
    }
    if (!err) err = conn_->TryExec("COMMIT");
    if (!err) {
      BatchResult result;
      result.inserted = counts[0].inserted;
      result.updated = counts[0].updated;
      result.skipped = counts[0].skipped;
      result.rejected = rejected_.size();
      result.retries = retries;
      result.tables = std::move(counts);
      for (const auto& [row, why] : rejected_) on_reject(Origin(row), why);
      rejected_.clear();
      end_batch();
      return result;
    }
    if (!err->connection_lost) conn_->TryExec("ROLLBACK");
    const bool can_retry =
        err->IsTransient() && attempt < options_.max_transient_retries && (!err->connection_lost || options_.reconnect);
    if (!can_retry) {
      end_batch();
      return ToStatus(
          *err, "loading into " + entities_[0]->QualifiedTable() + " and its derived tables over " + conn_->Endpoint());
    }
    ++retries;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::min<int64_t>(options_.max_backoff_ms, int64_t{50} << std::min(attempt, 10))));
    if (err->connection_lost) {
      Status s = conn_->Reconnect();
      for (size_t t = 0; s.ok() && t < sinks_.size(); ++t) s = sinks_[t]->PrepareSession();
      if (s.ok()) s = PrepareRoots();
      if (!s.ok()) {
        end_batch();
        return s;
      }
    }
  }
}

}  // namespace nomnom
