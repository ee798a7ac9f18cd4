// Status look-ups of nomnomd: GET /ingest/status/{id} and the PostgreSQL
// connections that look-ups, /health and /stats borrow.
//
//   LookupConnections  a small pool (at most 4 idle) of PostgreSQL connections
//                      whose statements, locks and TCP are bounded by the
//                      look-up timeout, so a look-up answers quickly or fails.
//   AnswerStatus       one /ingest/status/{id} request: the ledger's answer
//                      (read on a look-up thread), or "pending" from PendingIds.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/http/http_server.h"
#include "core/pg/pg_connection.h"
#include "daemon/pending_ids.h"
#include "daemon/task_pool.h"

namespace nomnom {

// Thread-safe. Owns the idle connections; a taken one is the caller's until
// it gives it back with Return().
class LookupConnections {
 public:
  LookupConnections(std::string database_url, int64_t timeout_ms)
      : database_url_(std::move(database_url)), timeout_ms_(timeout_ms) {}

  // Session options of look-ups and health checks: they answer quickly or not
  // at all, also when the server hangs or the connection is half-open.
  PgSessionOptions Session() const;
  // An idle connection that is still good, else a new one; nullptr when
  // PostgreSQL cannot be reached. May block for up to the timeout.
  std::unique_ptr<PgConnection> Take();
  // Keeps a good connection for the next Take() (up to 4); drops the rest.
  void Return(std::unique_ptr<PgConnection> conn);

 private:
  const std::string database_url_;
  const int64_t timeout_ms_;
  std::mutex mu_;
  std::vector<std::unique_ptr<PgConnection>> idle_;  // guarded by mu_
};

// Answers GET /ingest/status/{id} for `id`: 404 for an id that is not one of
// ours, else runs the ledger look-up on `lookups` (503 when its queue is
// full) and answers from there (503 when PostgreSQL fails; "pending" when the
// ledger does not know the id yet but `pending` does; else 404). `connections`,
// `lookups` and `pending` must outlive the task (the service stops `lookups`
// before they go). Called on an io thread; never blocks.
void AnswerStatus(const std::string& id, const http::Responder& respond, LookupConnections& connections,
                  BlockingTaskPool& lookups, const PendingIds& pending);

}  // namespace nomnom
