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
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "core/ingest_worker.h"
#include "core/metrics.h"
#include "core/nats_client.h"
#include "core/schema.h"
#include "core/table_setup.h"
#include "daemon/http_server.h"
#include "daemon/ingest_service.h"

namespace nomnom {
namespace {

int level = 1;  // 0 debug, 1 info, 2 warn, 3 error

void Log(int lvl, const std::string& msg) {
  if (lvl < level) return;
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::fprintf(stderr, "%s %s nomnomd: %s\n", ts, kNames[lvl], msg.c_str());
}

int ParseLevel(std::string s) {
  // RUST_LOG style values ("info", "nomnom=debug") are accepted too.
  if (auto eq = s.rfind('='); eq != std::string::npos) s = s.substr(eq + 1);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "trace" || s == "debug") return 0;
  if (s == "warn" || s == "warning") return 2;
  if (s == "error") return 3;
  return 1;
}

int Main(int argc, char** argv) {
  CLI::App app{"nomnomd: HTTP ingestion API -> NATS JetStream -> workers -> PostgreSQL"};
  app.set_version_flag("--version", std::string("nomnomd ") + NOMNOM_VERSION);
  http::ServerOptions http_opts;
  DaemonConfig cfg;
  JetStreamConfig js;
  std::string entities_dir, log_level = "info", on_conflict = "nothing";
  int max_body_mb = 16, chunk_kb = 512, shutdown_timeout_s = 30;
  int64_t max_age_s = 86400, max_bytes_mb = 1024, dup_window_s = 120, ack_wait_ms = 30000;

  app.add_option("--listen", http_opts.listen, "Address to listen on (host:port); loopback unless told otherwise")
      ->envname("NOMNOM_LISTEN")
      ->capture_default_str();
  app.add_option("--db", cfg.database_url, "PostgreSQL URL (else the PG* variables)")->envname("DATABASE_URL");
  app.add_option("--nats", js.url, "NATS server URL(s)")->envname("NATS_URL")->capture_default_str();
  app.add_option("--stream", js.stream, "JetStream stream")->envname("NATS_STREAM")->capture_default_str();
  app.add_option("--consumer", js.consumer, "Durable pull consumer of the workers")
      ->envname("NATS_CONSUMER")
      ->capture_default_str();
  app.add_option("--stream-subjects", js.stream_subjects, "Subjects of the stream")->capture_default_str();
  app.add_option("--dlq-stream", js.dlq_stream, "Dead-letter stream")->capture_default_str();
  app.add_option("--subject-prefix", js.subject_prefix,
                 "Rows are published to <prefix>.<entity>; workers read <prefix>.>")
      ->capture_default_str();
  app.add_option("--dlq-subjects", js.dlq_subjects, "Subjects of the dead-letter stream (must not overlap)")
      ->capture_default_str();
  app.add_option("--dlq-subject-prefix", js.dlq_subject_prefix, "Dead letters go to <prefix>.<entity>")
      ->capture_default_str();
  app.add_option("--stream-max-age", max_age_s, "Stream max age, seconds")->capture_default_str();
  app.add_option("--stream-max-mb", max_bytes_mb, "Stream max size, MB")->capture_default_str();
  app.add_option("--duplicate-window", dup_window_s, "JetStream duplicate window, seconds")->capture_default_str();
  app.add_option("--entities", entities_dir, "Directory of entity YAML files (default: bundled TPC-H)")
      ->envname("NOMNOM_ENTITIES");
  app.add_option("--entity", cfg.default_entity,
                 "Entity for requests without ?entity= (default: the only one, else Order)");
  app.add_option("--workers", cfg.workers, "Embedded workers (0: API only)")
      ->envname("NOMNOM_WORKERS")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app.add_option("--fetch-batch", cfg.worker.fetch_messages, "Messages per worker fetch")
      ->envname("NOMNOM_FETCH_BATCH")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--fetch-max-bytes", cfg.worker.fetch_max_bytes,
                 "Bytes per worker fetch (at most 48 MiB: nats-server drops a client with over 64 MiB pending)")
      ->envname("NOMNOM_FETCH_MAX_BYTES")
      ->check(CLI::Range(int64_t{1}, int64_t{48} << 20))
      ->capture_default_str();
  app.add_option("--fetch-wait-ms", cfg.worker.fetch_wait_ms, "How long a fetch waits for messages")
      ->envname("NOMNOM_FETCH_WAIT_MS")
      ->capture_default_str();
  app.add_option("--max-deliver", cfg.worker.max_deliver, "Deliveries before a message is dead-lettered")
      ->envname("NOMNOM_MAX_DELIVER")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--ack-wait-ms", ack_wait_ms, "Consumer ack wait")
      ->envname("NOMNOM_ACK_WAIT_MS")
      ->capture_default_str();
  app.add_option("--on-conflict", on_conflict, "Workers' conflict mode: nothing (seed), update or error")
      ->check(CLI::IsMember({"error", "nothing", "update"}))
      ->capture_default_str();
  app.add_option("--chunk-rows", cfg.chunk_max_rows, "Rows per published chunk")->capture_default_str();
  app.add_option("--chunk-kb", chunk_kb, "KB per published chunk (JetStream max payload is 1 MB by default)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--linger-ms", cfg.linger_ms, "How long /ingest/message rows wait to share a chunk")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--max-body-mb", max_body_mb, "Largest request body (413 above)")
      ->envname("NOMNOM_MAX_BODY_MB")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--http-threads", http_opts.threads, "HTTP io threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--token", http_opts.bearer_token, "Bearer token required on /ingest/* (default: none)")
      ->envname("NOMNOM_API_TOKEN");
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->envname("NOMNOM_LOG_LEVEL")
      ->capture_default_str();
  app.add_option("--shutdown-timeout", shutdown_timeout_s, "Seconds to drain on SIGTERM")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (const char* rust_log = std::getenv("RUST_LOG");
      rust_log != nullptr && std::getenv("NOMNOM_LOG_LEVEL") == nullptr && app.count("--log-level") == 0) {
    log_level = rust_log;
  }
  level = ParseLevel(log_level);

  auto dir = ResolveEntityDir(entities_dir);
  if (!dir.ok()) {
    Log(3, dir.status().message());
    return 1;
  }
  auto entities = LoadEntityDir(*dir);
  if (!entities.ok()) {
    Log(3, entities.status().message());
    return 1;
  }
  cfg.entities = std::move(entities).value();
  if (cfg.default_entity.empty()) {
    cfg.default_entity = cfg.entities.size() == 1 ? cfg.entities[0].name : "Order";
  }
  if (FindEntity(cfg.entities, cfg.default_entity) == nullptr) {
    Log(3, "default entity '" + cfg.default_entity + "' is not defined in " + *dir);
    return 1;
  }
  auto mode = ParseConflictMode(on_conflict);
  cfg.worker.mode = *mode;
  cfg.chunk_max_bytes = static_cast<size_t>(chunk_kb) << 10;
  http_opts.max_body_bytes = static_cast<size_t>(max_body_mb) << 20;
  js.max_age_ms = max_age_s * 1000;
  js.max_bytes = max_bytes_mb << 20;
  js.duplicate_window_ms = dup_window_s * 1000;
  js.ack_wait_ms = ack_wait_ms;
  js.max_deliver = cfg.worker.max_deliver;
  js.connection_name = "nomnomd";
  js.filter_subject = js.subject_prefix + ".>";
  static std::atomic<bool> closing{false};  // the connection's own close is not news
  js.on_connection_event = [](const std::string& what) {
    if (!closing.load()) Log(2, "NATS: " + what);
  };
  http_opts.log = [](std::string_view what) { Log(2, std::string(what)); };

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
    Log(attempt == 0 ? 2 : 0, c.status().message() + " (retrying)");
    timespec ts{1, 0};
    if (sigtimedwait(&signals, nullptr, &ts) > 0) return 0;
  }
  if (Status s = client->EnsureTopology(); !s.ok()) {
    Log(3, s.message());
    return 1;
  }
  Log(1, "JetStream stream " + js.stream + " (" + js.stream_subjects + "), dead letters " + js.dlq_stream + " (" +
             js.dlq_subjects + "), consumer " + js.consumer);

  MetricsRegistry metrics;
  IngestService service(cfg, *client, metrics);
  http::Server server(http_opts);
  service.Register(server);
  if (Status s = server.Start(); !s.ok()) {
    Log(3, s.message());
    return 1;
  }
  service.Start();
  service.SetReady(true);
  Log(1, "listening on " + http_opts.listen + " (port " + std::to_string(server.port()) + "), " +
             std::to_string(cfg.workers) + " embedded worker(s), entities from " + *dir +
             (http_opts.bearer_token.empty() ? "" : ", bearer token required on /ingest"));

  int sig = 0;
  sigwait(&signals, &sig);
  Log(1, std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", draining");
  service.BeginDrain();
  server.Stop(shutdown_timeout_s * 1000);
  service.Shutdown(static_cast<int64_t>(shutdown_timeout_s) * 1000);
  closing.store(true);
  client.reset();
  Log(1, "stopped");
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
