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
#include "core/base/build_info.h"
#include "core/base/log.h"
#include "core/base/metrics.h"
#include "core/format/schema.h"
#include "core/http/http_server.h"
#include "core/pg/catalog_entity.h"
#include "core/queue/entity_subjects.h"
#include "core/queue/nats_client.h"
#include "daemon/dashboard.h"
#include "daemon/embedded_files.h"
#include "daemon/ingest_service.h"

namespace nomnom {
namespace {

// The command line, as parsed (DefineOptions), then turned into the
// configuration of the parts (FinishOptions).
struct DaemonFlags {
  http::ServerOptions http_opts;
  DaemonConfig cfg;
  NatsFlags nats;
  WorkerFlags worker;
  LogFlags log;
  std::string entities_dir, token_file;
  std::vector<std::string> allow_tables;
  int max_body_mb = 16, chunk_kb = 512, shutdown_timeout_s = 30;
  std::string publish_format = "binary";
  DashboardOptions dashboard;
  std::string entity_dir;  // resolved by FinishOptions
};

// Defines nomnomd's flags on app, each writing into f.
void DefineOptions(CLI::App& app, DaemonFlags& f) {
  app.set_version_flag("--version", VersionLine("nomnomd"));
  app.add_option("--listen", f.http_opts.listen, "Address to listen on (host:port); loopback unless told otherwise")
      ->envname("NOMNOM_LISTEN")
      ->capture_default_str();
  app.add_option("--db", f.cfg.database_url, "PostgreSQL URL (else the PG* variables)")->envname("DATABASE_URL");
  AddNatsOptions(&app, &f.nats);
  AddEntitiesOption(&app, &f.entities_dir);
  app.add_option("--entity", f.cfg.default_entity,
                 "Entity for requests without ?entity= (default: the only one, else Order)");
  app.add_option("--allow-table", f.allow_tables,
                 "An existing table ([schema.]name) that /ingest/*?table= may load into, its entity read from the "
                 "catalog at startup (repeatable; never nomnom's own tables)")
      ->envname("NOMNOM_ALLOW_TABLES")
      ->delimiter(',');
  app.add_option("--workers", f.cfg.workers, "Embedded workers (0: API only)")
      ->envname("NOMNOM_WORKERS")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  AddWorkerOptions(&app, &f.worker);
  app.add_option("--chunk-rows", f.cfg.chunk_max_rows, "Rows per published chunk")
      ->check(CLI::Range(size_t{1}, size_t{1000000}))
      ->capture_default_str();
  app.add_option("--chunk-kb", f.chunk_kb, "KB per published chunk (also capped by the NATS server's max_payload)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--linger-ms", f.cfg.linger_ms, "How long /ingest/message rows wait to share a chunk")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--publish-format", f.publish_format,
                 "How /ingest/batch and /ingest/message publish the rows of entities without derived entities: "
                 "binary (COPY tuples the workers load without parsing again) or ndjson (for workers older than the "
                 "binary format)")
      ->envname("NOMNOM_PUBLISH_FORMAT")
      ->check(CLI::IsMember({"binary", "ndjson"}))
      ->capture_default_str();
  app.add_option("--max-body-mb", f.max_body_mb, "Largest request body (413 above)")
      ->envname("NOMNOM_MAX_BODY_MB")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-connections", f.http_opts.max_connections,
                 "Open HTTP connections at most (a connection beyond gets 503 and is closed)")
      ->envname("NOMNOM_MAX_CONNECTIONS")
      ->check(CLI::Range(size_t{1}, size_t{1000000}))
      ->capture_default_str();
  app.add_option("--header-timeout-ms", f.http_opts.header_timeout_ms,
                 "A request header must arrive within this time (slow clients are cut off)")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  app.add_option("--http-threads", f.http_opts.threads, "HTTP io threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  auto* token_opt = app.add_option("--token", f.http_opts.bearer_token,
                                   "Bearer token required on /ingest/* (default: none; prefer --token-file or "
                                   "NOMNOM_API_TOKEN, which keep it out of the process list)")
                        ->envname("NOMNOM_API_TOKEN");
  app.add_option("--token-file", f.token_file, "File whose first line is the bearer token")
      ->envname("NOMNOM_API_TOKEN_FILE")
      ->excludes(token_opt);
  app.add_option("--dashboard-viewers", f.dashboard.max_viewers,
                 "Open /dashboard/events streams at most (a viewer beyond gets 503)")
      ->envname("NOMNOM_DASHBOARD_VIEWERS")
      ->check(CLI::Range(size_t{0}, size_t{10000}))
      ->capture_default_str();
  AddLogOptions(&app, &f.log);
  app.add_option("--shutdown-timeout", f.shutdown_timeout_s, "Seconds to drain on SIGTERM")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
}

// The entities (the directory's, and those of the --allow-table tables, read
// from PostgreSQL's catalog) and the default entity into f.cfg. Logs what is
// wrong and returns false.
bool LoadEntities(DaemonFlags& f) {
  DaemonConfig& cfg = f.cfg;
  auto dir = ResolveEntityDir(f.entities_dir);
  if (!dir.ok()) {
    LogError("{}", dir.status().message());
    return false;
  }
  f.entity_dir = *dir;
  auto entities = LoadEntityDir(*dir);
  if (!entities.ok()) {
    LogError("{}", entities.status().message());
    return false;
  }
  cfg.entities = std::move(entities).value();
  // Each entity's name is a subject token of its messages: a bad one is a
  // startup error, not a 503 on every post.
  if (Status s = CheckEntitySubjects(cfg.entities); !s.ok()) {
    LogError("{}", s.message());
    return false;
  }
  if (!f.allow_tables.empty()) {
    auto conn = PgConnection::Connect(cfg.database_url, "nomnomd-catalog");
    if (!conn.ok()) {
      LogError("--allow-table needs PostgreSQL at startup: {}", conn.status().message());
      return false;
    }
    for (const std::string& t : f.allow_tables) {
      auto e = TableEntityFromCatalog(**conn, t);
      if (!e.ok()) {
        LogError("--allow-table {}: {}", t, e.status().message());
        return false;
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
    return false;
  }
  return true;
}

// Set when the NATS connection is closed on purpose: its own close is not news.
std::atomic<bool> g_nats_closing{false};

// After parsing: logging, the token, the entities, and the derived settings of
// the parts. 0 to go on, else the exit code.
int FinishOptions(const CLI::App& app, DaemonFlags& f) {
  if (Status s = ApplyLogOptions(app, f.log, "nomnomd"); !s.ok()) {
    std::fprintf(stderr, "nomnomd: %s\n", s.message().c_str());
    return 2;
  }
  if (!f.token_file.empty()) {
    auto token = ReadTokenFile(f.token_file);
    if (!token.ok()) {
      LogError("{}", token.status().message());
      return 2;
    }
    f.http_opts.bearer_token = std::move(token).value();
  }
  if (!LoadEntities(f)) return 1;
  DaemonConfig& cfg = f.cfg;
  FinishWorkerOptions(&f.worker);
  cfg.worker = f.worker.opts;
  cfg.chunk_max_bytes = static_cast<size_t>(f.chunk_kb) << 10;
  cfg.publish_format = f.publish_format == "ndjson" ? PublishFormat::kNdjson : PublishFormat::kPgCopy1;
  f.http_opts.max_body_bytes = static_cast<size_t>(f.max_body_mb) << 20;
  FinishNatsOptions(&f.nats, "nomnomd");
  JetStreamConfig& js = f.nats.js;
  js.max_deliver = cfg.worker.max_deliver;
  cfg.duplicate_window_ms = js.duplicate_window_ms;
  cfg.ledger_retention_ms = LedgerRetentionMs(f.worker, f.nats);
  js.on_connection_event = [](const std::string& what) {
    if (!g_nats_closing.load()) LogWarn("NATS: {}", what);
  };
  f.http_opts.log = [](std::string_view what) { LogWarn("{}", what); };
  return 0;
}

// Blocks SIGTERM and SIGINT in every thread (the main thread takes them with
// sigwait) and ignores SIGPIPE. Returns the set.
sigset_t BlockSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

// Connects to JetStream and makes sure of its stream and consumer. NATS may
// come up after us (Kubernetes), and a JetStream cluster that is still
// forming ("no suitable peers") is waited for: both are retried until a signal
// arrives (then *exit_code is 0 and the result null). A stream or consumer
// defined differently is an error (*exit_code 1).
std::unique_ptr<JetStreamClient> ConnectJetStream(const JetStreamConfig& js, const sigset_t& signals, int* exit_code) {
  *exit_code = 0;
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
    if (sigtimedwait(&signals, nullptr, &ts) > 0) return nullptr;
  }
  for (int attempt = 0;; ++attempt) {
    Status s = client->EnsureTopology();
    if (s.ok()) break;
    if (s.code() == StatusCode::kSchemaMismatch || s.code() == StatusCode::kInvalidArgument) {
      LogError("{}", s.message());
      *exit_code = 1;
      return nullptr;
    }
    LogWarn("{} (retrying)", s.message());
    timespec ts{std::min(1 + attempt, 5), 0};
    if (sigtimedwait(&signals, nullptr, &ts) > 0) return nullptr;
  }
  LogInfo("JetStream stream {} ({}), dead letters {} ({}), consumer {}, max_payload {} bytes", js.stream,
          js.stream_subjects, js.dlq_stream, js.dlq_subjects, js.consumer, client->MaxPayload());
  return client;
}

// Serves until SIGTERM or SIGINT, then drains: the ingest service, its
// dashboard and the HTTP server, started in that order and stopped in reverse;
// then closes the NATS connection (client). Returns the exit code.
int Serve(DaemonFlags& f, std::unique_ptr<JetStreamClient>& client, const sigset_t& signals) {
  MetricsRegistry metrics;
  IngestService service(f.cfg, *client, metrics);
  // The dashboard outlives the server (whose handlers call into it).
  f.dashboard.bearer_token = f.http_opts.bearer_token;
  f.dashboard.status = [&service](http::Request&& req, http::Responder respond) {
    service.HandleStatus(std::move(req), std::move(respond));
  };
  Dashboard dash(f.dashboard, [&service] { return service.CollectDashboardInputs(); });
  http::Server server(f.http_opts);
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
  LogInfo("listening on {} (port {}), {} embedded worker(s), entities from {}{}", f.http_opts.listen, server.port(),
          f.cfg.workers, f.entity_dir, f.http_opts.bearer_token.empty() ? "" : ", bearer token required on /ingest");

  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  service.BeginDrain();
  dash.Stop();  // closes the event streams, which would hold the server's stop up
  server.Stop(f.shutdown_timeout_s * 1000);
  service.Shutdown(static_cast<int64_t>(f.shutdown_timeout_s) * 1000);
  g_nats_closing.store(true);
  client.reset();
  LogInfo("stopped");
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"nomnomd: HTTP ingestion API -> NATS JetStream -> workers -> PostgreSQL"};
  DaemonFlags flags;
  DefineOptions(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (int code = FinishOptions(app, flags); code != 0) return code;
  const sigset_t signals = BlockSignals();
  int code = 0;
  std::unique_ptr<JetStreamClient> client = ConnectJetStream(flags.nats.js, signals, &code);
  if (!client) return code;
  return Serve(flags, client, signals);
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
