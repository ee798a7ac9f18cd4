// EncodedPartBuilder: fills one EncodedPart (core/format/encoded_rows.h) row
// by row, the one place that keeps a part's invariants. Used by every loop
// that turns lines into parts (the load pipeline's parsers, the ingest
// worker).
//
// What it guarantees about the part, after every call:
//   - offsets.size() == origins.size() == rows(): a row is added with its
//     origin, or not at all (a rejected row leaves no trace);
//   - offsets are increasing starts of tuples in `tuples`;
//   - nested parts (Start with children > 0): children.size() is that number,
//     each child has its own offsets and origins (a child row's origin is its
//     root row's) and, once Finish() has run, by_parent holds rows() + 1
//     entries: root row r owns child rows [by_parent[r], by_parent[r + 1]);
//   - seq and chunk are the ones given to Start (children's too).
//
// Rows are either encoded in place (into tuples() or the Output of
// BindNested, then AddRow) or copied from a scratch buffer (AppendRow,
// AppendNestedRow), e.g. when rows are routed to several parts by key. The
// per-row methods are inline, allocate nothing beyond the part's own growth
// and make no virtual calls: they are the load's hot path.
//
// Ownership and thread-safety: the builder points at a part it does not own
// (the caller keeps it alive until Finish); one builder per thread, reusable
// for any number of parts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/encoded_rows.h"
#include "core/format/nested_encoder.h"

namespace nomnom {

// One nested line's rows, encoded into buffers of their own before they are
// copied to the part of their key (EncodedPartBuilder::AppendNestedRow).
// Not copyable (out() points into it); one per thread.
class NestedRowScratch {
 public:
  explicit NestedRowScratch(size_t children) : child_(children), child_offsets_(children) {
    out_.root = &root_;
    for (size_t d = 0; d < children; ++d) {
      out_.children.push_back(&child_[d]);
      out_.child_offsets.push_back(&child_offsets_[d]);
    }
  }
  NestedRowScratch(const NestedRowScratch&) = delete;
  NestedRowScratch& operator=(const NestedRowScratch&) = delete;

  // Empties every buffer (their room is kept) for the next line.
  void Clear() {
    root_.clear();
    for (size_t d = 0; d < child_.size(); ++d) {
      child_[d].clear();
      child_offsets_[d].clear();
    }
  }
  // Where NestedEncoder::Encode writes the line's rows.
  const NestedEncoder::Output& out() const { return out_; }

  const ByteBuffer& root() const { return root_; }
  const ByteBuffer& child(size_t d) const { return child_[d]; }
  const std::vector<uint32_t>& child_offsets(size_t d) const { return child_offsets_[d]; }

 private:
  ByteBuffer root_;
  std::vector<ByteBuffer> child_;
  std::vector<std::vector<uint32_t>> child_offsets_;
  NestedEncoder::Output out_;
};

class EncodedPartBuilder {
 public:
  // Starts filling *part: empties its rows (tuples, offsets, origins,
  // by_parent; their room is kept), gives it seq and chunk, and `children`
  // child parts (made when it has not that many; emptied likewise). The
  // part must outlive the builder's use of it (until Finish).
  void Start(EncodedPart* part, uint64_t seq, const std::shared_ptr<const Chunk>& chunk, size_t children = 0) {
    part_ = part;
    Reset(part, seq, chunk);
    if (part->children.size() != children) {
      part->children.clear();
      for (size_t d = 0; d < children; ++d) part->children.push_back(std::make_unique<EncodedPart>());
    }
    for (auto& c : part->children) Reset(c.get(), seq, chunk);
  }

  EncodedPart* part() const { return part_; }

  // Reserves room for a chunk of `bytes` input bytes in `rows` lines (flat
  // rows encoded in place), so the part grows once, if at all.
  void Reserve(size_t bytes, size_t rows) {
    part_->tuples.Reserve(bytes + bytes / 4);
    part_->offsets.reserve(rows);
    part_->origins.reserve(rows);
  }

  // In place: where to encode the next row (the root's tuple, nested). Note
  // its size() before encoding: that is the row's start for AddRow.
  ByteBuffer* tuples() const { return &part_->tuples; }

  // In place, nested: points *out at the part's tuples and its children's
  // (tuples and offsets), for NestedEncoder::Encode, which leaves them as
  // they were when it rejects the line.
  void BindNested(NestedEncoder::Output* out) const {
    out->root = &part_->tuples;
    out->children.clear();
    out->child_offsets.clear();
    for (auto& c : part_->children) {
      out->children.push_back(&c->tuples);
      out->child_offsets.push_back(&c->offsets);
    }
  }

  // In place: adds the row encoded at tuples()[start..] and, nested, the
  // child rows encoded since the last row, all with `origin`.
  void AddRow(size_t start, const RowOrigin& origin) {
    part_->offsets.push_back(static_cast<uint32_t>(start));
    part_->origins.push_back(origin);
    for (auto& c : part_->children) {
      c->by_parent.push_back(static_cast<uint32_t>(c->origins.size()));
      c->origins.resize(c->rows(), origin);
    }
  }

  // Copies a flat row encoded elsewhere.
  void AppendRow(std::string_view tuple, const RowOrigin& origin) {
    part_->offsets.push_back(static_cast<uint32_t>(part_->tuples.size()));
    part_->tuples.Append(tuple.data(), tuple.size());
    part_->origins.push_back(origin);
  }

  // Copies a nested line's rows encoded into `rows` (its children must be
  // the part's number of children).
  void AppendNestedRow(const NestedRowScratch& rows, const RowOrigin& origin) {
    for (size_t d = 0; d < part_->children.size(); ++d) {
      EncodedPart& c = *part_->children[d];
      c.by_parent.push_back(static_cast<uint32_t>(c.rows()));
      const uint32_t base = static_cast<uint32_t>(c.tuples.size());
      for (uint32_t off : rows.child_offsets(d)) {
        c.offsets.push_back(base + off);
        c.origins.push_back(origin);
      }
      c.tuples.Append(rows.child(d).data(), rows.child(d).size());
    }
    AppendRow(rows.root().view(), origin);
  }

  // Ends the part (each child's closing by_parent entry) and returns it.
  // Start must be called again before more rows.
  EncodedPart* Finish() {
    for (auto& c : part_->children) c->by_parent.push_back(static_cast<uint32_t>(c->rows()));
    EncodedPart* done = part_;
    part_ = nullptr;
    return done;
  }

 private:
  static void Reset(EncodedPart* p, uint64_t seq, const std::shared_ptr<const Chunk>& chunk) {
    p->seq = seq;
    p->tuples.clear();
    p->offsets.clear();
    p->origins.clear();
    p->by_parent.clear();
    p->chunk = chunk;
  }

  EncodedPart* part_ = nullptr;
};

}  // namespace nomnom
