// IngestService's probes and monitors' readers: GET /live, /ready, /health,
// /stats, /metrics and the dashboard's inputs. Answered at once from
// ServiceMonitor's last readings (daemon/service_monitor.h), but /health's and
// /stats' own quick database reads, which run on their task pools.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/base/log.h"
#include "core/base/utf8.h"
#include "core/http/probe_routes.h"
#include "core/worker/ledger.h"
#include "daemon/ingest_service.h"
#include "daemon/json_reply.h"

namespace nomnom {

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

json WorkerStates(const WorkerPool& pool) {
  json states = json::object();
  for (const auto& [st, n] : pool.StateCounts()) states[std::string(WorkerStateName(st))] = n;
  return states;
}

}  // namespace

// /live, /ready and /metrics answer through the shared probe bodies
// (core/http/probe_routes.h), as nomnomd always wrote them: /live's uptime the
// shortest decimal that reads back the same, /ready's members in the order
// below (status, reason, workers, worker_error).
void IngestService::HandleLive(http::Request&&, http::Responder respond) {
  http::Response r;
  r.body =
      http::LiveBody(std::chrono::duration<double>(Clock::now() - started_).count(), http::ProbeJson::kMembersByName);
  respond(std::move(r));
}

std::string IngestService::NotReadyReason() const {
  if (draining_.load()) return "draining";
  if (!ready_.load()) return "starting";
  if (!js_.IsConnected()) return "NATS disconnected";
  const auto [checked, exists] =
      monitor_.Read([](const MonitorSnapshot& snap) { return std::pair(snap.nats_checked, snap.stream_exists); });
  if (!checked) return "starting";
  if (!exists) return "stream " + js_.config().stream + " missing";
  return "";
}

void IngestService::HandleReady(http::Request&&, http::Responder respond) {
  // Readiness is the API's: a worker that cannot reach PostgreSQL does not
  // stop the API from storing rows in JetStream. The workers' states are
  // shown alongside (and in /metrics as nomnom_worker_state).
  http::Readiness readiness;
  readiness.reason = NotReadyReason();
  if (workers_.size() > 0) {
    readiness.fields.emplace_back("workers", DumpJson(WorkerStates(workers_)));
    if (const std::string err = workers_.BackingOffError(); !err.empty()) {
      readiness.fields.emplace_back("worker_error", DumpJson(json(err)));
    }
  }
  respond(http::ReadyResponse(readiness, http::ProbeJson::kInOrder));
}

void IngestService::HandleHealth(http::Request&&, http::Responder respond) {
  // A fresh check on /health's own thread (bounded by the look-up timeout),
  // so it reports PostgreSQL going away at once and never waits behind status
  // look-ups; when checks pile up, the monitor's last reading answers.
  auto answer = [this, respond](bool db_ok, const std::string& db_error) {
    const bool nats_ok = js_.IsConnected();
    json j;
    j["status"] = db_ok && nats_ok ? "healthy" : "unhealthy";
    j["database"] = db_ok ? "connected" : "unreachable";
    if (!db_ok && !db_error.empty()) j["database_error"] = db_error;
    j["nats"] = nats_ok ? "connected" : "unreachable";
    json names = json::array();
    for (const auto& e : config_.entities) names.push_back(e.name);
    j["entities"] = names;
    j["version"] = NOMNOM_VERSION;
    respond(JsonResponse(db_ok && nats_ok ? 200 : 503, j));
  };
  auto check = [this, answer] {
    auto conn = connections_.Take();
    if (!conn) {
      answer(false, "cannot connect");
      return;
    }
    auto err = conn->TryExec("SELECT 1");
    connections_.Return(std::move(conn));
    answer(!err, err ? err->message : std::string());
  };
  if (!health_.Submit(check)) {
    const auto [db_ok, db_error] =
        monitor_.Read([](const MonitorSnapshot& snap) { return std::pair(snap.db_ok, snap.db_error); });
    answer(db_ok, db_error);
  }
}

void IngestService::HandleStats(http::Request&&, http::Responder respond) {
  // The database totals are read fresh (a few counter rows: cheap) on the
  // look-up pool; if that is full or PostgreSQL does not answer, the monitor's
  // last reading is used.
  auto task = [this, respond] {
    std::optional<LedgerTotals> fresh;
    if (auto conn = connections_.Take()) {
      if (auto t = ReadLedgerTotals(*conn); t.ok()) fresh = *t;
      connections_.Return(std::move(conn));
    }
    RespondStats(respond, fresh);
  };
  if (!lookups_.Submit(task)) RespondStats(respond, std::nullopt);
}

void IngestService::RespondStats(const http::Responder& respond, const std::optional<LedgerTotals>& fresh) {
  json j;
  j["version"] = NOMNOM_VERSION;
  j["uptime_seconds"] = std::chrono::duration<double>(Clock::now() - started_).count();
  json api;
  api["messages_accepted"] = messages_accepted_.Value();
  api["messages_rejected"] = messages_rejected_.Value();
  api["batches_accepted"] = batches_accepted_.Value();
  api["rows_accepted"] = rows_accepted_.Value();
  api["rows_rejected"] = rows_rejected_.Value();
  api["chunks_published"] = metrics_.Counter("nomnom_jetstream_chunks_published_total", "").Value();
  api["publish_errors"] = metrics_.Counter("nomnom_jetstream_publish_errors_total", "").Value();
  api["duplicates"] = duplicates_.Value();
  j["api"] = api;
  const WorkerTotals t = workers_.Totals();
  json w;
  w["count"] = workers_.size();
  w["states"] = WorkerStates(workers_);
  w["messages_committed"] = t.messages_committed;
  w["rows_committed"] = t.rows_committed;
  w["rows_dead"] = t.rows_dead;
  w["messages_dead"] = t.messages_dead;
  w["redeliveries_skipped"] = t.duplicates_skipped;
  j["workers"] = w;
  monitor_.Read([&](const MonitorSnapshot& snap) {
    json js;
    js["connected"] = js_.IsConnected();
    js["stream"] = js_.config().stream;
    js["consumer"] = js_.config().consumer;
    if (snap.lag) {
      js["num_pending"] = snap.lag->num_pending;
      js["num_ack_pending"] = snap.lag->num_ack_pending;
      js["num_redelivered"] = snap.lag->num_redelivered;
      js["consumer_lag"] = snap.lag->Backlog();
    }
    if (snap.stream) {
      js["stream_messages"] = snap.stream->messages;
      js["stream_bytes"] = snap.stream->bytes;
    }
    j["jetstream"] = js;
    if (const std::optional<LedgerTotals>& totals = fresh ? fresh : snap.db_totals) {
      json db;
      db["rows_committed"] = totals->rows_committed;
      db["chunks_committed"] = totals->chunks_committed;
      db["rows_dead"] = totals->rows_dead;
      db["chunks_dead"] = totals->chunks_dead;
      db["dead_letters"] = totals->rows_dead + totals->chunks_dead;
      json by_entity = json::object();
      for (const auto& [name, e] : totals->by_entity) {
        json x;
        x["rows_committed"] = e.rows_committed;
        x["chunks_committed"] = e.chunks_committed;
        x["dead_letters"] = e.rows_dead + e.chunks_dead;
        if (!e.derived_rows.empty()) {
          // Nested: rows per table (the root's are the entity's rows).
          json tables = json::object();
          const auto root = std::find_if(config_.entities.begin(), config_.entities.end(),
                                         [&n = name](const Entity& c) { return c.name == n; });
          if (root != config_.entities.end()) tables[root->TableName()] = e.rows_committed;
          for (const auto& [table, rows] : e.derived_rows) tables[table] = rows;
          x["tables"] = std::move(tables);
        }
        by_entity[name] = std::move(x);
      }
      db["entities"] = std::move(by_entity);
      j["total_messages_processed"] = db["chunks_committed"];  // the seed's field
      j["database"] = db;
    }
    const auto& samples = snap.samples;
    auto rate = [&](size_t window, int which) -> double {
      if (samples.size() < 2) return 0;
      const auto& last = samples.back();
      const auto& first = samples.size() > window ? samples[samples.size() - 1 - window] : samples.front();
      const double dt = std::get<0>(last) - std::get<0>(first);
      if (dt <= 0) return 0;
      const double dv = which == 1 ? static_cast<double>(std::get<1>(last) - std::get<1>(first))
                                   : static_cast<double>(std::get<2>(last) - std::get<2>(first));
      return dv / dt;
    };
    json rates;
    rates["rows_accepted_per_second_10s"] = rate(10, 1);
    rates["rows_accepted_per_second_60s"] = rate(60, 1);
    rates["rows_committed_per_second_10s"] = rate(10, 2);
    rates["rows_committed_per_second_60s"] = rate(60, 2);
    j["rates"] = rates;
  });
  respond(JsonResponse(200, j));
}

DashboardInputs IngestService::CollectDashboardInputs() const {
  DashboardInputs in;
  in.monotonic_s = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  in.unix_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  in.time = UtcTimestamp();
  in.accepted = rows_accepted_.Value();
  in.rejected = rows_rejected_.Value();
  in.nats_connected = js_.IsConnected();
  in.stream = js_.config().stream;
  in.consumer = js_.config().consumer;
  std::optional<LedgerTotals> totals;
  std::vector<RecentDeadLetter> dead;
  monitor_.Read([&](const MonitorSnapshot& snap) {
    in.postgres_connected = snap.db_ok;
    in.postgres_error = snap.db_error;
    if (snap.lag) {
      in.consumer_pending = snap.lag->num_pending;
      in.consumer_ack_pending = snap.lag->num_ack_pending;
      in.consumer_redelivered = snap.lag->num_redelivered;
    }
    if (snap.stream) {
      in.stream_messages = snap.stream->messages;
      in.stream_bytes = snap.stream->bytes;
    }
    totals = snap.db_totals;
    in.db_read_s = snap.db_read_s;
    dead = snap.dead_letters;
    for (const auto& p : snap.processes) {
      in.processes.push_back(DashboardProcess{p.process, p.workers, p.states, p.error, p.rows_committed, p.age_s});
    }
  });
  // Configured entities first (in their order), then any other entity the
  // shared counters know (committed by another instance's workers).
  for (const auto& e : config_.entities) {
    DashboardEntityInput x;
    x.name = e.name;
    const EntityCounts& c = *entity_counts_.at(e.name);
    x.accepted = c.accepted.load(std::memory_order_relaxed);
    x.rejected = c.rejected.load(std::memory_order_relaxed);
    x.table = e.TableName();
    for (const Entity* d : DerivedEntities(config_.entities, e)) x.derived.emplace_back(d->TableName(), 0);
    in.entities.push_back(std::move(x));
  }
  if (totals) {
    in.committed_known = true;
    in.committed = totals->rows_committed;
    in.dead = totals->rows_dead + totals->chunks_dead;
    for (const auto& [entity_name, t] : totals->by_entity) {
      const std::string& name = entity_name;  // (a structured binding cannot be captured before C++20 in clang 14)
      auto it = std::find_if(in.entities.begin(), in.entities.end(), [&](const auto& x) { return x.name == name; });
      if (it == in.entities.end()) {
        DashboardEntityInput x;
        x.name = name;
        in.entities.push_back(std::move(x));
        it = std::prev(in.entities.end());
      }
      it->committed = t.rows_committed;
      it->dead = t.rows_dead + t.chunks_dead;
      for (const auto& [table, rows] : t.derived_rows) {
        auto d =
            std::find_if(it->derived.begin(), it->derived.end(), [&n = table](const auto& x) { return x.first == n; });
        if (d == it->derived.end()) {
          it->derived.emplace_back(table, rows);
        } else {
          d->second = rows;
        }
      }
    }
  }
  for (const auto& [st, n] : workers_.StateCounts()) in.worker_states.emplace_back(WorkerStateName(st), n);
  for (int i = 0; i < workers_.size(); ++i) {
    const IngestWorker& w = workers_.worker(i);
    const WorkerState st = w.state();
    in.workers.push_back(DashboardWorker{"worker-" + std::to_string(i), std::string(WorkerStateName(st)),
                                         st == WorkerState::kBackingOff ? w.last_error() : std::string()});
  }
  in.api_latency.bounds = api_latency_.bounds();
  in.api_latency.cumulative = api_latency_.CumulativeCounts();
  for (auto& d : dead) {
    // The id /ingest/status knows: the batch (a message's chunk is its batch).
    in.dead_letters.push_back(DashboardEvent{std::move(d.failed_at), d.batch_id.empty() ? d.msg_id : d.batch_id,
                                             std::move(d.entity), d.line, std::move(d.error)});
  }
  in.rejects = rejects_.Newest();
  return in;
}

void IngestService::HandleMetrics(http::Request&&, http::Responder respond) {
  monitor_.Read([&](const MonitorSnapshot& snap) {
    if (snap.lag) {
      metrics_.Gauge("nomnom_jetstream_consumer_pending", "Messages not yet delivered to a worker")
          .Set(static_cast<double>(snap.lag->num_pending));
      metrics_.Gauge("nomnom_jetstream_consumer_ack_pending", "Messages delivered, not yet acknowledged")
          .Set(static_cast<double>(snap.lag->num_ack_pending));
    }
    if (snap.stream) {
      metrics_.Gauge("nomnom_jetstream_stream_bytes", "Bytes stored in the main stream")
          .Set(static_cast<double>(snap.stream->bytes));
      metrics_.Gauge("nomnom_jetstream_stream_messages", "Messages stored in the main stream")
          .Set(static_cast<double>(snap.stream->messages));
    }
    metrics_.Gauge("nomnom_database_up", "1 while PostgreSQL answered the last health check").Set(snap.db_ok ? 1 : 0);
  });
  // The limit the stream was created with (--stream-max-mb; 0: none): with
  // the bytes above, how full it is (at 100 % the API answers 507).
  metrics_.Gauge("nomnom_jetstream_stream_max_bytes", "The main stream's byte limit (--stream-max-mb; 0: none)")
      .Set(static_cast<double>(std::max<int64_t>(0, js_.config().max_bytes)));
  metrics_.Gauge("nomnom_up_seconds", "Seconds since this process started")
      .Set(std::chrono::duration<double>(Clock::now() - started_).count());
  metrics_.Gauge("nomnom_ready", "1 while ready to accept ingest").Set(NotReadyReason().empty() ? 1 : 0);
  workers_.ExportMetrics();
  respond(http::MetricsResponse(metrics_.Render()));
}

}  // namespace nomnom
