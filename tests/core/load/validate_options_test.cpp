// ValidateLoadOptions: one message per bad combination of a load's options,
// in the caller's words (the *_name fields). Pure unit tests.
#include <catch2/catch.hpp>
#include <string>

#include "core/load/pipeline.h"

using nomnom::ConflictMode;
using nomnom::Entity;
using nomnom::HeaderMode;
using nomnom::InputFormat;
using nomnom::LoadOptions;
using nomnom::StatusCode;
using nomnom::ValidateLoadOptions;

namespace {

// The options the CLI passes, naming its flags.
LoadOptions CliOptions(std::string input) {
  LoadOptions o;
  o.inputs = {std::move(input)};
  o.mode = ConflictMode::kNothing;
  o.fresh_name = "--fresh";
  o.mode_name = "--on-conflict";
  o.header_name = "--header and --no-header";
  o.publish_name = "--via-nats";
  return o;
}

std::string Message(const LoadOptions& o, const Entity& e, bool published = false) {
  const nomnom::Status s = ValidateLoadOptions(o, e, published);
  if (s.ok()) return "ok";
  CHECK(s.code() == StatusCode::kInvalidArgument);
  return s.message();
}

}  // namespace

TEST_CASE("ValidateLoadOptions accepts what a load can do", "[validate_load_options]") {
  Entity order;
  order.name = "Order";
  LoadOptions o = CliOptions("a.ndjson");
  CHECK(Message(o, order) == "ok");
  CHECK(Message(o, order, /*published=*/true) == "ok");
  o.inputs = {"a.csv", "b.csv.gz"};
  o.header = HeaderMode::kYes;
  CHECK(Message(o, order) == "ok");
  o.fresh = true;
  o.mode = ConflictMode::kError;
  CHECK(Message(o, order) == "ok");
  // Standard input is the inputs' business, not the options': RunLoad refuses it for a fresh load.
  o.inputs = {"-"};
  o.header = HeaderMode::kAuto;
  CHECK(Message(o, order) == "ok");
}

TEST_CASE("ValidateLoadOptions names each bad combination", "[validate_load_options]") {
  Entity order, item;
  order.name = "Order";
  item.name = "OrderLineItem";
  LoadOptions o = CliOptions("a.ndjson");

  SECTION("no inputs, no threads") {
    o.inputs.clear();
    CHECK(Message(o, order) == "no input files");
    o = CliOptions("a.ndjson");
    o.parsers = 0;
    CHECK_THAT(Message(o, order), Catch::Contains("must be at least 1"));
  }
  SECTION("inputs of two formats") {
    o.inputs = {"a.csv", "b.ndjson"};
    CHECK_THAT(Message(o, order), Catch::Contains("b.ndjson is ndjson"));
  }
  SECTION("CSV with derived entities, or published") {
    o.inputs = {"a.csv"};
    o.derived = {&item};
    CHECK(Message(o, order) ==
          "csv input is flat rows of one table; entity Order also fills its derived entities' tables "
          "(OrderLineItem), which only NDJSON input can carry");
    o.derived.clear();
    o.format = InputFormat::kTbl;
    CHECK(Message(o, order, true) == "--via-nats publishes JSON rows for the workers; convert tbl input to NDJSON");
  }
  SECTION("a header mode with NDJSON") {
    o.header = HeaderMode::kNo;
    CHECK(Message(o, order) == "--header and --no-header are for CSV and .tbl input");
  }
  SECTION("a fresh load") {
    o.fresh = true;
    CHECK(Message(o, order) ==
          "--fresh has --on-conflict error's semantics; it cannot be combined with --on-conflict nothing");
    o.mode = ConflictMode::kError;
    CHECK(Message(o, order, true) == "--fresh loads into PostgreSQL; it cannot be combined with --via-nats");
    o.derived = {&item};
    CHECK(Message(o, order) ==
          "--fresh loads one table; Order fills its derived entities' tables too (load without --fresh)");
  }
  SECTION("a library caller's default names") {
    LoadOptions d;
    d.inputs = {"a.ndjson"};
    d.fresh = true;
    d.mode = ConflictMode::kUpdate;
    CHECK(Message(d, order) ==
          "fresh load has conflict mode error's semantics; it cannot be combined with conflict mode update");
  }
}
