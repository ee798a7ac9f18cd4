// CheckEntitySubjects: an entity whose name is no NATS subject token is a
// startup error naming it and its file.
#include "core/queue/entity_subjects.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/queue/nats_client.h"

using Catch::Matchers::Contains;

namespace {

nomnom::Entity Named(std::string name) {
  nomnom::Entity e;
  e.name = std::move(name);
  e.source_file = "entities/" + e.name + ".yaml";
  return e;
}

}  // namespace

TEST_CASE("entity names must be NATS subject tokens", "[entity_subjects]") {
  CHECK(nomnom::CheckEntitySubjects({Named("Order"), Named("order_line-item_2"), Named("Ünïcode")}).ok());
  for (const char* bad : {"x y", "a..b", ".lead", "trail.", "a.b", "star*", "gt>", "tab\there", ""}) {
    INFO(bad);
    const nomnom::Status s = nomnom::CheckEntitySubjects({Named("Order"), Named(bad)});
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(),
               Contains("entity '" + std::string(bad) + "'") && Contains(".yaml") && Contains("subject token"));
  }
  CHECK(nomnom::JetStreamClient::ValidSubjectToken("Order"));
  CHECK_FALSE(nomnom::JetStreamClient::ValidSubjectToken("a\x01"));
}
