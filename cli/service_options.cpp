#include "cli/service_options.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/pg/table_setup.h"

namespace nomnom {

void AddNatsOptions(CLI::App* app, NatsFlags* f) {
  app->add_option("--nats", f->js.url, "NATS server URL(s), comma-separated")
      ->envname("NATS_URL")
      ->capture_default_str();
  app->add_option("--stream", f->js.stream, "JetStream stream")->envname("NATS_STREAM")->capture_default_str();
  app->add_option("--consumer", f->js.consumer, "Durable pull consumer of the workers")
      ->envname("NATS_CONSUMER")
      ->capture_default_str();
  app->add_option("--stream-subjects", f->js.stream_subjects, "Subjects of the stream")->capture_default_str();
  app->add_option("--dlq-stream", f->js.dlq_stream, "Dead-letter stream")->capture_default_str();
  app->add_option("--subject-prefix", f->js.subject_prefix,
                  "Rows are published to <prefix>.<entity>; workers read <prefix>.>")
      ->capture_default_str();
  app->add_option("--dlq-subjects", f->js.dlq_subjects, "Subjects of the dead-letter stream (must not overlap)")
      ->capture_default_str();
  app->add_option("--dlq-subject-prefix", f->js.dlq_subject_prefix, "Dead letters go to <prefix>.<entity>")
      ->capture_default_str();
  app->add_option("--stream-max-age", f->max_age_s, "Stream max age, seconds (0: unlimited)")
      ->check(CLI::Range(int64_t{0}, int64_t{10} * 365 * 86400))
      ->capture_default_str();
  app->add_option("--stream-max-mb", f->max_bytes_mb, "Stream max size, MB")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  app->add_option("--duplicate-window", f->dup_window_s, "JetStream duplicate window, seconds")
      ->check(CLI::Range(int64_t{1}, int64_t{7} * 86400))
      ->capture_default_str();
  app->add_option("--stream-replicas", f->js.replicas,
                  "Replicas of the streams nomnom creates (3 in a JetStream cluster); an existing stream's "
                  "count is used as it is")
      ->envname("NOMNOM_STREAM_REPLICAS")
      ->check(CLI::Range(1, 5))
      ->capture_default_str();
  app->add_option("--ack-wait-ms", f->ack_wait_ms, "Consumer ack wait")
      ->envname("NOMNOM_ACK_WAIT_MS")
      ->check(CLI::Range(int64_t{100}, int64_t{3600} * 1000))
      ->capture_default_str();
}

void FinishNatsOptions(NatsFlags* f, const std::string& connection_name) {
  f->js.max_age_ms = f->max_age_s * 1000;
  f->js.max_bytes = f->max_bytes_mb << 20;
  f->js.duplicate_window_ms = f->dup_window_s * 1000;
  f->js.ack_wait_ms = f->ack_wait_ms;
  f->js.connection_name = connection_name;
  f->js.filter_subject = f->js.subject_prefix + ".>";
}

void AddWorkerOptions(CLI::App* app, WorkerFlags* f) {
  app->add_option("--fetch-batch", f->opts.fetch_messages, "Messages per worker fetch")
      ->envname("NOMNOM_FETCH_BATCH")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app->add_option("--fetch-max-bytes", f->opts.fetch_max_bytes,
                  "Bytes per worker fetch (at most 48 MiB: nats-server drops a client with over 64 MiB pending)")
      ->envname("NOMNOM_FETCH_MAX_BYTES")
      ->check(CLI::Range(int64_t{1}, int64_t{48} << 20))
      ->capture_default_str();
  app->add_option("--fetch-wait-ms", f->opts.fetch_wait_ms, "How long a fetch waits for messages")
      ->envname("NOMNOM_FETCH_WAIT_MS")
      ->check(CLI::Range(int64_t{10}, int64_t{600} * 1000))
      ->capture_default_str();
  app->add_option("--max-deliver", f->opts.max_deliver,
                  "Deliveries after which a chunk is committed alone and dead-lettered only if that fails for its "
                  "content (database outages, timeouts and locks never count)")
      ->envname("NOMNOM_MAX_DELIVER")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->add_option("--ledger-retention", f->ledger_retention_s,
                  "Seconds a committed chunk's ledger row is kept (exactly-once for redeliveries, and its "
                  "/ingest/status); default: the stream's max age + duplicate window + 1 h; 0: forever")
      ->envname("NOMNOM_LEDGER_RETENTION")
      ->check(CLI::Range(int64_t{0}, int64_t{100} * 365 * 86400))
      ->default_str("auto");
  app->add_option("--statement-timeout-ms", f->opts.statement_timeout_ms,
                  "Workers' PostgreSQL statement timeout (a timed-out commit is retried, never dead-lettered)")
      ->envname("NOMNOM_STATEMENT_TIMEOUT_MS")
      ->check(CLI::Range(int64_t{100}, int64_t{24} * 3600 * 1000))
      ->capture_default_str();
  app->add_option("--lock-timeout-ms", f->opts.lock_timeout_ms, "Workers' PostgreSQL lock timeout")
      ->envname("NOMNOM_LOCK_TIMEOUT_MS")
      ->check(CLI::Range(int64_t{100}, int64_t{24} * 3600 * 1000))
      ->capture_default_str();
  app->add_option("--on-conflict", f->on_conflict, "Workers' conflict mode: nothing (as the seed), update or error")
      ->check(CLI::IsMember({"error", "nothing", "update"}))
      ->capture_default_str();
}

int64_t LedgerRetentionMs(const WorkerFlags& worker, const NatsFlags& nats) {
  if (worker.ledger_retention_s >= 0) return worker.ledger_retention_s * 1000;
  if (nats.max_age_s == 0) return 0;  // chunks never expire: neither may their ledger rows
  return (nats.max_age_s + nats.dup_window_s + 3600) * 1000;
}

void FinishWorkerOptions(WorkerFlags* f) {
  if (auto mode = ParseConflictMode(f->on_conflict); mode.ok()) f->opts.mode = *mode;
}

void AddEntitiesOption(CLI::App* app, std::string* dir) {
  app->add_option("--entities", *dir, "Directory of entity YAML files (default: bundled TPC-H)")
      ->envname("NOMNOM_ENTITIES");
}

void AddLogOptions(CLI::App* app, LogFlags* f) {
  app->add_option("--log-level", f->level, "debug, info, warn, error or off (else RUST_LOG)")
      ->envname("NOMNOM_LOG_LEVEL")
      ->capture_default_str();
  app->add_flag("--log-json", f->json, "Log JSON lines instead of text")->envname("NOMNOM_LOG_JSON");
}

Status ApplyLogOptions(const CLI::App& app, const LogFlags& f, const std::string& component) {
  std::string text = f.level;
  if (const char* rust_log = std::getenv("RUST_LOG");
      rust_log != nullptr && std::getenv("NOMNOM_LOG_LEVEL") == nullptr && app.count("--log-level") == 0) {
    text = rust_log;
  }
  auto level = ParseLogLevel(text);
  if (!level) return Status::InvalidArgument("unknown log level '" + text + "' (debug, info, warn, error or off)");
  ConfigureLogging(LogConfig{*level, f.json, component});
  return Status::Ok();
}

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Io("cannot read the token file " + path + ": " + std::strerror(errno));
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
  if (token.empty()) return Status::InvalidArgument("the token file " + path + " is empty");
  return token;
}

}  // namespace nomnom
