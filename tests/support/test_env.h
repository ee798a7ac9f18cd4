// Helpers shared by the tests: the test database, unique names, temp files and
// running the nomnom executable as a child process.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/pg/pg_connection.h"
#include "core/queue/nats_client.h"

namespace nomnom::testing {

// The PostgreSQL the integration tests use: NOMNOM_TEST_DATABASE_URL, else
// DATABASE_URL. Fails the current test (Catch2 FAIL) when neither is set.
std::string DatabaseUrl();
// The nats-server (with JetStream) the integration tests use:
// NOMNOM_TEST_NATS_URL, else NATS_URL. Fails the current test when neither is set.
std::string NatsUrl();
// A JetStream configuration whose streams, consumer and subjects belong to the
// calling test only (names from UniqueName(prefix)), on NatsUrl(), with small
// limits and short timeouts.
JetStreamConfig UniqueJetStreamConfig(std::string_view prefix);
// A connection to DatabaseUrl(); fails the test when it cannot connect.
std::unique_ptr<PgConnection> Connect();
// Runs sql and fails the test on error.
PgRows Query(PgConnection& conn, std::string_view sql);
// The single value of a one-row, one-column query ("" for NULL).
std::string QueryValue(PgConnection& conn, std::string_view sql);

// A name unique to this process and call, e.g. UniqueName("t") -> "t_1234_7".
std::string UniqueName(std::string_view prefix);

// A fresh temporary directory, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes content to path()/name and returns the full path.
  std::string Write(std::string_view name, std::string_view content) const;

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path);

struct CommandResult {
  int exit_code = -1;  // the process's exit status; 128+N when killed by signal N
  std::string out;
  std::string err;
};
// Runs argv (argv[0] is a path) with stdin_data on its stdin, extra environment
// variables set, and captures stdout and stderr.
CommandResult Run(const std::vector<std::string>& argv, std::string_view stdin_data = {},
                  const std::map<std::string, std::string>& env = {});
// Runs the nomnom CLI built by this tree with args; DATABASE_URL is set to
// DatabaseUrl() unless env overrides it.
CommandResult RunNomnom(const std::vector<std::string>& args, std::string_view stdin_data = {},
                        std::map<std::string, std::string> env = {});

// Path of a file in the source tree (e.g. "data/tpch/entities/order.yaml").
std::string SourcePath(std::string_view relative);

}  // namespace nomnom::testing
