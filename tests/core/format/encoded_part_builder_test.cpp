// EncodedPartBuilder: the invariants of the parts it fills, whether rows are
// encoded in place or copied from scratch, flat or nested. Pure unit tests:
// the "tuples" are plain bytes written by hand, as an encoder would.
#include "core/format/encoded_part_builder.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using nomnom::ByteBuffer;
using nomnom::Chunk;
using nomnom::EncodedPart;
using nomnom::EncodedPartBuilder;
using nomnom::NestedEncoder;
using nomnom::NestedRowScratch;
using nomnom::RowOrigin;

namespace {

std::string Tuple(const EncodedPart& p, size_t r) {
  const size_t end = r + 1 < p.rows() ? p.offsets[r + 1] : p.tuples.size();
  return std::string(p.tuples.view().substr(p.offsets[r], end - p.offsets[r]));
}

// Writes one nested line's rows to `out` as NestedEncoder would: the root's
// tuple, then `per_child[d]` tuples of child d (offsets into its buffer).
void Encode(const NestedEncoder::Output& out, const std::string& root, const std::vector<int>& per_child) {
  out.root->Append(root);
  for (size_t d = 0; d < per_child.size(); ++d) {
    for (int i = 0; i < per_child[d]; ++i) {
      out.child_offsets[d]->push_back(static_cast<uint32_t>(out.children[d]->size()));
      out.children[d]->Append(root + "." + std::to_string(d) + "." + std::to_string(i));
    }
  }
}

void CheckNested(const EncodedPart& p) {
  REQUIRE(p.rows() == 3);
  CHECK(Tuple(p, 0) == "a");
  CHECK(Tuple(p, 1) == "b");
  CHECK(Tuple(p, 2) == "c");
  REQUIRE(p.children.size() == 2);
  const EncodedPart& c0 = *p.children[0];
  const EncodedPart& c1 = *p.children[1];
  CHECK(c0.by_parent == std::vector<uint32_t>{0, 2, 2, 3});
  CHECK(c1.by_parent == std::vector<uint32_t>{0, 0, 1, 1});
  REQUIRE(c0.rows() == 3);
  REQUIRE(c0.origins.size() == 3);
  CHECK(Tuple(c0, 0) == "a.0.0");
  CHECK(Tuple(c0, 1) == "a.0.1");
  CHECK(Tuple(c0, 2) == "c.0.0");
  CHECK(c0.origins[0].line == 1);
  CHECK(c0.origins[1].line == 1);
  CHECK(c0.origins[2].line == 3);
  REQUIRE(c1.rows() == 1);
  CHECK(Tuple(c1, 0) == "b.1.0");
  REQUIRE(c1.origins.size() == 1);
  CHECK(c1.origins[0].line == 2);
  CHECK(c0.seq == 7);
  CHECK(c1.chunk == p.chunk);
}

}  // namespace

TEST_CASE("flat rows encoded in place or appended get their offsets and origins", "[encoded_part_builder]") {
  auto chunk = std::make_shared<const Chunk>();
  EncodedPart part;
  EncodedPartBuilder b;
  b.Start(&part, 5, chunk);
  b.Reserve(100, 4);
  size_t start = b.tuples()->size();
  b.tuples()->Append(std::string_view("one"));
  b.AddRow(start, RowOrigin{0, 1, "1"});
  // A rejected row: the encoder leaves nothing, and nothing is added.
  b.AppendRow("two!", RowOrigin{0, 3, "3"});
  start = b.tuples()->size();
  b.tuples()->Append(std::string_view("three"));
  b.AddRow(start, RowOrigin{1, 4, "4"});
  CHECK(b.Finish() == &part);
  REQUIRE(part.rows() == 3);
  REQUIRE(part.origins.size() == 3);
  CHECK(Tuple(part, 0) == "one");
  CHECK(Tuple(part, 1) == "two!");
  CHECK(Tuple(part, 2) == "three");
  CHECK(part.origins[1].line == 3);
  CHECK(part.origins[2].source == 1);
  CHECK(part.seq == 5);
  CHECK(part.chunk == chunk);
  CHECK(part.children.empty());
  CHECK(part.by_parent.empty());

  SECTION("Start empties a used part") {
    b.Start(&part, 6, chunk);
    b.Finish();
    CHECK(part.rows() == 0);
    CHECK(part.origins.empty());
    CHECK(part.tuples.size() == 0);
    CHECK(part.seq == 6);
  }
}

TEST_CASE("nested rows encoded in place or copied from scratch make the same part", "[encoded_part_builder]") {
  auto chunk = std::make_shared<const Chunk>();
  const std::vector<std::string> roots{"a", "b", "c"};
  const std::vector<std::vector<int>> counts{{2, 0}, {0, 1}, {1, 0}};

  SECTION("in place") {
    EncodedPart part;
    EncodedPartBuilder b;
    b.Start(&part, 7, chunk, 2);
    NestedEncoder::Output out;
    b.BindNested(&out);
    for (size_t r = 0; r < roots.size(); ++r) {
      const size_t start = b.tuples()->size();
      Encode(out, roots[r], counts[r]);
      b.AddRow(start, RowOrigin{0, r + 1, roots[r]});
    }
    CheckNested(*b.Finish());
  }
  SECTION("from scratch, into a part used before") {
    EncodedPart part;
    EncodedPartBuilder b;
    b.Start(&part, 1, chunk, 2);
    NestedRowScratch scratch(2);
    Encode(scratch.out(), "old", {1, 1});
    b.AppendNestedRow(scratch, RowOrigin{0, 9, "old"});
    b.Finish();
    b.Start(&part, 7, chunk, 2);
    for (size_t r = 0; r < roots.size(); ++r) {
      scratch.Clear();
      Encode(scratch.out(), roots[r], counts[r]);
      b.AppendNestedRow(scratch, RowOrigin{0, r + 1, roots[r]});
    }
    CheckNested(*b.Finish());
  }
}
