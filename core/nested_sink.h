// NestedSink: loads a nested batch (root rows with the rows of their derived
// entities, EncodedPart::children) over one connection in one transaction, so
// an input line's rows in every table commit together or not at all.
// Parallelism is across batches (one NestedSink per connection).
//
// One CopySink per table shares the connection (each with its own staging
// table); the root's rows load first, then each derived table's. Conflict
// modes apply per table as in CopySink; for a derived table:
//  - kNothing: no rows for a parent that already has rows there (an existing
//    parent keeps its children as they are);
//  - kUpdate: rows of a staged parent that the batch does not have are
//    deleted first (a re-sent parent replaces its children).
// The optimistic COPY into a derived table is tried only when the root's
// rows of the same range went in by the optimistic COPY (all parents new).
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

#include "core/copy_sink.h"
#include "core/row_sink.h"

namespace nomnom {

class NestedSink : public RowSink {
 public:
  // options: retries, reconnect and backoff as CopySink's (the other fields
  // are set per table).
  static Result<std::unique_ptr<NestedSink>> Create(std::unique_ptr<PgConnection> conn, const Entity& root,
                                                    const std::vector<const Entity*>& derived, ConflictMode mode,
                                                    CopySinkOptions options = {});

  // BatchResult's counts are the root table's; BatchResult::tables has every
  // table's (root first). `rejected` counts rejected lines. before_commit, as
  // in CopySink::Write, sees the rejected lines (their root rows' origins).
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject) override {
    return Write(parts, on_reject, nullptr);
  }
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject,
                            const BeforeCommitFn& before_commit);

 private:
  NestedSink() = default;
  // Global row index in table t of the first row owned by root row `row`
  // (row == root rows: the end).
  size_t ChildRow(size_t t, size_t row) const;
  const RowOrigin& Origin(size_t row) const;
  std::optional<PgError> LoadLines(size_t lo, size_t hi, bool whole_batch, std::vector<BatchResult::Table>* counts);

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
};

}  // namespace nomnom
