// NestedSink: loads a nested batch (root rows with the rows of their derived
// entities, EncodedPart::children) over one connection in one transaction, so
// an input line's rows in every table commit together or not at all.
// Parallelism is across batches (one NestedSink per connection).
//
// One CopySink per table shares the connection (each with its own staging
// table); the root's rows load first, then each derived table's, parents
// before children at any depth. Conflict modes apply per table as in
// CopySink. A derived table whose rows carry the root's key (its copy_field
// columns, followed through copies of copies, include every root key field)
// follows rules by the root, so the root's whole subtree moves together:
//  - kNothing: no rows for a root that was in its table before the batch (an
//    existing root keeps its children and grandchildren as they are);
//  - kUpdate: rows of the batch's roots that the batch does not have are
//    deleted first (a re-sent root replaces its whole subtree: children and
//    grandchildren its line no longer has go, also when a list is now empty).
// For that the root keys of the lines being loaded are copied into a session
// table (pg_temp.nomnom_stage_roots) first. A derived table without the
// root's key follows the rules by its copy_field columns (the parent's
// values): kNothing inserts no row for a parent that has rows there already,
// kUpdate deletes the rows of staged parents that the batch does not have.
// The optimistic COPY into a derived table is tried only when the root's
// rows of the same range went in by the optimistic COPY (all roots new).
//
// A root key that occurs more than once in a batch: only the children of the
// occurrence that wins the root table (kUpdate: the last, kNothing: the
// first) are loaded, so the parent's children are exactly that line's.
//
// When PostgreSQL rejects a row of any table, the batch's lines are split
// (under savepoints) until the failing line stands alone; it is rejected
// whole, with PostgreSQL's message naming the table, and every other line
// commits. Infrastructure errors retry the transaction (as CopySink).
//
// Thread-safety: one thread. The entities must outlive it.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "core/pg/copy_sink.h"
#include "core/pg/pg_row_sink.h"

namespace nomnom {

class NestedSink : public PgRowSink {
 public:
  // options: retries, reconnect and backoff as CopySink's (the other fields
  // are set per table).
  static Result<std::unique_ptr<NestedSink>> Create(std::unique_ptr<PgConnection> conn, const Entity& root,
                                                    const std::vector<const Entity*>& derived, ConflictMode mode,
                                                    CopySinkOptions options = {});

  // PgRowSink::Write. BatchResult's counts are the root table's;
  // BatchResult::tables has every table's (root first). `rejected` counts
  // rejected lines. before_commit sees the rejected lines (their root rows'
  // origins).
  using PgRowSink::Write;
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject,
                            const BeforeCommitFn& before_commit) override;

 private:
  NestedSink() = default;
  // Global row index in table t of the first row owned by root row `row`
  // (row == root rows: the end).
  size_t ChildRow(size_t t, size_t row) const;
  const RowOrigin& Origin(size_t row) const;
  std::optional<PgError> LoadLines(size_t lo, size_t hi, bool whole_batch, std::vector<BatchResult::Table>* counts);
  // The roots table (CopySinkOptions::roots_table): created per session, and
  // filled with the root keys of lines [lo, hi) before their rows load.
  Status PrepareRoots();
  std::optional<PgError> LoadRoots(size_t lo, size_t hi, bool whole_batch);

  std::unique_ptr<PgConnection> conn_;
  std::vector<const Entity*> entities_;           // root, then derived
  std::vector<std::unique_ptr<CopySink>> sinks_;  // one per entity
  // The batch being written.
  const std::vector<const EncodedPart*>* parts_ = nullptr;
  std::vector<size_t> part_start_;                        // root rows before each part
  std::vector<std::vector<const EncodedPart*>> tables_;   // per derived table: its parts
  std::vector<std::vector<size_t>> table_part_start_;     // per derived table: its rows before each part
  std::vector<std::pair<size_t, std::string>> rejected_;  // root row, error
  // A batch holding a root key more than once: the child parts with only the
  // rows of the occurrence that wins (kUpdate: the last, kNothing: the first).
  void DropShadowedChildren(size_t total);
  ConflictMode mode_ = ConflictMode::kNothing;
  CopySinkOptions options_;
  std::vector<std::unique_ptr<EncodedPart>> filtered_;
  static constexpr const char* kRootsTable = "nomnom_stage_roots";
  bool roots_ = false;             // some derived table follows rules by the root's key
  std::vector<size_t> root_keys_;  // the root's key fields, in table order
  std::string roots_copy_sql_;
  ByteBuffer roots_tuples_;
  bool sequenced_ = false;  // the batch's rows carry stream sequences (kUpdate)
};

}  // namespace nomnom
