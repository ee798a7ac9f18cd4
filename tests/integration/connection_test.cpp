#include <catch2/catch.hpp>

#include "core/pg_connection.h"
#include "tests/support/test_env.h"

using namespace nomnom;
using namespace nomnom::testing;

TEST_CASE("QuoteIdent doubles embedded quotes", "[pg]") {
  CHECK(QuoteIdent("orders") == "\"orders\"");
  CHECK(QuoteIdent("we\"ird") == "\"we\"\"ird\"");
  CHECK(QuoteQualified("s", "t") == "\"s\".\"t\"");
}

TEST_CASE("a connection failure names host and port and what to check", "[pg]") {
  auto conn = PgConnection::Connect("postgresql://nobody@127.0.0.1:1/nodb");
  REQUIRE_FALSE(conn.ok());
  CHECK(conn.status().code() == StatusCode::kConnection);
  CHECK_THAT(conn.status().message(), Catch::Contains("127.0.0.1") && Catch::Contains("port 1"));
  CHECK_THAT(conn.status().message(), Catch::Contains("DATABASE_URL"));
}

TEST_CASE("a password never appears in a connection error", "[pg]") {
  auto conn = PgConnection::Connect("postgresql://u:s3cr3tpw@127.0.0.1:1/db");
  REQUIRE_FALSE(conn.ok());
  CHECK_THAT(conn.status().message(), !Catch::Contains("s3cr3tpw"));
}

TEST_CASE("bound parameters carry values, never SQL", "[pg]") {
  auto conn = Connect();
  auto rows = conn->ExecParams("SELECT $1::text, $2::int IS NULL", {std::string("x'; DROP TABLE y; --"), std::nullopt});
  REQUIRE(rows.ok());
  CHECK(rows->rows.at(0).at(0).value() == "x'; DROP TABLE y; --");
  CHECK(rows->rows.at(0).at(1).value() == "t");
}

TEST_CASE("errors carry SQLSTATE and are classified", "[pg]") {
  auto conn = Connect();
  auto err = conn->TryExec("SELECT 1/0");
  REQUIRE(err.has_value());
  CHECK(err->sqlstate == "22012");
  CHECK(err->IsRowLevel());
  CHECK_FALSE(err->IsTransient());
  auto err2 = conn->TryExec("SELEC nonsense");
  REQUIRE(err2.has_value());
  CHECK(err2->sqlstate == "42601");
  CHECK_FALSE(err2->IsRowLevel());
  CHECK_FALSE(err2->IsInfrastructure());
  // Row-level: anything a row may cause, such as a trigger's RAISE (P0001) or
  // an index row too large (54000); never infrastructure nor statement-wide errors.
  auto err3 = conn->TryExec("DO $$ BEGIN RAISE EXCEPTION 'no'; END $$");
  REQUIRE(err3.has_value());
  CHECK(err3->sqlstate == "P0001");
  CHECK(err3->IsRowLevel());
  for (const char* state : {"P0001", "54000", "22001", "23505", "2F000", "27000", "44000"}) {
    PgError e;
    e.sqlstate = state;
    INFO(state);
    CHECK(e.IsRowLevel());
    CHECK_FALSE(e.IsInfrastructure());
  }
  for (const char* state : {"08006", "40001", "40P01", "53100", "53200", "57014", "57P01", "55P03"}) {
    PgError e;
    e.sqlstate = state;
    INFO(state);
    CHECK_FALSE(e.IsRowLevel());
    CHECK(e.IsInfrastructure());
  }
  for (const char* state : {"42501", "42P01", "0A000", "25006", "58030", "XX000", "3F000", "55006", "3B001"}) {
    PgError e;
    e.sqlstate = state;
    INFO(state);
    CHECK_FALSE(e.IsRowLevel());
    CHECK_FALSE(e.IsInfrastructure());
  }
  PgError lost;
  lost.connection_lost = true;
  CHECK(lost.IsInfrastructure());
  CHECK_FALSE(lost.IsRowLevel());
}
