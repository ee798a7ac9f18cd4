// nomnomd: the HTTP ingestion daemon. See daemon/ingest_service.h and README.md.
//
// Configuration: flags, or the seed system's environment variables
// (DATABASE_URL, NATS_URL, NATS_STREAM, NATS_CONSUMER, NOMNOM_LOG_LEVEL or
// RUST_LOG, NOMNOM_API_TOKEN, ...; see --help). SIGTERM/SIGINT drain
// gracefully: /ready turns 503, new ingest requests get 503, requests in
// flight finish, publishes are acknowledged, workers commit and ack what they
// hold, then the process exits 0.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>

#include "cli/service_options.h"
#include "core/base/log.h"
#include "core/base/metrics.h"
#include "core/format/schema.h"
#include "core/http/http_server.h"
#include "core/pg/catalog_entity.h"
#include "core/queue/nats_client.h"
#include "daemon/dashboard.h"
#include "daemon/embedded_files.h"
#include "daemon/ingest_service.h"

namespace nomnom {
namespace {

int Main(int argc, char** argv) {
  CLI::App app{"nomnomd: HTTP ingestion API -> NATS JetStream -> workers -> PostgreSQL"};
  app.set_version_flag("--version", std::string("nomnomd ") + NOMNOM_VERSION);
  http::ServerOptions http_opts;
  DaemonConfig cfg;
  NatsFlags nats;
  WorkerFlags worker;
  LogFlags log;
  std::string entities_dir, token_file;
  std::vector<std::string> allow_tables;
  int max_body_mb = 16, chunk_kb = 512, shutdown_timeout_s = 30;
  DashboardOptions dashboard;

  app.add_option("--listen", http_opts.listen, "Address to listen on (host:port); loopback unless told otherwise")
      ->envname("NOMNOM_LISTEN")
      ->capture_default_str();
  app.add_option("--db", cfg.database_url, "PostgreSQL URL (else the PG* variables)")->envname("DATABASE_URL");
  AddNatsOptions(&app, &nats);
  AddEntitiesOption(&app, &entities_dir);
  app.add_option("--entity", cfg.default_entity,
                 "Entity for requests without ?entity= (default: the only one, else Order)");
  app.add_option("--allow-table", allow_tables,
                 "An existing table ([schema.]name) that /ingest/*?table= may load into, its entity read from the "
                 "catalog at startup (repeatable; never nomnom's own tables)")
      ->envname("NOMNOM_ALLOW_TABLES")
      ->delimiter(',');
  app.add_option("--workers", cfg.workers, "Embedded workers (0: API only)")
      ->envname("NOMNOM_WORKERS")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  AddWorkerOptions(&app, &worker);
  app.add_option("--chunk-rows", cfg.chunk_max_rows, "Rows per published chunk")
      ->check(CLI::Range(size_t{1}, size_t{1000000}))
      ->capture_default_str();
  app.add_option("--chunk-kb", chunk_kb, "KB per published chunk (also capped by the NATS server's max_payload)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--linger-ms", cfg.linger_ms, "How long /ingest/message rows wait to share a chunk")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  std::string publish_format = "binary";
  app.add_option("--publish-format", publish_format,
                 "How /ingest/batch and /ingest/message publish the rows of entities without derived entities: "
                 "binary (COPY tuples the workers load without parsing again) or ndjson (for workers older than the "
                 "binary format)")
      ->envname("NOMNOM_PUBLISH_FORMAT")
      ->check(CLI::IsMember({"binary", "ndjson"}))
      ->capture_default_str();
  app.add_option("--max-body-mb", max_body_mb, "Largest request body (413 above)")
      ->envname("NOMNOM_MAX_BODY_MB")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-connections", http_opts.max_connections,
                 "Open HTTP connections at most (a connection beyond gets 503 and is closed)")
      ->envname("NOMNOM_MAX_CONNECTIONS")
      ->check(CLI::Range(size_t{1}, size_t{1000000}))
      ->capture_default_str();
  app.add_option("--header-timeout-ms", http_opts.header_timeout_ms,
                 "A request header must arrive within this time (slow clients are cut off)")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  app.add_option("--http-threads", http_opts.threads, "HTTP io threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  auto* token_opt = app.add_option("--token", http_opts.bearer_token,
                                   "Bearer token required on /ingest/* (default: none; prefer --token-file or "
                                   "NOMNOM_API_TOKEN, which keep it out of the process list)")
                        ->envname("NOMNOM_API_TOKEN");
  app.add_option("--token-file", token_file, "File whose first line is the bearer token")
      ->envname("NOMNOM_API_TOKEN_FILE")
      ->excludes(token_opt);
  app.add_option("--dashboard-viewers", dashboard.max_viewers,
                 "Open /dashboard/events streams at most (a viewer beyond gets 503)")
      ->envname("NOMNOM_DASHBOARD_VIEWERS")
      ->check(CLI::Range(size_t{0}, size_t{10000}))
      ->capture_default_str();
  AddLogOptions(&app, &log);
  app.add_option("--shutdown-timeout", shutdown_timeout_s, "Seconds to drain on SIGTERM")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (Status s = ApplyLogOptions(app, log, "nomnomd"); !s.ok()) {
    std::fprintf(stderr, "nomnomd: %s\n", s.message().c_str());
    return 2;
  }
  if (!token_file.empty()) {
    auto token = ReadTokenFile(token_file);
    if (!token.ok()) {
      LogError("{}", token.status().message());
      return 2;
    }
    http_opts.bearer_token = std::move(token).value();
  }

  auto dir = ResolveEntityDir(entities_dir);
  if (!dir.ok()) {
    LogError("{}", dir.status().message());
    return 1;
  }
  auto entities = LoadEntityDir(*dir);
  if (!entities.ok()) {
    LogError("{}", entities.status().message());
    return 1;
  }
  cfg.entities = std::move(entities).value();
  if (!allow_tables.empty()) {
    auto conn = PgConnection::Connect(cfg.database_url, "nomnomd-catalog");
    if (!conn.ok()) {
      LogError("--allow-table needs PostgreSQL at startup: {}", conn.status().message());
      return 1;
    }
    for (const std::string& t : allow_tables) {
      auto e = TableEntityFromCatalog(**conn, t);
      if (!e.ok()) {
        LogError("--allow-table {}: {}", t, e.status().message());
        return 1;
      }
      cfg.allowed_tables[t] = e->name;
      cfg.allowed_tables[e->table_schema + "." + e->table] = e->name;
      LogInfo("serving table {}.{} as ?table={}", e->table_schema, e->table, t);
      if (FindEntity(cfg.entities, e->name) == nullptr) cfg.entities.push_back(std::move(e).value());
    }
  }
  if (cfg.default_entity.empty()) {
    cfg.default_entity = cfg.entities.size() == 1 ? cfg.entities[0].name : "Order";
  }
  if (FindEntity(cfg.entities, cfg.default_entity) == nullptr) {
    LogError("default entity '{}' is not defined in {}", cfg.default_entity, *dir);
    return 1;
  }
  FinishWorkerOptions(&worker);
  cfg.worker = worker.opts;
  cfg.chunk_max_bytes = static_cast<size_t>(chunk_kb) << 10;
  cfg.publish_format = publish_format == "ndjson" ? PublishFormat::kNdjson : PublishFormat::kPgCopy1;
  http_opts.max_body_bytes = static_cast<size_t>(max_body_mb) << 20;
  FinishNatsOptions(&nats, "nomnomd");
  JetStreamConfig& js = nats.js;
  js.max_deliver = cfg.worker.max_deliver;
  cfg.duplicate_window_ms = js.duplicate_window_ms;
  cfg.ledger_retention_ms = LedgerRetentionMs(worker, nats);
  static std::atomic<bool> closing{false};  // the connection's own close is not news
  js.on_connection_event = [](const std::string& what) {
    if (!closing.load()) LogWarn("NATS: {}", what);
  };
  http_opts.log = [](std::string_view what) { LogWarn("{}", what); };

  // Signals are handled by this thread (sigwait); block them everywhere else.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // NATS may come up after us (Kubernetes): keep trying, not ready meanwhile.
  std::unique_ptr<JetStreamClient> client;
  for (int attempt = 0;; ++attempt) {
    auto c = JetStreamClient::Connect(js);
    if (c.ok()) {
      client = std::move(c).value();
      break;
    }
    if (attempt == 0) {
      LogWarn("{} (retrying)", c.status().message());
    } else {
      LogDebug("{} (retrying)", c.status().message());
    }
    timespec ts{1, 0};
    if (sigtimedwait(&signals, nullptr, &ts) > 0) return 0;
  }
  // A JetStream cluster that is still forming ("no suitable peers") is
  // waited for; a stream or consumer defined differently is an error.
  for (int attempt = 0;; ++attempt) {
    Status s = client->EnsureTopology();
    if (s.ok()) break;
    if (s.code() == StatusCode::kSchemaMismatch || s.code() == StatusCode::kInvalidArgument) {
      LogError("{}", s.message());
      return 1;
    }
    LogWarn("{} (retrying)", s.message());
    timespec ts{std::min(1 + attempt, 5), 0};
    if (sigtimedwait(&signals, nullptr, &ts) > 0) return 0;
  }
  LogInfo("JetStream stream {} ({}), dead letters {} ({}), consumer {}, max_payload {} bytes", js.stream,
          js.stream_subjects, js.dlq_stream, js.dlq_subjects, js.consumer, client->MaxPayload());

  MetricsRegistry metrics;
  IngestService service(cfg, *client, metrics);
  // The dashboard outlives the server (whose handlers call into it).
  dashboard.bearer_token = http_opts.bearer_token;
  dashboard.status = [&service](http::Request&& req, http::Responder respond) {
    service.HandleStatus(std::move(req), std::move(respond));
  };
  Dashboard dash(dashboard, [&service] { return service.CollectDashboardInputs(); });
  http::Server server(http_opts);
  http::embedded::ServeEmbeddedFiles(server);
  service.Register(server);
  dash.Register(server);
  if (Status s = server.Start(); !s.ok()) {
    LogError("{}", s.message());
    return 1;
  }
  service.Start();
  dash.Start();
  service.SetReady(true);
  LogInfo("listening on {} (port {}), {} embedded worker(s), entities from {}{}", http_opts.listen, server.port(),
          cfg.workers, *dir, http_opts.bearer_token.empty() ? "" : ", bearer token required on /ingest");

  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  service.BeginDrain();
  dash.Stop();  // closes the event streams, which would hold the server's stop up
  server.Stop(shutdown_timeout_s * 1000);
  service.Shutdown(static_cast<int64_t>(shutdown_timeout_s) * 1000);
  closing.store(true);
  client.reset();
  LogInfo("stopped");
  return 0;
}

}  // namespace
}  // namespace nomnom

int main(int argc, char** argv) {
  try {
    return nomnom::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nomnomd: internal error: %s\n", e.what());
    return 1;
  }
}
