// PgConnection: a RAII wrapper around one libpq connection.
//
// Not thread-safe: one connection is used by one thread at a time. All SQL
// text built by callers must quote identifiers with QuoteIdent(); values go
// through bound parameters (ExecParams) or COPY, never string concatenation.
#pragma once

#include <libpq-fe.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"
#include "core/format/sql_ident.h"  // QuoteIdent, QuoteQualified: callers quote with them

namespace nomnom {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

// An error PostgreSQL reported for a statement, with its SQLSTATE.
struct PgError {
  std::string sqlstate;  // five characters, empty when the connection broke
  std::string message;   // primary message (and detail, when present)
  std::string context;   // PG_DIAG_CONTEXT, e.g. "COPY orders, line 42, column x: ..."
  bool connection_lost = false;

  // True for errors that some row may have caused, so that isolating rows (a
  // savepoint per part, bisection) is the remedy: every error that is neither
  // infrastructure (IsInfrastructure) nor about the statement or session as a
  // whole (classes 0A, 0B, 0L, 0P, 25, 26, 28, 2B, 2D, 34, 3B, 3D, 3F, 42,
  // 55, 58, F0, XX: unsupported feature, transaction state, authorization,
  // savepoints, undefined, forbidden or busy object, system or internal
  // error). Classes 22 and 23 (bad data,
  // constraints), P0 (a trigger's RAISE), 54 (index row too large) and any
  // other class a trigger or function may raise are row-level.
  bool IsRowLevel() const;
  // True for failures of the infrastructure rather than of the data: a lost
  // connection, classes 08 (connection), 40 (serialization, deadlock), 53
  // (resources), 57 (operator intervention, statement timeout) and 55P03
  // (lock timeout), including statement_timeout's 57014, and errors without a
  // SQLSTATE (client-side). Never blamed on a row.
  bool IsInfrastructure() const;
  // True for errors that go away by retrying: connection loss, serialization
  // failure, deadlock, admin shutdown / crash recovery, too many connections.
  bool IsTransient() const;
};

// Bounds on a connection's calls (0: libpq's / the server's default, none).
// Long-running services (workers, the daemon) set them so that no call can
// block forever on a half-open connection, a lock or a stalled server.
struct PgSessionOptions {
  int64_t statement_timeout_ms = 0;  // SET statement_timeout
  int64_t lock_timeout_ms = 0;       // SET lock_timeout
  int keepalives_idle_s = 0;         // > 0: TCP keepalives after this idle time...
  int keepalives_interval_s = 5;     // ...every this many seconds...
  int keepalives_count = 3;          // ...this many unanswered ones close the connection
  int64_t tcp_user_timeout_ms = 0;   // unacknowledged data older than this closes the connection
  // > 0: Exec/ExecParams/TryExec/TryExecParams wait at most this long for
  // the answer; then the connection is closed (IsOk() turns false) and the
  // call fails with connection_lost set. For a server that is stopped
  // (SIGSTOP, a frozen VM): its kernel still acknowledges TCP, so neither
  // keepalives, tcp_user_timeout nor statement_timeout end the wait. Not
  // applied to COPY.
  int64_t client_timeout_ms = 0;
};

// A simple result table: rows of nullable text values.
struct PgRows {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::string command_tuples;  // PQcmdTuples, e.g. "42" after INSERT
};

class PgConnection {
 public:
  // Connects with a libpq conninfo string or URL ("" uses the PG* environment
  // variables). On failure the Status names the host and port tried and what
  // to check; it never contains the password.
  static Result<std::unique_ptr<PgConnection>> Connect(const std::string& conninfo,
                                                       std::string_view application_name = "nomnom");
  // The same, with the given bounds (kept across Reconnect()).
  static Result<std::unique_ptr<PgConnection>> Connect(const std::string& conninfo, std::string_view application_name,
                                                       const PgSessionOptions& session);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one or more statements without parameters. Returns the last result.
  Result<PgRows> Exec(std::string_view sql);
  // Runs a statement with text parameters ($1, $2, ...; nullopt is NULL).
  Result<PgRows> ExecParams(std::string_view sql, const std::vector<std::optional<std::string>>& params);

  // Like Exec/ExecParams but keeps the structured error for callers that
  // decide by SQLSTATE (retry, isolate, fail).
  std::optional<PgError> TryExec(std::string_view sql, PgRows* rows = nullptr);
  std::optional<PgError> TryExecParams(std::string_view sql, const std::vector<std::optional<std::string>>& params,
                                       PgRows* rows = nullptr);

  // Runs "COPY ... FROM STDIN" and streams the given buffers to it. Returns
  // the number of rows copied, or the error (the COPY is then aborted).
  // Large buffers are sent in slices so memory is not duplicated.
  std::optional<PgError> CopyIn(std::string_view copy_sql, const std::vector<std::string_view>& parts,
                                uint64_t* rows_copied = nullptr);

  // Runs "COPY ... FROM STDIN" with data the caller produces: `produce` is
  // called once with a function that sends one buffer (returning false once
  // sending failed: produce should then stop). When produce returns false the
  // COPY is aborted (an error is returned).
  using CopySendFn = std::function<bool(std::string_view data)>;
  std::optional<PgError> CopyInWith(std::string_view copy_sql, const std::function<bool(const CopySendFn&)>& produce,
                                    uint64_t* rows_copied = nullptr);

  bool IsOk() const { return PQstatus(conn_) == CONNECTION_OK; }
  // Re-establishes a broken connection with the same parameters (session
  // state such as temp tables is gone afterwards).
  Status Reconnect();
  // "host:port" of this connection, for messages.
  std::string Endpoint() const;
  PGconn* raw() { return conn_; }

 private:
  PgConnection(PGconn* conn, std::string session_sql, int64_t client_timeout_ms)
      : conn_(conn), session_sql_(std::move(session_sql)), client_timeout_ms_(client_timeout_ms) {}
  static Status ConfigureSession(PGconn* conn, const std::string& extra_sql);
  PgError ErrorFrom(const PGresult* r) const;
  // The answer to the query just sent (PQsendQuery*), as PQexec gives it:
  // the first error, else the last result; within client_timeout_ms_, else
  // the connection is closed and *timed_out set.
  PGresult* AwaitResult(bool* timed_out);
  std::optional<PgError> Finish(bool sent, PgRows* rows);
  PGconn* conn_;
  std::string session_sql_;  // SETs from PgSessionOptions, run after every (re)connect
  int64_t client_timeout_ms_ = 0;
};

// Returns a Status describing err, prefixed by context.
Status ToStatus(const PgError& err, std::string_view context);

}  // namespace nomnom
