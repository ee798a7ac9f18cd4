#include "core/worker/ledger.h"

#include "core/format/rejects.h"
#include "core/queue/ingest_format.h"

namespace nomnom {

namespace {

const std::string kLedger(kLedgerTable);
const std::string kDead(kDeadLetterTable);

// A PostgreSQL text[] literal of the given strings.
std::string TextArray(const std::vector<std::string>& items) {
  std::string s = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) s += ',';
    s += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
    s += '"';
  }
  return s + "}";
}

}  // namespace

Status EnsureBookkeepingTables(PgConnection& conn) {
  // One creator at a time (an advisory lock for the transaction), so
  // processes starting together do not collide on the catalog.
  const std::string sql =
      std::string("BEGIN; SELECT pg_advisory_xact_lock(7034165817331208025);") + " CREATE TABLE IF NOT EXISTS " +
      kLedger +
      " (msg_id text PRIMARY KEY, batch_id text NOT NULL, chunk_index int NOT NULL,"
      " chunk_count int NOT NULL, entity text NOT NULL, rows_committed int NOT NULL,"
      " rows_dead int NOT NULL DEFAULT 0, dead boolean NOT NULL DEFAULT false,"
      " stream_seq bigint, committed_at timestamptz NOT NULL DEFAULT now());"
      " CREATE INDEX IF NOT EXISTS nomnom_ledger_batch_idx ON " +
      kLedger +
      " (batch_id);"
      " CREATE INDEX IF NOT EXISTS nomnom_ledger_committed_idx ON " +
      kLedger + " (committed_at);" + " CREATE TABLE IF NOT EXISTS " + kDead +
      " (id bigserial PRIMARY KEY, msg_id text NOT NULL, batch_id text, entity text,"
      " line int, error text NOT NULL, raw text, deliveries int,"
      " failed_at timestamptz NOT NULL DEFAULT now());"
      " CREATE INDEX IF NOT EXISTS nomnom_dead_letters_batch_idx ON " +
      kDead +
      " (batch_id);"
      // Totals for /stats, kept by a trigger in the transaction that inserts
      // the ledger rows (so they commit with the data), in 16 slots per entity
      // chosen by backend so that concurrent workers rarely wait on one row.
      // Counted once when the table is created, from the ledger so far.
      " DO $nn$ BEGIN IF to_regclass('" +
      std::string(kCountersTable) + "') IS NULL THEN CREATE TABLE " + std::string(kCountersTable) +
      " (entity text NOT NULL, slot int NOT NULL, chunks_committed bigint NOT NULL DEFAULT 0,"
      " rows_committed bigint NOT NULL DEFAULT 0, chunks_dead bigint NOT NULL DEFAULT 0,"
      " rows_dead bigint NOT NULL DEFAULT 0, PRIMARY KEY (entity, slot));"
      " INSERT INTO " +
      std::string(kCountersTable) +
      " SELECT entity, 0, count(*) FILTER (WHERE NOT dead), coalesce(sum(rows_committed), 0),"
      " count(*) FILTER (WHERE dead), coalesce(sum(rows_dead), 0) FROM " +
      kLedger +
      " GROUP BY entity; END IF; END $nn$;"
      " CREATE OR REPLACE FUNCTION nomnom_count_ledger() RETURNS trigger LANGUAGE plpgsql AS $nn$ BEGIN"
      " INSERT INTO " +
      std::string(kCountersTable) +
      " AS c (entity, slot, chunks_committed, rows_committed, chunks_dead, rows_dead)"
      " SELECT entity, pg_backend_pid() % 16, count(*) FILTER (WHERE NOT dead), coalesce(sum(rows_committed), 0),"
      " count(*) FILTER (WHERE dead), coalesce(sum(rows_dead), 0) FROM nomnom_new_rows GROUP BY entity"
      " ON CONFLICT (entity, slot) DO UPDATE SET chunks_committed = c.chunks_committed + EXCLUDED.chunks_committed,"
      " rows_committed = c.rows_committed + EXCLUDED.rows_committed, chunks_dead = c.chunks_dead + "
      "EXCLUDED.chunks_dead,"
      " rows_dead = c.rows_dead + EXCLUDED.rows_dead; RETURN NULL; END $nn$;"
      " CREATE OR REPLACE TRIGGER nomnom_ledger_count AFTER INSERT ON " +
      kLedger +
      " REFERENCING NEW TABLE AS nomnom_new_rows FOR EACH STATEMENT EXECUTE FUNCTION nomnom_count_ledger();"
      // Derived tables' rows, in slots like the counters above.
      " CREATE TABLE IF NOT EXISTS " +
      std::string(kTableCountersTable) +
      " (entity text NOT NULL, tbl text NOT NULL, slot int NOT NULL, rows_committed bigint NOT NULL DEFAULT 0,"
      " PRIMARY KEY (entity, tbl, slot));"
      " COMMIT";
  for (int attempt = 0;; ++attempt) {
    auto err = conn.TryExec(sql);
    if (!err) return Status::Ok();
    conn.TryExec("ROLLBACK");
    // Tables made by an older nomnom without the lock can still collide once.
    if ((err->sqlstate == "23505" || err->sqlstate == "42P07" || err->sqlstate == "XX000") && attempt < 3) continue;
    return ToStatus(*err, "cannot create the bookkeeping tables");
  }
}

Result<LedgerTotals> ReadLedgerTotals(PgConnection& conn) {
  auto r = conn.Exec(std::string("SELECT to_regclass('") + std::string(kCountersTable) + "') IS NOT NULL");
  if (!r.ok()) return r.status();
  LedgerTotals t;
  if (r->rows.at(0).at(0).value_or("f") != "t") return t;  // no worker ran yet
  auto sums = conn.Exec(std::string("SELECT entity, sum(chunks_committed), sum(rows_committed), sum(chunks_dead),"
                                    " sum(rows_dead) FROM ") +
                        std::string(kCountersTable) + " GROUP BY entity");
  if (!sums.ok()) return sums.status();
  for (const auto& row : sums->rows) {
    EntityTotals& e = t.by_entity[row.at(0).value_or("")];
    e.chunks_committed = std::stoull(row.at(1).value_or("0"));
    e.rows_committed = std::stoull(row.at(2).value_or("0"));
    e.chunks_dead = std::stoull(row.at(3).value_or("0"));
    e.rows_dead = std::stoull(row.at(4).value_or("0"));
    t.chunks_committed += e.chunks_committed;
    t.rows_committed += e.rows_committed;
    t.chunks_dead += e.chunks_dead;
    t.rows_dead += e.rows_dead;
  }
  auto derived = conn.Exec(std::string("SELECT to_regclass('") + std::string(kTableCountersTable) + "') IS NOT NULL");
  if (!derived.ok()) return derived.status();
  if (derived->rows.at(0).at(0).value_or("f") != "t") return t;  // made by an older nomnom, no worker since
  auto tables = conn.Exec(std::string("SELECT entity, tbl, sum(rows_committed) FROM ") +
                          std::string(kTableCountersTable) + " GROUP BY entity, tbl");
  if (!tables.ok()) return tables.status();
  for (const auto& row : tables->rows) {
    t.by_entity[row.at(0).value_or("")].derived_rows[row.at(1).value_or("")] = std::stoull(row.at(2).value_or("0"));
  }
  return t;
}

std::optional<PgError> AddDerivedTableRows(PgConnection& conn, std::string_view entity,
                                           const std::vector<std::pair<std::string, uint64_t>>& table_rows) {
  // One statement for every table: (entity, tables[], rows[]) unnested.
  std::string tables = "{", rows = "{";
  for (const auto& [table, n] : table_rows) {
    if (n == 0) continue;
    if (tables.size() > 1) {
      tables += ",";
      rows += ",";
    }
    tables += '"';
    for (char c : table) {
      if (c == '"' || c == '\\') tables += '\\';
      tables += c;
    }
    tables += '"';
    rows += std::to_string(n);
  }
  if (tables.size() == 1) return std::nullopt;
  tables += "}";
  rows += "}";
  return conn.TryExecParams(std::string("INSERT INTO ") + std::string(kTableCountersTable) +
                                " AS c (entity, tbl, slot, rows_committed)"
                                " SELECT $1, t.tbl, pg_backend_pid() % 16, t.n FROM unnest($2::text[], $3::bigint[])"
                                " AS t(tbl, n) ON CONFLICT (entity, tbl, slot) DO UPDATE SET"
                                " rows_committed = c.rows_committed + EXCLUDED.rows_committed",
                            {std::string(entity), tables, rows});
}

Result<std::vector<RecentDeadLetter>> ReadRecentDeadLetters(PgConnection& conn, size_t limit) {
  auto r = conn.ExecParams(std::string("SELECT to_regclass($1) IS NOT NULL"), {std::string(kDeadLetterTable)});
  if (!r.ok()) return r.status();
  std::vector<RecentDeadLetter> out;
  if (r->rows.at(0).at(0).value_or("f") != "t") return out;
  auto rows = conn.ExecParams(
      std::string("SELECT to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), msg_id,"
                  " coalesce(batch_id, ''), coalesce(entity, ''), coalesce(line, 0), left(error, 300) FROM ") +
          kDead + " ORDER BY id DESC LIMIT $1",
      {std::to_string(limit)});
  if (!rows.ok()) return rows.status();
  for (const auto& row : rows->rows) {
    RecentDeadLetter d;
    d.failed_at = row.at(0).value_or("");
    d.msg_id = row.at(1).value_or("");
    d.batch_id = row.at(2).value_or("");
    d.entity = row.at(3).value_or("");
    d.line = std::stoull(row.at(4).value_or("0"));
    d.error = row.at(5).value_or("");
    out.push_back(std::move(d));
  }
  return out;
}

Status WriteWorkerHeartbeat(PgConnection& conn, const WorkerHeartbeat& hb) {
  const std::string table(kWorkersTable);
  const std::string upsert =
      "INSERT INTO " + table +
      " (process, workers, states, error, rows_committed, rows_dead, seen_at) VALUES ($1, $2, $3, $4, $5, $6, now())"
      " ON CONFLICT (process) DO UPDATE SET workers = EXCLUDED.workers, states = EXCLUDED.states,"
      " error = EXCLUDED.error, rows_committed = EXCLUDED.rows_committed, rows_dead = EXCLUDED.rows_dead,"
      " seen_at = now()";
  const std::vector<std::optional<std::string>> params = {
      EscapeInvalidUtf8(hb.process), std::to_string(hb.workers),        EscapeInvalidUtf8(hb.states),
      EscapeInvalidUtf8(hb.error),   std::to_string(hb.rows_committed), std::to_string(hb.rows_dead)};
  auto err = conn.TryExecParams(upsert, params);
  if (err && err->sqlstate == "42P01") {  // undefined_table: create it, then again
    if (auto e = conn.TryExec("CREATE TABLE IF NOT EXISTS " + table +
                              " (process text PRIMARY KEY, workers int NOT NULL, states text NOT NULL,"
                              " error text NOT NULL DEFAULT '', rows_committed bigint NOT NULL DEFAULT 0,"
                              " rows_dead bigint NOT NULL DEFAULT 0, seen_at timestamptz NOT NULL DEFAULT now())");
        e && e->sqlstate != "23505" && e->sqlstate != "42P07") {
      return ToStatus(*e, "cannot create " + table);
    }
    err = conn.TryExecParams(upsert, params);
  }
  if (err) return ToStatus(*err, "cannot write the worker heartbeat");
  if (auto e = conn.TryExec("DELETE FROM " + table + " WHERE seen_at < now() - interval '1 hour'")) {
    return ToStatus(*e, "cannot prune " + table);
  }
  return Status::Ok();
}

Result<std::vector<WorkerHeartbeat>> ReadWorkerHeartbeats(PgConnection& conn, int max_age_s) {
  auto r = conn.ExecParams(std::string("SELECT to_regclass($1) IS NOT NULL"), {std::string(kWorkersTable)});
  if (!r.ok()) return r.status();
  std::vector<WorkerHeartbeat> out;
  if (r->rows.at(0).at(0).value_or("f") != "t") return out;
  auto rows = conn.ExecParams(
      "SELECT process, workers, states, error, rows_committed, rows_dead,"
      " extract(epoch FROM now() - seen_at)::float8 FROM " +
          std::string(kWorkersTable) + " WHERE seen_at > now() - make_interval(secs => $1::float8) ORDER BY process",
      {std::to_string(max_age_s)});
  if (!rows.ok()) return rows.status();
  for (const auto& row : rows->rows) {
    WorkerHeartbeat hb;
    hb.process = row.at(0).value_or("");
    hb.workers = std::stoi(row.at(1).value_or("0"));
    hb.states = row.at(2).value_or("");
    hb.error = row.at(3).value_or("");
    hb.rows_committed = std::stoull(row.at(4).value_or("0"));
    hb.rows_dead = std::stoull(row.at(5).value_or("0"));
    hb.age_s = std::stod(row.at(6).value_or("0"));
    out.push_back(std::move(hb));
  }
  return out;
}

Result<uint64_t> PruneLedger(PgConnection& conn, int64_t older_than_ms, uint64_t max_rows) {
  auto r =
      conn.ExecParams(std::string("DELETE FROM ") + kLedger + " WHERE ctid = ANY(ARRAY(SELECT ctid FROM " + kLedger +
                          " WHERE committed_at < now() - make_interval(secs => $1::float8 / 1000)" + " LIMIT $2))",
                      {std::to_string(older_than_ms), std::to_string(max_rows)});
  if (!r.ok()) return r.status();
  return static_cast<uint64_t>(std::stoull(r->command_tuples.empty() ? "0" : r->command_tuples));
}

Result<IngestStatus> LookupIngestStatus(PgConnection& conn, std::string_view id) {
  IngestStatus st;
  auto key = ParseStatusId(id);
  if (!key) return st;  // kUnknown
  // Before any worker ran, the tables do not exist: nothing is committed yet.
  auto exists = conn.Exec(std::string("SELECT to_regclass('") + kLedger + "') IS NOT NULL AND to_regclass('" + kDead +
                          "') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  if (exists->rows.at(0).at(0).value_or("f") != "t") return st;
  auto ledger =
      conn.ExecParams(std::string("SELECT count(*) FILTER (WHERE NOT dead), max(chunk_count), "
                                  "coalesce(sum(rows_committed), 0), to_char(max(committed_at) AT TIME ZONE 'UTC', "
                                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), count(*) FILTER (WHERE dead), "
                                  "coalesce(sum(rows_committed + rows_dead), 0) FROM ") +
                          kLedger + " WHERE batch_id = $1",
                      {key->batch_id});
  if (!ledger.ok()) return ledger.status();
  const auto& row = ledger->rows.at(0);
  const uint64_t committed = std::stoull(row[0].value_or("0"));
  const uint64_t total = std::stoull(row[1].value_or("0"));
  const uint64_t dead_chunks = std::stoull(row[4].value_or("0"));
  st.chunks_committed = committed;
  st.chunks_total = total;
  st.rows = std::stoull(row[2].value_or("0"));
  st.committed_at = row[3].value_or("");
  const uint64_t chunk_rows = std::stoull(row[5].value_or("0"));
  if (key->kind == StatusKey::Kind::kMessage && total > 0) {
    // A message id names row i of a one-chunk batch: reject ids that cannot
    // exist (a batch of several chunks, or a row past the chunk's end).
    if (total != 1 || (dead_chunks == 0 && key->row >= chunk_rows)) return IngestStatus{};
  }
  std::string dead_sql =
      std::string("SELECT count(*), (array_agg(error ORDER BY id))[1] FROM ") + kDead + " WHERE batch_id = $1";
  std::vector<std::optional<std::string>> params{key->batch_id};
  if (key->kind == StatusKey::Kind::kMessage) {
    // The row's own dead letter (line is 1-based), or its whole chunk's.
    dead_sql += " AND (line IS NULL OR line = $2)";
    params.push_back(std::to_string(key->row + 1));
  }
  auto dead = conn.ExecParams(dead_sql, params);
  if (!dead.ok()) return dead.status();
  st.rows_dead = std::stoull(dead->rows.at(0).at(0).value_or("0"));
  st.error = dead->rows.at(0).at(1).value_or("");
  if (key->kind == StatusKey::Kind::kMessage) {
    if (st.rows_dead > 0) {
      st.state = IngestStatus::State::kDead;
      st.rows = 0;
    } else if (committed > 0) {
      st.state = IngestStatus::State::kProcessed;
      st.rows = 1;
    }
    return st;
  }
  if (dead_chunks > 0 || (st.rows_dead > 0 && committed + dead_chunks == total && st.rows == 0)) {
    st.state = IngestStatus::State::kDead;
  } else if (total > 0 && committed == total) {
    st.state = IngestStatus::State::kProcessed;
  } else if (committed > 0) {
    st.state = IngestStatus::State::kPending;  // some chunks committed, others not yet
  }
  return st;
}

std::string UnnamedChunkKey(std::string_view stream, uint64_t stream_seq, int64_t stored_ns) {
  return "seq:" + EscapeInvalidUtf8(stream) + ":" + std::to_string(stream_seq) + ":" + std::to_string(stored_ns);
}

Result<std::vector<std::string>> FindInLedger(PgConnection& conn, const std::vector<std::string>& ids) {
  std::vector<std::string> found;
  if (ids.empty()) return found;
  auto rows = conn.ExecParams("SELECT msg_id FROM " + kLedger + " WHERE msg_id = ANY($1::text[])", {TextArray(ids)});
  if (!rows.ok()) return rows.status();
  for (const auto& row : rows->rows) found.push_back(row.at(0).value_or(""));
  return found;
}

std::optional<PgError> InsertLedgerRows(PgConnection& conn, const std::vector<LedgerRow>& rows, bool* conflict) {
  *conflict = false;
  if (rows.empty()) return std::nullopt;
  constexpr size_t kCols = 9;
  std::string sql = "INSERT INTO " + kLedger +
                    " (msg_id, batch_id, chunk_index, chunk_count, entity, rows_committed, rows_dead, dead, stream_seq)"
                    " VALUES ";
  std::vector<std::optional<std::string>> params;
  params.reserve(rows.size() * kCols);
  for (size_t i = 0; i < rows.size(); ++i) {
    const LedgerRow& r = rows[i];
    const size_t base = params.size();
    sql += (i == 0 ? "(" : ", (");
    for (size_t k = 1; k <= kCols; ++k) sql += "$" + std::to_string(base + k) + (k < kCols ? ", " : ")");
    params.emplace_back(r.msg_id);
    params.emplace_back(r.batch_id);
    params.emplace_back(std::to_string(r.chunk_index));
    params.emplace_back(std::to_string(r.chunk_count));
    params.emplace_back(r.entity);
    params.emplace_back(std::to_string(r.rows_committed));
    params.emplace_back(std::to_string(r.rows_dead));
    params.emplace_back(r.dead ? "true" : "false");
    params.emplace_back(std::to_string(r.stream_seq));
  }
  sql += " ON CONFLICT (msg_id) DO NOTHING";
  PgRows result;
  if (auto err = conn.TryExecParams(sql, params, &result)) return err;
  if (result.command_tuples != std::to_string(rows.size())) {
    *conflict = true;
    PgError dup;
    dup.sqlstate = "23505";  // unique_violation: what it is
    dup.message = "some of these chunks are in the ledger already (committed by another worker meanwhile)";
    return dup;
  }
  return std::nullopt;
}

std::optional<PgError> InsertDeadLetter(PgConnection& conn, const DeadLetterRow& row) {
  return conn.TryExecParams(
      "INSERT INTO " + kDead +
          " (msg_id, batch_id, entity, line, error, raw, deliveries) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      {row.msg_id, row.batch_id, row.entity,
       row.line ? std::optional<std::string>(std::to_string(*row.line)) : std::nullopt, EscapeInvalidUtf8(row.error),
       EscapeInvalidUtf8(row.raw), std::to_string(row.deliveries)});
}

Result<bool> DeadLetterWholeChunk(PgConnection& conn, const LedgerRow& ledger, const DeadLetterRow& dead) {
  // Both rows or neither: the dead letter is inserted only when the ledger
  // row was, so a chunk another worker committed meanwhile is left alone.
  const std::string sql = "WITH l AS (INSERT INTO " + kLedger +
                          " (msg_id, batch_id, chunk_index, chunk_count, entity, rows_committed, rows_dead, dead,"
                          " stream_seq) VALUES ($1, $2, $3, $4, $5, 0, 0, true, $6) ON CONFLICT (msg_id) DO NOTHING"
                          " RETURNING 1) INSERT INTO " +
                          kDead +
                          " (msg_id, batch_id, entity, line, error, raw, deliveries)"
                          " SELECT $1, $2, $5, NULL, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM l)";
  // The ledger's batch_id is NOT NULL: a chunk without a batch header has ''.
  auto r = conn.ExecParams(
      sql, {ledger.msg_id, ledger.batch_id, std::to_string(ledger.chunk_index), std::to_string(ledger.chunk_count),
            ledger.entity, std::to_string(ledger.stream_seq), EscapeInvalidUtf8(dead.error),
            EscapeInvalidUtf8(dead.raw), std::to_string(dead.deliveries)});
  if (!r.ok()) return r.status();
  return r->command_tuples == "1";
}

}  // namespace nomnom
