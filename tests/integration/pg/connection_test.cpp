#include <signal.h>
#include <sys/types.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <string>

#include "core/pg/pg_connection.h"
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

TEST_CASE("session bounds hold on a connection and after it reconnects", "[pg][session-bounds]") {
  PgSessionOptions o;
  o.statement_timeout_ms = 1500;
  o.lock_timeout_ms = 700;
  o.keepalives_idle_s = 10;
  o.tcp_user_timeout_ms = 30000;
  auto conn = PgConnection::Connect(DatabaseUrl(), "nomnom-test", o);
  REQUIRE(conn.ok());
  PgConnection& c = **conn;
  CHECK(QueryValue(c, "SHOW statement_timeout") == "1500ms");
  CHECK(QueryValue(c, "SHOW lock_timeout") == "700ms");
  // The client side's TCP bounds, as libpq uses them.
  std::map<std::string, std::string> used;
  PQconninfoOption* opts = PQconninfo(c.raw());
  REQUIRE(opts != nullptr);
  for (PQconninfoOption* p = opts; p->keyword != nullptr; ++p) {
    if (p->val != nullptr) used[p->keyword] = p->val;
  }
  PQconninfoFree(opts);
  CHECK(used["keepalives"] == "1");
  CHECK(used["keepalives_idle"] == "10");
  CHECK(used["tcp_user_timeout"] == "30000");
  // A statement past the timeout fails as an infrastructure error (57014).
  auto slow = c.TryExec("SELECT pg_sleep(3)");
  REQUIRE(slow);
  CHECK(slow->sqlstate == "57014");
  CHECK(slow->IsInfrastructure());
  CHECK(ToStatus(*slow, "").code() == StatusCode::kUnavailable);
  REQUIRE(c.Reconnect().ok());
  CHECK(QueryValue(c, "SHOW statement_timeout") == "1500ms");
  CHECK(QueryValue(c, "SHOW lock_timeout") == "700ms");
  // Without options: no timeouts (nomnom load).
  auto plain = Connect();
  CHECK(QueryValue(*plain, "SHOW statement_timeout") == "0");
}

TEST_CASE("errors of the database are infrastructure, errors of a statement are not", "[pg]") {
  PgError e;
  for (const char* s : {"08006", "40001", "40P01", "53100", "53300", "57014", "57P01", "55P03"}) {
    e.sqlstate = s;
    CHECK(e.IsInfrastructure());
  }
  for (const char* s : {"23505", "22P02", "P0001", "42P01", "54000", "55000"}) {
    e.sqlstate = s;
    CHECK_FALSE(e.IsInfrastructure());
    CHECK(ToStatus(e, "").code() == StatusCode::kDatabase);
  }
  e.sqlstate.clear();
  e.connection_lost = true;
  CHECK(e.IsInfrastructure());
  CHECK(ToStatus(e, "").code() == StatusCode::kConnection);
}

TEST_CASE("a client timeout ends a query to a stopped server", "[pg][session-bounds]") {
  // A stopped backend (SIGSTOP: a frozen server or VM) still has its kernel
  // acknowledge TCP, so only a bound in the client ends the wait. The test
  // stops just this connection's backend (it runs as the server's user).
  PgSessionOptions o;
  o.statement_timeout_ms = 500;
  o.client_timeout_ms = 800;
  auto conn = PgConnection::Connect(DatabaseUrl(), "nomnom-test", o);
  REQUIRE(conn.ok());
  PgConnection& c = **conn;
  // Multi-statement text: the last result, as without the bound.
  CHECK(QueryValue(c, "SELECT 1; SELECT 2") == "2");
  auto bad = c.TryExec("SELECT 1; SELECT 1/0; SELECT 3");
  REQUIRE(bad);
  CHECK(bad->sqlstate == "22012");
  CHECK(c.IsOk());
  const pid_t backend = static_cast<pid_t>(std::stol(QueryValue(c, "SELECT pg_backend_pid()")));
  if (kill(backend, SIGSTOP) != 0) {
    WARN("cannot stop the backend (the server runs as another user): skipped");
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  auto err = c.TryExecParams("SELECT $1::int", {std::string("1")});
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  kill(backend, SIGCONT);
  REQUIRE(err);
  CHECK(err->connection_lost);
  CHECK(err->IsInfrastructure());
  CHECK_THAT(err->message, Catch::Contains("did not answer within 800 ms"));
  CHECK(waited >= 0.7);
  CHECK(waited < 5.0);
  CHECK_FALSE(c.IsOk());
  // The connection comes back once the server answers again.
  REQUIRE(c.Reconnect().ok());
  CHECK(QueryValue(c, "SELECT 41 + 1") == "42");
}
