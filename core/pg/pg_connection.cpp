#include "core/pg/pg_connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace nomnom {

bool PgError::IsInfrastructure() const {
  if (connection_lost || sqlstate.size() != 5) return true;
  if (sqlstate == "55P03") return true;
  static constexpr const char* kClasses[] = {"08", "40", "53", "57"};
  for (const char* c : kClasses) {
    if (sqlstate.compare(0, 2, c) == 0) return true;
  }
  return false;
}

bool PgError::IsRowLevel() const {
  if (IsInfrastructure()) return false;
  static constexpr const char* kStatementClasses[] = {"0A", "0B", "0L", "0P", "25", "26", "28", "2B", "2D",
                                                      "34", "3B", "3D", "3F", "42", "55", "58", "F0", "XX"};
  for (const char* c : kStatementClasses) {
    if (sqlstate.compare(0, 2, c) == 0) return false;
  }
  return true;
}

bool PgError::IsTransient() const {
  if (connection_lost) return true;
  static constexpr const char* kTransient[] = {
      "40001",                                      // serialization_failure
      "40P01",                                      // deadlock_detected
      "57P01",                                      // admin_shutdown
      "57P02",                                      // crash_shutdown
      "57P03",                                      // cannot_connect_now
      "53300",                                      // too_many_connections
      "08000", "08003", "08006", "08001", "08004",  // connection exceptions
  };
  for (const char* s : kTransient) {
    if (sqlstate == s) return true;
  }
  return false;
}

Status ToStatus(const PgError& err, std::string_view context) {
  std::string msg(context);
  if (!msg.empty()) msg += ": ";
  msg += err.message;
  if (!err.sqlstate.empty()) msg += " (SQLSTATE " + err.sqlstate + ")";
  if (err.connection_lost) return Status::Connection(std::move(msg));
  if (err.IsInfrastructure()) return Status::Unavailable(std::move(msg));
  return Status::Database(std::move(msg));
}

namespace {

std::string TrimTrailingNewlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Describes where a failed connection attempt went, without secrets.
std::string DescribeTarget(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);
  std::string host, port, db, user;
  if (opts != nullptr) {
    for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
      if (o->val == nullptr) continue;
      if (std::strcmp(o->keyword, "host") == 0) host = o->val;
      if (std::strcmp(o->keyword, "hostaddr") == 0 && host.empty()) host = o->val;
      if (std::strcmp(o->keyword, "port") == 0) port = o->val;
      if (std::strcmp(o->keyword, "dbname") == 0) db = o->val;
      if (std::strcmp(o->keyword, "user") == 0) user = o->val;
    }
    PQconninfoFree(opts);
  }
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  if (host.empty()) host = env("PGHOST");
  if (port.empty()) port = env("PGPORT");
  if (db.empty()) db = env("PGDATABASE");
  if (user.empty()) user = env("PGUSER");
  if (host.empty()) host = "the default Unix socket";
  if (port.empty()) port = "5432";
  std::string out = "host " + host + ", port " + port;
  if (!db.empty()) out += ", database " + db;
  if (!user.empty()) out += ", user " + user;
  return out;
}

}  // namespace

Result<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& conninfo,
                                                            std::string_view application_name) {
  return Connect(conninfo, application_name, PgSessionOptions{});
}

Result<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& conninfo,
                                                            std::string_view application_name,
                                                            const PgSessionOptions& session) {
  // expand_dbname lets conninfo be a URL or key=value string; keywords after
  // dbname override the same keywords inside it.
  std::string app(application_name);
  std::vector<std::string> keys = {"dbname", "application_name", "connect_timeout"};
  std::vector<std::string> vals = {conninfo, app, "10"};
  if (session.keepalives_idle_s > 0) {
    keys.insert(keys.end(), {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"});
    vals.insert(vals.end(), {"1", std::to_string(session.keepalives_idle_s),
                             std::to_string(session.keepalives_interval_s), std::to_string(session.keepalives_count)});
  }
  if (session.tcp_user_timeout_ms > 0) {
    keys.emplace_back("tcp_user_timeout");
    vals.push_back(std::to_string(session.tcp_user_timeout_ms));
  }
  std::vector<const char*> key_ptrs, val_ptrs;
  for (size_t i = 0; i < keys.size(); ++i) {
    key_ptrs.push_back(keys[i].c_str());
    val_ptrs.push_back(vals[i].c_str());
  }
  key_ptrs.push_back(nullptr);
  val_ptrs.push_back(nullptr);
  std::string session_sql;
  if (session.statement_timeout_ms > 0) {
    session_sql += "; SET statement_timeout = " + std::to_string(session.statement_timeout_ms);
  }
  if (session.lock_timeout_ms > 0) session_sql += "; SET lock_timeout = " + std::to_string(session.lock_timeout_ms);
  PGconn* conn = PQconnectdbParams(key_ptrs.data(), val_ptrs.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return Status::Connection("cannot allocate a PostgreSQL connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string why = TrimTrailingNewlines(PQerrorMessage(conn));
    PQfinish(conn);
    return Status::Connection("cannot connect to PostgreSQL (" + DescribeTarget(conninfo) + "): " + why +
                              "\nCheck that the server is running and reachable, and the connection "
                              "settings (the URL or conninfo, DATABASE_URL, or the PG* environment variables).");
  }
  if (Status s = ConfigureSession(conn, session_sql); !s.ok()) {
    PQfinish(conn);
    return s;
  }
  return std::unique_ptr<PgConnection>(new PgConnection(conn, std::move(session_sql), session.client_timeout_ms));
}

Status PgConnection::ConfigureSession(PGconn* conn, const std::string& extra_sql) {
  // Make sure output that we parse is stable regardless of server defaults.
  const std::string sql =
      "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, YMD'; "
      "SET extra_float_digits = 3; SET TimeZone = 'UTC'; "
      "SET client_min_messages = 'warning'" +
      extra_sql;
  PGresult* r = PQexec(conn, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  // Part of connecting (the server shutting down, the connection lost): never
  // about any statement or row of the caller's.
  if (!ok)
    return Status::Connection("cannot configure the PostgreSQL session: " + TrimTrailingNewlines(PQerrorMessage(conn)));
  return Status::Ok();
}

Status PgConnection::Reconnect() {
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return Status::Connection("cannot reconnect to PostgreSQL at " + Endpoint() + ": " +
                              TrimTrailingNewlines(PQerrorMessage(conn_)));
  }
  return ConfigureSession(conn_, session_sql_);
}

PgConnection::~PgConnection() { PQfinish(conn_); }

std::string PgConnection::Endpoint() const {
  const char* h = PQhost(conn_);
  const char* p = PQport(conn_);
  return std::string(h != nullptr ? h : "?") + ":" + (p != nullptr ? p : "?");
}

PgError PgConnection::ErrorFrom(const PGresult* r) const {
  PgError e;
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  if (state != nullptr) e.sqlstate = state;
  const char* context = r != nullptr ? PQresultErrorField(r, PG_DIAG_CONTEXT) : nullptr;
  if (context != nullptr) e.context = context;
  const char* primary = r != nullptr ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (primary != nullptr) {
    e.message = primary;
    const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    if (detail != nullptr) {
      e.message += " (";
      e.message += detail;
      e.message += ")";
    }
  } else {
    e.message = TrimTrailingNewlines(PQerrorMessage(conn_));
  }
  if (PQstatus(conn_) != CONNECTION_OK) {
    e.connection_lost = true;
    if (e.message.empty()) e.message = "connection to PostgreSQL at " + Endpoint() + " lost";
  }
  return e;
}

namespace {
void FillRows(PGresult* r, PgRows* rows) {
  if (rows == nullptr) return;
  rows->columns.clear();
  rows->rows.clear();
  const int nf = PQnfields(r);
  for (int c = 0; c < nf; ++c) rows->columns.emplace_back(PQfname(r, c));
  const int nt = PQntuples(r);
  rows->rows.reserve(static_cast<size_t>(nt));
  for (int i = 0; i < nt; ++i) {
    auto& row = rows->rows.emplace_back();
    row.reserve(static_cast<size_t>(nf));
    for (int c = 0; c < nf; ++c) {
      if (PQgetisnull(r, i, c)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(r, i, c), static_cast<size_t>(PQgetlength(r, i, c))));
      }
    }
  }
  rows->command_tuples = PQcmdTuples(r);
}
}  // namespace

PGresult* PgConnection::AwaitResult(bool* timed_out) {
  *timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(client_timeout_ms_);
  PGresult* keep = nullptr;
  for (;;) {
    while (!*timed_out && PQisBusy(conn_) != 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        // No answer in time: close the socket under libpq, which then fails
        // the query as a lost connection instead of waiting on.
        *timed_out = true;
        shutdown(PQsocket(conn_), SHUT_RDWR);
        PQconsumeInput(conn_);
        break;
      }
      pollfd p{PQsocket(conn_), POLLIN, 0};
      const int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 60000)));
      if (n < 0 && errno != EINTR) break;
      if (n > 0 && PQconsumeInput(conn_) == 0) break;  // PQgetResult reports the failure
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    const auto st = PQresultStatus(r);
    const bool keep_is_error =
        keep != nullptr && PQresultStatus(keep) != PGRES_COMMAND_OK && PQresultStatus(keep) != PGRES_TUPLES_OK;
    if (keep_is_error || (st == PGRES_COPY_IN || st == PGRES_COPY_OUT)) {
      PQclear(r);
      if (st == PGRES_COPY_IN) PQputCopyEnd(conn_, "not expected here");
      continue;
    }
    PQclear(keep);
    keep = r;
  }
  return keep;
}

std::optional<PgError> PgConnection::Finish(bool sent, PgRows* rows) {
  bool timed_out = false;
  PgResultPtr r(sent ? AwaitResult(&timed_out) : nullptr);
  if (timed_out) {
    PgError e;
    e.connection_lost = true;
    e.message = "PostgreSQL at " + Endpoint() + " did not answer within " + std::to_string(client_timeout_ms_) +
                " ms (the server may be stopped); the connection was closed";
    return e;
  }
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ErrorFrom(r.get());
  FillRows(r.get(), rows);
  return std::nullopt;
}

std::optional<PgError> PgConnection::TryExec(std::string_view sql, PgRows* rows) {
  std::string q(sql);
  if (client_timeout_ms_ > 0) return Finish(PQsendQuery(conn_, q.c_str()) == 1, rows);
  PgResultPtr r(PQexec(conn_, q.c_str()));
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ErrorFrom(r.get());
  FillRows(r.get(), rows);
  return std::nullopt;
}

Result<PgRows> PgConnection::Exec(std::string_view sql) {
  PgRows rows;
  if (auto err = TryExec(sql, &rows)) return ToStatus(*err, "");
  return rows;
}

std::optional<PgError> PgConnection::TryExecParams(std::string_view sql,
                                                   const std::vector<std::optional<std::string>>& params,
                                                   PgRows* rows) {
  std::string q(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  if (client_timeout_ms_ > 0) {
    return Finish(PQsendQueryParams(conn_, q.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                                    nullptr, 0) == 1,
                  rows);
  }
  PgResultPtr r(
      PQexecParams(conn_, q.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ErrorFrom(r.get());
  FillRows(r.get(), rows);
  return std::nullopt;
}

Result<PgRows> PgConnection::ExecParams(std::string_view sql, const std::vector<std::optional<std::string>>& params) {
  PgRows rows;
  if (auto err = TryExecParams(sql, params, &rows)) return ToStatus(*err, "");
  return rows;
}

std::optional<PgError> PgConnection::CopyIn(std::string_view copy_sql, const std::vector<std::string_view>& parts,
                                            uint64_t* rows_copied) {
  return CopyInWith(
      copy_sql,
      [&parts](const CopySendFn& send) {
        for (std::string_view part : parts) {
          if (!send(part)) return true;  // CopyInWith reports the failed send
        }
        return true;
      },
      rows_copied);
}

std::optional<PgError> PgConnection::CopyInWith(std::string_view copy_sql,
                                                const std::function<bool(const CopySendFn&)>& produce,
                                                uint64_t* rows_copied) {
  std::string q(copy_sql);
  {
    PgResultPtr r(PQexec(conn_, q.c_str()));
    if (PQresultStatus(r.get()) != PGRES_COPY_IN) return ErrorFrom(r.get());
  }
  constexpr size_t kSlice = 1 << 20;
  bool send_failed = false;
  const CopySendFn send = [&](std::string_view data) {
    while (!data.empty() && !send_failed) {
      const size_t n = std::min(kSlice, data.size());
      if (PQputCopyData(conn_, data.data(), static_cast<int>(n)) != 1) send_failed = true;
      data.remove_prefix(n);
    }
    return !send_failed;
  };
  const bool produced = produce(send);
  if (send_failed || PQputCopyEnd(conn_, produced ? nullptr : "the client stopped producing COPY data") != 1) {
    PgError e;
    e.connection_lost = PQstatus(conn_) != CONNECTION_OK;
    e.message = TrimTrailingNewlines(PQerrorMessage(conn_));
    return e;
  }
  std::optional<PgError> err;
  while (PGresult* raw = PQgetResult(conn_)) {
    PgResultPtr r(raw);
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      if (!err) err = ErrorFrom(r.get());
    } else if (rows_copied != nullptr) {
      *rows_copied = std::strtoull(PQcmdTuples(r.get()), nullptr, 10);
    }
  }
  if (!err && PQstatus(conn_) != CONNECTION_OK) err = ErrorFrom(nullptr);
  return err;
}

}  // namespace nomnom
