#include "core/copy_sink.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/pg_binary.h"

namespace nomnom {

namespace {

constexpr std::string_view kStagingTable = "nomnom_stage";
constexpr int kMaxTransientRetries = 8;

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

// PostgreSQL reports the failing row of a COPY in the error context as
// "COPY <table>, line <n>[, column ...]"; returns n (1-based) or 0.
size_t CopyLineFromContext(std::string_view context) {
  const size_t at = context.find(", line ");
  if (context.rfind("COPY ", 0) != 0 || at == std::string_view::npos) return 0;
  size_t n = 0;
  for (size_t i = at + 7; i < context.size() && context[i] >= '0' && context[i] <= '9'; ++i) {
    n = n * 10 + static_cast<size_t>(context[i] - '0');
  }
  return n;
}

}  // namespace

CopySink::CopySink(std::unique_ptr<PgConnection> conn, const Entity& entity, ConflictMode mode)
    : conn_(std::move(conn)), entity_(entity), mode_(mode) {}

Result<std::unique_ptr<CopySink>> CopySink::Create(std::unique_ptr<PgConnection> conn, const Entity& entity,
                                                   ConflictMode mode) {
  std::unique_ptr<CopySink> sink(new CopySink(std::move(conn), entity, mode));
  if (Status s = sink->Prepare(); !s.ok()) return s;
  return sink;
}

Status CopySink::Prepare() {
  const std::string cols = ColumnList(entity_);
  const std::string target = entity_.QualifiedTable();
  if (mode_ == ConflictMode::kError) {
    copy_sql_ = "COPY " + target + " (" + cols + ") FROM STDIN (FORMAT binary)";
    return Status::Ok();
  }
  const std::string stage = "pg_temp." + QuoteIdent(kStagingTable);
  // The staging table has the target's column types but none of its
  // constraints; ON COMMIT DELETE ROWS empties it after every batch.
  std::string create = "CREATE TEMP TABLE " + QuoteIdent(kStagingTable) + " ON COMMIT DELETE ROWS AS SELECT " + cols +
                       " FROM " + target + " WITH NO DATA";
  if (auto err = conn_->TryExec(create)) return ToStatus(*err, "cannot create the staging table");
  if (mode_ == ConflictMode::kUpdate) {
    // Arrival order, so the last occurrence of a key wins.
    if (auto err = conn_->TryExec("ALTER TABLE " + stage + " ADD COLUMN nomnom_seq bigint GENERATED ALWAYS AS IDENTITY")) {
      return ToStatus(*err, "cannot prepare the staging table");
    }
  }
  copy_sql_ = "COPY " + stage + " (" + cols + ") FROM STDIN (FORMAT binary)";
  const std::string keys = KeyColumnList(entity_);
  if (mode_ == ConflictMode::kNothing) {
    merge_sql_ = "INSERT INTO " + target + " (" + cols + ") SELECT " + cols + " FROM " + stage + " ON CONFLICT (" + keys +
                 ") DO NOTHING";
  } else {
    std::string set;
    for (const Field& f : entity_.fields) {
      if (!set.empty()) set += ", ";
      set += QuoteIdent(f.name) + " = EXCLUDED." + QuoteIdent(f.name);
    }
    merge_sql_ = "WITH s AS (SELECT DISTINCT ON (" + keys + ") " + cols + " FROM " + stage + " ORDER BY " + keys +
                 ", nomnom_seq DESC), ins AS (INSERT INTO " + target + " (" + cols + ") SELECT " + cols +
                 " FROM s ON CONFLICT (" + keys + ") DO UPDATE SET " + set +
                 " RETURNING (xmax = 0) AS inserted) SELECT count(*) FILTER (WHERE inserted), count(*) FROM ins";
  }
  return Status::Ok();
}

const RowOrigin& CopySink::Origin(size_t row) const {
  const auto it = std::upper_bound(part_start_.begin(), part_start_.end(), row) - 1;
  const size_t p = static_cast<size_t>(it - part_start_.begin());
  return (*parts_)[p]->origins[row - *it];
}

void CopySink::Slices(size_t lo, size_t hi, std::vector<std::string_view>* out) const {
  out->clear();
  out->push_back(CopyHeader().view());
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

std::optional<PgError> CopySink::TryLoad(size_t lo, size_t hi, BatchResult* result, size_t* bad_row) {
  *bad_row = SIZE_MAX;
  Slices(lo, hi, &slices_);
  const uint64_t rows = hi - lo;
  auto note_bad_row = [&](const PgError& e) {
    const size_t line = CopyLineFromContext(e.context);
    if (line >= 1 && line <= rows) *bad_row = lo + line - 1;
  };
  if (mode_ == ConflictMode::kError) {
    uint64_t copied = 0;
    if (auto err = conn_->CopyIn(copy_sql_, slices_, &copied)) {
      note_bad_row(*err);
      return err;
    }
    result->inserted += copied;
    return std::nullopt;
  }
  if (auto err = conn_->TryExec("BEGIN")) return err;
  auto fail = [&](PgError e) {
    if (!e.connection_lost) conn_->TryExec("ROLLBACK");
    return std::optional<PgError>(std::move(e));
  };
  if (auto err = conn_->CopyIn(copy_sql_, slices_)) {
    note_bad_row(*err);
    return fail(*err);
  }
  PgRows merged;
  if (auto err = conn_->TryExec(merge_sql_, &merged)) return fail(*err);
  if (auto err = conn_->TryExec("COMMIT")) return err;
  if (mode_ == ConflictMode::kNothing) {
    const uint64_t inserted = std::strtoull(merged.command_tuples.c_str(), nullptr, 10);
    result->inserted += inserted;
    result->skipped += rows - inserted;
  } else {
    const uint64_t inserted = std::strtoull(merged.rows.at(0).at(0).value_or("0").c_str(), nullptr, 10);
    result->inserted += inserted;
    // Rows superseded by a later one with the same key count as updates, as
    // they would row by row.
    result->updated += rows - inserted;
  }
  return std::nullopt;
}

Status CopySink::LoadRange(size_t lo, size_t hi, BatchResult* result, const RejectFn& on_reject) {
  if (lo >= hi) return Status::Ok();
  int attempt = 0;
  for (;;) {
    size_t bad_row = SIZE_MAX;
    auto err = TryLoad(lo, hi, result, &bad_row);
    if (!err) return Status::Ok();
    if (err->IsRowLevel()) {
      if (hi - lo == 1) {
        on_reject(Origin(lo), "rejected by PostgreSQL: " + err->message + " (SQLSTATE " + err->sqlstate + ")");
        ++result->rejected;
        return Status::Ok();
      }
      if (bad_row != SIZE_MAX) {
        // PostgreSQL named the row: load what precedes it, isolate it, and
        // bisect the rest (it may hold more bad rows).
        if (Status s = LoadRange(lo, bad_row, result, on_reject); !s.ok()) return s;
        if (Status s = LoadRange(bad_row, bad_row + 1, result, on_reject); !s.ok()) return s;
        lo = bad_row + 1;
        if (lo >= hi) return Status::Ok();
        const size_t mid = lo + (hi - lo) / 2;
        if (Status s = LoadRange(lo, mid, result, on_reject); !s.ok()) return s;
        return LoadRange(mid, hi, result, on_reject);
      }
      const size_t mid = lo + (hi - lo) / 2;
      if (Status s = LoadRange(lo, mid, result, on_reject); !s.ok()) return s;
      return LoadRange(mid, hi, result, on_reject);
    }
    if (err->IsTransient() && !err->connection_lost && attempt < kMaxTransientRetries) {
      ++attempt;
      ++result->retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(10 << std::min(attempt, 6)));
      continue;
    }
    return ToStatus(*err, "loading into " + entity_.QualifiedTable() + " over " + conn_->Endpoint());
  }
}

Result<BatchResult> CopySink::Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject) {
  parts_ = &parts;
  part_start_.clear();
  size_t total = 0;
  for (const EncodedPart* p : parts) {
    part_start_.push_back(total);
    total += p->rows();
  }
  BatchResult result;
  Status s = LoadRange(0, total, &result, on_reject);
  parts_ = nullptr;
  if (!s.ok()) return s;
  return result;
}

}  // namespace nomnom
