// Helpers shared by the end-to-end CLI tests (load_cli_test.cpp,
// load_conflict_test.cpp, gen_cli_test.cpp): building Order NDJSON lines,
// reading back the target table, parsing --json summaries and --rejects files,
// and dropping the tables a test created.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "core/pg/pg_connection.h"
#include "tests/support/test_env.h"

namespace nomnom::testing::cli {

// The Order entity's columns, in table order.
inline constexpr const char* kOrderColumns =
    "order_key, customer_key, order_status, total_price, order_date, order_priority, clerk, ship_priority, comment";

// CREATE TABLE with exactly the Order entity's columns and primary key, plus
// `extra` (table constraints, each starting with ", ").
inline std::string CreateOrdersSql(const std::string& table, const std::string& extra = "") {
  return "CREATE TABLE " + QuoteIdent(table) +
         " (order_key varchar(255) NOT NULL PRIMARY KEY, customer_key varchar(255) NOT NULL,"
         " order_status varchar(1) NOT NULL, total_price double precision NOT NULL,"
         " order_date varchar(255) NOT NULL, order_priority varchar(255), clerk varchar(255),"
         " ship_priority integer, comment text" +
         extra + ")";
}

// Drops the listed tables when it goes out of scope (declare it before the
// tables are created; later guards are destroyed first, so declare referenced
// tables' guards first).
class DropTables {
 public:
  explicit DropTables(std::vector<std::string> tables) : tables_(std::move(tables)) {}
  ~DropTables() {
    auto conn = PgConnection::Connect(DatabaseUrl(), "nomnom-tests-cleanup");
    if (!conn.ok()) return;
    (*conn)->TryExec("SET client_min_messages = warning");
    for (const auto& t : tables_) (*conn)->TryExec("DROP TABLE IF EXISTS " + QuoteIdent(t) + " CASCADE");
  }
  DropTables(const DropTables&) = delete;
  DropTables& operator=(const DropTables&) = delete;

 private:
  std::vector<std::string> tables_;
};

// A complete, valid Order object for `key`; tests override fields as needed.
inline nlohmann::ordered_json Order(const std::string& key) {
  nlohmann::ordered_json j;
  j["order_key"] = key;
  j["customer_key"] = "cust-" + key;
  j["order_status"] = "O";
  j["total_price"] = 1234.5;
  j["order_date"] = "1996-01-02";
  j["order_priority"] = "1-URGENT";
  j["clerk"] = "Clerk#000000007";
  j["ship_priority"] = 0;
  j["comment"] = "comment for " + key;
  return j;
}

inline std::string Line(const nlohmann::ordered_json& j) { return j.dump() + "\n"; }

// Every row of an Order table as text (nullopt for NULL), keyed by order_key.
using Row = std::vector<std::optional<std::string>>;
inline std::map<std::string, Row> TableRows(PgConnection& conn, const std::string& table) {
  PgRows rows = Query(conn, std::string("SELECT ") + kOrderColumns + " FROM " + QuoteIdent(table));
  std::map<std::string, Row> out;
  for (auto& r : rows.rows) {
    REQUIRE(r.size() == 9);
    REQUIRE(r[0].has_value());
    const std::string key = *r[0];
    REQUIRE(out.emplace(key, std::move(r)).second);
  }
  return out;
}

// A row as readable text for comparisons: values joined by " | ", NULL as "NULL".
inline std::string Show(const Row& row) {
  std::string s;
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0) s += " | ";
    s += row[i] ? "'" + *row[i] + "'" : std::string("NULL");
  }
  return s;
}

inline std::string Count(PgConnection& conn, const std::string& table) {
  return QueryValue(conn, "SELECT count(*) FROM " + QuoteIdent(table));
}

// The --json summary printed on stdout.
inline nlohmann::json Summary(const CommandResult& r) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(j.is_discarded());
  REQUIRE(j.is_object());
  return j;
}

// The records of a --rejects file, sorted by (file, line).
inline std::vector<nlohmann::json> ReadRejects(const std::string& path) {
  std::istringstream in(ReadFile(path));
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) {
    INFO("rejects line: " << line);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    REQUIRE(j.is_object());
    REQUIRE(j.size() == 4);
    REQUIRE(j.contains("file"));
    REQUIRE(j.contains("line"));
    REQUIRE(j.contains("error"));
    REQUIRE(j.contains("raw"));
    out.push_back(std::move(j));
  }
  std::sort(out.begin(), out.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return std::make_tuple(a["file"].get<std::string>(), a["line"].get<uint64_t>()) <
           std::make_tuple(b["file"].get<std::string>(), b["line"].get<uint64_t>());
  });
  return out;
}

// Rows of `a` not in `b` plus rows of `b` not in `a` (both whole-row EXCEPT).
inline std::string SymmetricDifference(PgConnection& conn, const std::string& a, const std::string& b) {
  const std::string qa = QuoteIdent(a), qb = QuoteIdent(b);
  return QueryValue(conn, "SELECT (SELECT count(*) FROM (SELECT * FROM " + qa + " EXCEPT ALL SELECT * FROM " + qb +
                              ") x) + (SELECT count(*) FROM (SELECT * FROM " + qb + " EXCEPT ALL SELECT * FROM " + qa +
                              ") y)");
}

}  // namespace nomnom::testing::cli
