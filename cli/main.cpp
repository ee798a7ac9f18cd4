// nomnom: the command-line loader.
//
//   nomnom load FILE... [options]     NDJSON, CSV or .tbl -> PostgreSQL (binary COPY)
//   nomnom gen tpch orders --sf X     deterministic TPC-H ORDERS rows
//   nomnom schema [ENTITY]            the CREATE TABLE nomnom uses
//   nomnom top URL                    nomnomd's dashboard in the terminal
//
// Exit codes: 0 success; 1 fatal error; 2 usage error; 3 finished but some
// rows were rejected; 4 stopped because more than --max-errors rows were
// rejected.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include <malloc.h>
#include <signal.h>
#include <sys/ioctl.h>

#include "cli/service_options.h"
#include "cli/top.h"
#include "core/base/build_info.h"
#include "core/base/log.h"
#include "core/base/metrics.h"
#include "core/format/rejects.h"
#include "core/format/schema.h"
#include "core/gen/tpch_gen.h"
#include "core/gen/tpch_tables.h"
#include "core/http/http_server.h"
#include "core/http/probe_routes.h"
#include "core/load/pipeline.h"
#include "core/pg/catalog_entity.h"
#include "core/queue/entity_subjects.h"
#include "core/queue/nats_client.h"
#include "core/queue/publish_sink.h"
#include "core/worker/ingest_worker.h"
#include "core/worker/worker_pool.h"

namespace nomnom {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFatal = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRejected = 3;
constexpr int kExitMaxErrors = 4;

std::string Thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string Megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

void PrintError(const Status& s) { std::fprintf(stderr, "nomnom: error: %s\n", s.message().c_str()); }

// Shows rejected rows on stderr (the first few) and forwards them to the
// --rejects file when there is one. Thread-safe.
class RejectReporter : public RejectSink {
 public:
  RejectReporter(RejectSink* file, bool quiet) : file_(file), quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0) {}
  Status Write(const RejectRecord& r) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!quiet_ && shown_ < kMaxShown) {
        ++shown_;
        // On a terminal, clear the progress line first.
        std::fprintf(stderr, "%s%s:%llu: %s\n", tty_ ? "\r\x1b[K" : "", r.file.c_str(),
                     static_cast<unsigned long long>(r.line), r.error.c_str());
      } else {
        ++hidden_;
      }
    }
    return file_ != nullptr ? file_->Write(r) : Status::Ok();
  }
  Status Flush() override { return file_ != nullptr ? file_->Flush() : Status::Ok(); }
  uint64_t hidden() const { return hidden_; }

 private:
  static constexpr int kMaxShown = 10;
  RejectSink* file_;
  bool quiet_;
  bool tty_;
  std::mutex mu_;
  int shown_ = 0;        // guarded by mu_
  uint64_t hidden_ = 0;  // guarded by mu_
};

// Redraws one status line on stderr a few times a second.
class ProgressLine {
 public:
  explicit ProgressLine(const LoadProgress& p) : progress_(p), thread_([this] { Run(); }) {}
  ~ProgressLine() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::fprintf(stderr, "\r\x1b[K");
  }

 private:
  void Run() {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return done_; })) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const uint64_t rows = progress_.rows_read.load(std::memory_order_relaxed);
      const uint64_t raw = progress_.raw_bytes_read.load(std::memory_order_relaxed);
      const uint64_t total = progress_.raw_bytes_total.load(std::memory_order_relaxed);
      std::string line = Thousands(rows) + " rows, " + Thousands(progress_.rows_committed.load()) + " committed, " +
                         Megabytes(progress_.bytes_read.load()) + ", " +
                         Thousands(static_cast<uint64_t>(secs > 0 ? static_cast<double>(rows) / secs : 0)) + " rows/s";
      if (total > 0 && raw > 0) {
        const double frac = std::min(1.0, static_cast<double>(raw) / static_cast<double>(total));
        const double eta = frac > 0 ? secs / frac - secs : 0;
        char buf[64];
        std::snprintf(buf, sizeof buf, ", %.0f%%, ETA %d:%02d", frac * 100, static_cast<int>(eta) / 60,
                      static_cast<int>(eta) % 60);
        line += buf;
      }
      if (uint64_t rej = progress_.rejected.load(); rej > 0) line += ", " + Thousands(rej) + " rejected";
      std::fprintf(stderr, "\r\x1b[K%s", line.c_str());
      std::fflush(stderr);
    }
  }

  const LoadProgress& progress_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  std::thread thread_;
};

Result<std::unique_ptr<JetStreamClient>> ConnectJetStream(NatsFlags& a, const std::string& name) {
  FinishNatsOptions(&a, name);
  auto client = JetStreamClient::Connect(a.js);
  if (!client.ok()) return client.status();
  if (Status s = (*client)->EnsureTopology(); !s.ok()) return s;
  return client;
}

struct LoadArgs {
  std::vector<std::string> inputs;
  std::string db;
  std::string entity = "";
  std::string entities_dir;
  std::string table;
  std::string into;  // --into: an existing table, its entity read from the catalog
  std::string on_conflict = "nothing";
  int jobs = 2;
  int parsers = 1;
  size_t batch_rows = 100000;
  size_t batch_mb = 4;
  size_t max_line_mb = 16;
  int64_t max_errors = -1;
  std::string rejects;
  bool strict = false;
  bool quiet = false;
  bool json = false;
  bool via_nats = false;
  std::string publish_format;  // --publish-format: "", "ndjson" or "binary"
  bool fresh = false;
  bool on_conflict_given = false;  // --on-conflict was on the command line
  std::string format = "auto";     // --format: ndjson, csv, tbl (auto: by the inputs' names)
  bool header = false;             // --header: the first record of each CSV / .tbl input is a header
  bool no_header = false;          // --no-header: it is data
  size_t chunk_rows = 1000;
  size_t chunk_kb = 512;
  NatsFlags nats;
};

// The chosen entity (first) and the entities derived from it, in the order
// their tables are filled; every entity of the directory when `all` and no
// name is given.
Result<std::vector<Entity>> ResolveEntities(const std::string& dir_flag, const std::string& name, bool all = false) {
  auto dir = ResolveEntityDir(dir_flag);
  if (!dir.ok()) return dir.status();
  auto entities = LoadEntityDir(*dir);
  if (!entities.ok()) return entities.status();
  if (name.empty() && all) return entities;
  const Entity* chosen = nullptr;
  if (name.empty()) {
    if (entities->size() == 1) {
      chosen = &entities->front();
    } else if (const Entity* e = FindEntity(*entities, "Order")) {
      chosen = e;
    } else {
      return Status::InvalidArgument("several entities are defined in " + *dir + "; choose one with --entity");
    }
  } else {
    chosen = FindEntity(*entities, name);
  }
  if (chosen == nullptr) {
    std::string known;
    for (const auto& e : *entities) known += (known.empty() ? "" : ", ") + e.name;
    return Status::NotFound("unknown entity '" + name + "' (defined in " + *dir + ": " + known + ")");
  }
  std::vector<Entity> family = {*chosen};
  for (const Entity* d : DerivedEntities(*entities, *chosen)) family.push_back(*d);
  return family;
}

void PrintWarnings(const std::vector<Entity>& entities) {
  for (const Entity& e : entities) {
    for (const std::string& w : e.warnings) std::fprintf(stderr, "nomnom: warning: %s\n", w.c_str());
  }
}

// The entity of --into: read from the table's catalog entry.
Result<std::vector<Entity>> EntityFromTable(const std::string& db, const std::string& table) {
  auto conn = PgConnection::Connect(db, "nomnom-catalog");
  if (!conn.ok()) return conn.status();
  auto e = EntityFromCatalog(**conn, table);
  if (!e.ok()) return e.status();
  return std::vector<Entity>{std::move(e).value()};
}

// The options of `nomnom load` as the load takes them (rejects and the
// sink_factory are set later); errors are usage errors. The flags are named
// in the load's messages (ValidateLoadOptions).
Result<LoadOptions> MakeLoadOptions(const LoadArgs& a, std::vector<Entity>& family) {
  auto mode = ParseConflictMode(a.on_conflict);
  if (!mode.ok()) return mode.status();
  auto requested_format = ParseInputFormat(a.format);
  auto format = requested_format.ok() ? ResolveInputFormat(a.inputs, *requested_format) : requested_format;
  if (!format.ok()) return format.status();
  LoadOptions opts;
  opts.inputs = a.inputs;
  opts.format = *format;
  opts.header = a.header ? HeaderMode::kYes : a.no_header ? HeaderMode::kNo : HeaderMode::kAuto;
  opts.conninfo = a.db;
  // --fresh has --on-conflict error's semantics: it is the mode unless another was asked for.
  opts.mode = a.fresh && !a.on_conflict_given ? ConflictMode::kError : *mode;
  opts.jobs = a.jobs;
  opts.parsers = a.parsers;
  opts.batch_rows = a.batch_rows;
  opts.batch_bytes = a.batch_mb << 20;
  opts.max_line_bytes = a.max_line_mb << 20;
  opts.max_errors = a.max_errors;
  opts.max_errors_name = "--max-errors";  // core names no flags: it is told what to call its limits
  opts.max_line_name = "--max-line-mb";
  opts.strict = a.strict;
  opts.fresh = a.fresh;
  opts.fresh_name = "--fresh";
  opts.mode_name = "--on-conflict";
  opts.header_name = "--header and --no-header";
  opts.publish_name = "--via-nats";
  opts.notice = [](const std::string& message) { std::fprintf(stderr, "nomnom: %s\n", message.c_str()); };
  for (size_t i = 1; i < family.size(); ++i) opts.derived.push_back(&family[i]);
  return opts;
}

// --via-nats: where the load's rows go instead of PostgreSQL, and what was
// published (for the summary).
struct Publishing {
  std::unique_ptr<JetStreamClient> js;
  std::shared_ptr<PublishCounters> counters = std::make_shared<PublishCounters>();
  std::string format_name;  // "binary" or "ndjson"
};

// Connects to JetStream and points opts->sink_factory at it: binary COPY
// tuples for flat entities by default; nested entities (a root with derived
// entities) are published as NDJSON. `pub` and `a` must outlive the load.
Status StartPublishing(LoadArgs& a, const Entity& entity, LoadOptions* opts, Publishing* pub) {
  const bool nested = !opts->derived.empty();
  auto client = ConnectJetStream(a.nats, "nomnom-load");
  if (!client.ok()) return client.status();
  pub->js = std::move(client).value();
  if (a.publish_format == "binary" && nested) {
    return Status::InvalidArgument("--publish-format binary: " + entity.name +
                                   " has derived entities, whose rows are published as NDJSON");
  }
  const PublishFormat format =
      a.publish_format == "ndjson" || nested ? PublishFormat::kNdjson : PublishFormat::kPgCopy1;
  pub->format_name = format == PublishFormat::kPgCopy1 ? "binary" : "ndjson";
  opts->sink_factory = [pub, e = &entity, &a, format](int) -> Result<std::unique_ptr<RowSink>> {
    return std::unique_ptr<RowSink>(
        std::make_unique<PublishSink>(*pub->js, *e, a.chunk_rows, a.chunk_kb << 10, pub->counters, format));
  };
  return Status::Ok();
}

// What `nomnom load` prints at the end: the summary as one JSON object.
void PrintLoadJson(const LoadArgs& a, const Entity& entity, ConflictMode mode, const LoadSummary& s,
                   const Publishing& pub) {
  nlohmann::ordered_json j;
  j["status"] = s.status.ok() ? "ok" : "error";
  if (!s.status.ok()) j["error"] = s.status.message();
  j["table"] = s.table;
  j["entity"] = entity.name;
  j["on_conflict"] = std::string(ConflictModeName(mode));
  if (a.fresh) j["fresh"] = true;
  j["rows_read"] = s.rows_read;
  j["inserted"] = s.inserted;
  j["updated"] = s.updated;
  j["skipped"] = s.skipped;
  j["rejected"] = s.rejected;
  j["bytes"] = s.bytes;
  if (!s.tables.empty()) {
    nlohmann::ordered_json tables = nlohmann::ordered_json::array();
    for (const auto& t : s.tables) {
      tables.push_back({{"table", t.table},
                        {"inserted", t.inserted},
                        {"updated", t.updated},
                        {"skipped", t.skipped},
                        {"deleted", t.deleted}});
    }
    j["tables"] = std::move(tables);
  }
  if (a.via_nats) {
    j["published_rows"] = pub.counters->rows_acked.load();
    j["published_chunks"] = pub.counters->chunks_acked.load();
    j["publish_format"] = pub.format_name;
    j["stream"] = a.nats.js.stream;
  }
  j["seconds"] = s.seconds;
  j["rows_per_second"] = s.seconds > 0 ? static_cast<double>(s.rows_read) / s.seconds : 0;
  std::printf("%s\n", j.dump().c_str());
}

// What `nomnom load` prints at the end: the summary for people (and how
// many rejected rows were not shown).
void PrintLoadText(const LoadArgs& a, const Entity& entity, ConflictMode mode, const LoadSummary& s,
                   const Publishing& pub, uint64_t hidden_rejects) {
  if (hidden_rejects > 0 && !a.quiet) {
    std::fprintf(stderr, "nomnom: %s more rejected rows not shown%s\n", Thousands(hidden_rejects).c_str(),
                 a.rejects.empty() ? " (use --rejects FILE to keep them all)" : "");
  }
  if (a.via_nats) {
    std::printf("nomnom: published %s rows of %s in %s chunks to JetStream stream %s (subject %s)\n",
                Thousands(pub.counters->rows_acked.load()).c_str(), entity.name.c_str(),
                Thousands(pub.counters->chunks_acked.load()).c_str(), a.nats.js.stream.c_str(),
                pub.js ? pub.js->EntitySubject(entity.name).c_str() : "?");
  }
  std::printf("nomnom: %s %s %s %s (on-conflict %s)\n",
              s.status.ok() ? (a.via_nats ? "validated" : "loaded") : "stopped loading",
              a.inputs.size() == 1 ? a.inputs[0].c_str() : (std::to_string(a.inputs.size()) + " inputs").c_str(),
              a.via_nats ? "for" : "into", s.table.c_str(),
              (std::string(ConflictModeName(mode)) + (a.fresh ? ", --fresh" : "")).c_str());
  std::printf("  rows read  %15s\n  inserted   %15s\n  updated    %15s\n  skipped    %15s\n  rejected   %15s\n",
              Thousands(s.rows_read).c_str(), Thousands(s.inserted).c_str(), Thousands(s.updated).c_str(),
              Thousands(s.skipped).c_str(), Thousands(s.rejected).c_str());
  for (const auto& t : s.tables) {
    std::printf("  %s: inserted %s, updated %s, skipped %s, deleted %s\n", t.table.c_str(),
                Thousands(t.inserted).c_str(), Thousands(t.updated).c_str(), Thousands(t.skipped).c_str(),
                Thousands(t.deleted).c_str());
  }
  const double rate = s.seconds > 0 ? static_cast<double>(s.rows_read) / s.seconds : 0;
  std::printf("  bytes      %15s\n  time       %13.2f s\n  rate       %11s rows/s\n", Megabytes(s.bytes).c_str(),
              s.seconds, Thousands(static_cast<uint64_t>(rate)).c_str());
}

int RunLoadCommand(LoadArgs& a) {
  if (!a.into.empty() && (!a.entity.empty() || !a.table.empty() || a.via_nats)) {
    PrintError(Status::InvalidArgument(
        "--into loads into an existing table without an entity file; it cannot be combined with --entity, --table "
        "or --via-nats"));
    return kExitUsage;
  }
  auto family = a.into.empty() ? ResolveEntities(a.entities_dir, a.entity) : EntityFromTable(a.db, a.into);
  if (!family.ok()) {
    PrintError(family.status());
    return kExitFatal;
  }
  if (Status s = a.via_nats ? CheckEntitySubjects(*family) : Status::Ok(); !s.ok()) {
    PrintError(s);
    return kExitFatal;
  }
  if (!a.quiet) PrintWarnings(*family);
  Entity* entity = &family->front();
  if (!a.table.empty()) {
    const auto dot = a.table.find('.');
    entity->table_schema = dot == std::string::npos ? "" : a.table.substr(0, dot);
    entity->table = dot == std::string::npos ? a.table : a.table.substr(dot + 1);
  }
  auto opts = MakeLoadOptions(a, *family);
  Status valid = opts.ok() ? ValidateLoadOptions(*opts, *entity, a.via_nats) : opts.status();
  if (!valid.ok()) {
    PrintError(valid);
    return kExitUsage;
  }
  std::unique_ptr<RejectFileWriter> rejects_file;
  if (!a.rejects.empty()) {
    auto w = RejectFileWriter::Open(a.rejects);
    if (!w.ok()) {
      PrintError(w.status());
      return kExitFatal;
    }
    rejects_file = std::move(w).value();
  }
  RejectReporter reporter(rejects_file.get(), a.quiet);
  opts->rejects = &reporter;
  Publishing pub;
  if (a.via_nats) {
    if (Status s = StartPublishing(a, *entity, &*opts, &pub); !s.ok()) {
      PrintError(s);
      return kExitFatal;
    }
  }

  LoadProgress progress;
  LoadSummary s;
  {
    std::unique_ptr<ProgressLine> line;
    if (!a.quiet && isatty(STDERR_FILENO)) line = std::make_unique<ProgressLine>(progress);
    s = RunLoad(*entity, *opts, &progress);
  }
  if (a.via_nats) {
    // Nothing was written to PostgreSQL: the rows were published (counted below).
    s.inserted = s.updated = s.skipped = 0;
    s.tables.clear();
  }
  if (a.json) {
    PrintLoadJson(a, *entity, opts->mode, s, pub);
  } else if (!a.quiet || !s.status.ok()) {
    PrintLoadText(a, *entity, opts->mode, s, pub, reporter.hidden());
  }
  std::fflush(stdout);
  if (!s.status.ok()) {
    PrintError(s.status);
    return s.status.code() == StatusCode::kAborted ? kExitMaxErrors : kExitFatal;
  }
  return s.rejected > 0 ? kExitRejected : kExitOk;
}

struct GenArgs {
  double sf = 1;
  uint64_t seed = 0;
  std::string format = "ndjson";
  std::string output = "-";
  bool nested = false;
  bool spec = false;  // orders: TPC-H's column names (data/tpch/entities-full)
  std::string table;  // set: `gen tpch TABLE` through WriteTpchTable
};

// Runs `write` on --output (a file, created or truncated; "-" is stdout) and
// turns the outcome into gen's exit code.
int WriteGenOutput(const std::string& output, const std::function<Status(std::FILE*)>& write) {
  std::FILE* out = stdout;
  if (output != "-") {
    out = std::fopen(output.c_str(), "wb");
    if (out == nullptr) {
      PrintError(Status::Io("cannot open " + output + ": " + std::strerror(errno)));
      return kExitFatal;
    }
  }
  Status s = write(out);
  if (out != stdout && std::fclose(out) != 0 && s.ok()) s = Status::Io("cannot write " + output);
  if (!s.ok()) {
    PrintError(s);
    return kExitFatal;
  }
  return kExitOk;
}

int RunGenTableCommand(const GenArgs& a) {
  auto table = ParseTpchTable(a.table);
  auto format = ParseTpchTextFormat(a.format);
  if (!table.ok() || !format.ok()) {
    PrintError(table.ok() ? format.status() : table.status());
    return kExitUsage;
  }
  if (a.nested) {
    PrintError(Status::InvalidArgument("--nested is for NDJSON orders without --spec"));
    return kExitUsage;
  }
  TpchTableOptions opts;
  opts.table = *table;
  opts.scale_factor = a.sf;
  opts.seed = a.seed;
  opts.format = *format;
  TpchOrdersOptions check;
  check.scale_factor = a.sf;
  if (Status s = ValidateTpchOrdersOptions(check); !s.ok()) {
    PrintError(s);
    return kExitUsage;
  }
  return WriteGenOutput(a.output, [&opts](std::FILE* out) { return WriteTpchTable(opts, out); });
}

int RunGenCommand(const GenArgs& a) {
  // Today's `gen tpch orders` output (the seed's Order entity) unless TPC-H's
  // own layout is asked for.
  if (a.table != "orders" || a.spec || a.format == "tbl") return RunGenTableCommand(a);
  auto format = ParseTpchFormat(a.format);
  if (!format.ok()) {
    PrintError(format.status());
    return kExitUsage;
  }
  TpchOrdersOptions opts;
  opts.scale_factor = a.sf;
  opts.seed = a.seed;
  opts.format = *format;
  opts.nested = a.nested;
  if (Status s = ValidateTpchOrdersOptions(opts); !s.ok()) {
    PrintError(s);
    return kExitUsage;
  }
  return WriteGenOutput(a.output, [&opts](std::FILE* out) { return WriteTpchOrders(opts, out); });
}

struct WorkerArgs {
  std::string db;
  std::string entities_dir;
  int threads = 2;
  bool json = false;
  std::string metrics_listen;  // empty: no HTTP endpoint
  LogFlags log;
  WorkerFlags worker;
  NatsFlags nats;
};

int RunWorkerCommand(WorkerArgs& a) {
  auto dir = ResolveEntityDir(a.entities_dir);
  if (!dir.ok()) {
    PrintError(dir.status());
    return kExitFatal;
  }
  auto entities = LoadEntityDir(*dir);
  if (!entities.ok()) {
    PrintError(entities.status());
    return kExitFatal;
  }
  if (Status s = CheckEntitySubjects(*entities); !s.ok()) {
    PrintError(s);
    return kExitFatal;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  FinishWorkerOptions(&a.worker);
  a.nats.js.max_deliver = a.worker.opts.max_deliver;
  a.nats.js.on_connection_event = [](const std::string& what) { LogWarn("NATS: {}", what); };
  auto js = ConnectJetStream(a.nats, "nomnom-worker");
  if (!js.ok()) {
    PrintError(js.status());
    return kExitFatal;
  }
  WorkerOptions opts = a.worker.opts;
  opts.conninfo = a.db;
  opts.worker_name = "worker";
  MetricsRegistry metrics;
  WorkerPool pool(**js, *entities, opts, a.threads, &metrics);
  pool.SetLedgerRetention(LedgerRetentionMs(a.worker, a.nats));
  std::atomic<bool> stopping{false};
  pool.Start([] { kill(getpid(), SIGTERM); });  // all exited by themselves (idle exit): wake the main thread

  // Probes and metrics for standalone workers (Kubernetes, Prometheus).
  std::unique_ptr<http::Server> server;
  if (!a.metrics_listen.empty()) {
    http::ServerOptions ho;
    ho.listen = a.metrics_listen;
    ho.threads = 1;
    ho.log = [](std::string_view what) { LogWarn("{}", what); };
    server = std::make_unique<http::Server>(ho);
    JetStreamClient* client = js->get();
    http::ProbeRoutes probes;
    probes.json = http::ProbeJson::kInOrder;
    const auto started = probes.started;
    probes.ready = [client, &stopping, &pool] {
      // Ready while NATS is connected and a worker fetches or commits (not
      // while every worker starts or backs off, e.g. PostgreSQL away).
      http::Readiness ready;
      if (stopping.load()) {
        ready.reason = "draining";
      } else if (!client->IsConnected()) {
        ready.reason = "NATS disconnected";
      } else if (!pool.AnyWorking()) {
        ready.reason = "no worker is fetching";
        if (const std::string err = pool.BackingOffError(); !err.empty()) ready.reason += ": " + err;
      }
      nlohmann::ordered_json states = nlohmann::ordered_json::object();
      for (const auto& [st, n] : pool.StateCounts()) states[std::string(WorkerStateName(st))] = n;
      ready.fields.emplace_back("workers",
                                states.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
      return ready;
    };
    probes.metrics = [&pool, &metrics, started] {
      pool.ExportMetrics();
      metrics.Gauge("nomnom_up_seconds", "Seconds since this process started")
          .Set(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      metrics.Gauge("nomnom_worker_threads", "Worker threads in this process").Set(pool.size());
      return metrics.Render();
    };
    http::InstallProbeRoutes(*server, std::move(probes));
    if (Status s = server->Start(); !s.ok()) {
      PrintError(s);
      pool.Stop();
      pool.Join();
      return kExitFatal;
    }
    LogInfo("metrics and probes on {} (port {})", a.metrics_listen, server->port());
  }
  LogInfo("{} thread(s) draining {}/{} into PostgreSQL", a.threads, a.nats.js.stream, a.nats.js.consumer);
  int sig = 0;
  sigwait(&signals, &sig);
  stopping.store(true);
  pool.Stop();
  pool.Join();
  if (server) server->Stop(2000);
  const WorkerTotals t = pool.Totals();
  if (a.json) {
    nlohmann::ordered_json j;
    j["messages_committed"] = t.messages_committed;
    j["rows_committed"] = t.rows_committed;
    j["rows_dead"] = t.rows_dead;
    j["messages_dead"] = t.messages_dead;
    j["redeliveries_skipped"] = t.duplicates_skipped;
    // When the last rows were committed (Unix seconds; null: none), so a
    // benchmark can time a drain without polling the database.
    if (t.last_commit_unix_us > 0) {
      j["last_commit_unix"] = static_cast<double>(t.last_commit_unix_us) / 1e6;
    } else {
      j["last_commit_unix"] = nullptr;
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("nomnom worker: committed %s rows in %s messages; dead letters: %s rows, %s messages\n",
                Thousands(t.rows_committed).c_str(), Thousands(t.messages_committed).c_str(),
                Thousands(t.rows_dead).c_str(), Thousands(t.messages_dead).c_str());
  }
  return kExitOk;
}

int RunSchemaCommand(const std::string& dir, const std::string& name, const std::string& table,
                     const std::string& from_table, const std::string& db) {
  if (!from_table.empty()) {
    auto family = EntityFromTable(db, from_table);
    if (!family.ok()) {
      PrintError(family.status());
      return kExitFatal;
    }
    std::fputs(EntityToYaml(family->front()).c_str(), stdout);
    return kExitOk;
  }
  // A name: that entity and the entities derived from it; none: every entity.
  auto entities = ResolveEntities(dir, name, /*all=*/table.empty());
  if (!entities.ok()) {
    PrintError(entities.status());
    return kExitFatal;
  }
  PrintWarnings(*entities);
  if (!table.empty()) {
    Entity& entity = entities->front();
    const auto dot = table.find('.');
    entity.table_schema = dot == std::string::npos ? "" : table.substr(0, dot);
    entity.table = dot == std::string::npos ? table : table.substr(dot + 1);
  }
  for (size_t i = 0; i < entities->size(); ++i) {
    const Entity& entity = (*entities)[i];
    std::printf("%s-- entity %s (%s)\n%s;\n", i > 0 ? "\n" : "", entity.name.c_str(), entity.source_file.c_str(),
                entity.CreateTableSql().c_str());
  }
  return kExitOk;
}

struct TopArgs {
  std::string url;
  std::string token;
  double interval_s = 1.0;
  bool once = false;
};

// Reads the snapshot every interval and prints it: on a terminal the screen is
// redrawn, otherwise each snapshot follows the last (plain text either way).
int RunTopCommand(const TopArgs& a) {
  auto target = ParseTopUrl(a.url);
  if (!target.ok()) {
    PrintError(target.status());
    return kExitUsage;
  }
  const bool tty = isatty(STDOUT_FILENO) != 0;
  for (;;) {
    size_t width = 120;
    winsize ws{};
    if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width = ws.ws_col;
    auto body = FetchSnapshot(*target, a.token, 5000);
    std::string text = body.ok() ? RenderTop(*body, a.url, width) : "nomnom top: " + body.status().message() + "\n";
    if (a.once) {
      std::fputs(text.c_str(), body.ok() ? stdout : stderr);
      return body.ok() ? kExitOk : kExitFatal;
    }
    if (tty) std::fputs("\x1b[H\x1b[2J", stdout);
    std::fputs(text.c_str(), stdout);
    if (!tty) std::fputs("\n", stdout);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(a.interval_s * 1000)));
  }
}

// `nomnom load`'s options, into *load; *on_conflict is --on-conflict (to
// tell whether it was given).
CLI::App* AddLoadCommand(CLI::App& app, LoadArgs* load, CLI::Option** on_conflict) {
  CLI::App* load_cmd =
      app.add_subcommand("load", "Load NDJSON, CSV or .tbl files (or - for stdin; .gz and .zst too) into PostgreSQL");
  load_cmd->add_option("inputs", load->inputs, "NDJSON, CSV or .tbl inputs: files, .gz, .zst, or - for stdin")
      ->required();
  load_cmd
      ->add_option("--format", load->format,
                   "ndjson, csv (RFC 4180) or tbl (dbgen's |-separated layout); default: by the inputs' "
                   "extensions (.csv, .tbl, also with .gz/.zst; anything else and stdin: ndjson)")
      ->check(CLI::IsMember({"auto", "ndjson", "csv", "tbl"}));
  CLI::Option* header_opt = load_cmd->add_flag(
      "--header", load->header, "CSV/.tbl: the first record of each input is a header; columns are mapped by name");
  load_cmd
      ->add_flag("--no-header", load->no_header,
                 "CSV/.tbl: the first record is data (default: it is a header when its values are field names)")
      ->excludes(header_opt);
  load_cmd->add_option("--db", load->db, "PostgreSQL URL or conninfo (default: DATABASE_URL, else the PG* variables)")
      ->envname("DATABASE_URL");
  load_cmd->add_option("--entity", load->entity, "Entity to load (default: the only one defined, else Order)");
  load_cmd->add_option("--entities", load->entities_dir, "Directory of entity YAML files (default: bundled TPC-H)")
      ->envname("NOMNOM_ENTITIES");
  load_cmd->add_option("--table", load->table,
                       "Target table, overriding the entity's conformant_table ([schema.]name)");
  load_cmd->add_option("--into", load->into,
                       "Load into this existing table ([schema.]name) without an entity file: JSON keys map to "
                       "its columns by name, the conflict key is its primary (or unique) key");
  *on_conflict =
      load_cmd
          ->add_option(
              "--on-conflict", load->on_conflict,
              "error: COPY straight into the table; nothing: skip rows whose key exists; update: last row wins")
          ->check(CLI::IsMember({"error", "nothing", "update"}))
          ->capture_default_str();
  load_cmd->add_option("-j,--jobs", load->jobs, "PostgreSQL connections loading in parallel")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  load_cmd->add_option("--parsers", load->parsers, "Parser threads (NDJSON, CSV, .tbl)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  load_cmd->add_option("--batch-rows", load->batch_rows, "Rows per COPY transaction")
      ->check(CLI::Range(size_t{1}, size_t{100000000}))
      ->capture_default_str();
  load_cmd->add_option("--batch-mb", load->batch_mb, "Encoded megabytes per COPY transaction")
      ->check(CLI::Range(size_t{1}, size_t{1024}))
      ->capture_default_str();
  load_cmd->add_option("--max-line-mb", load->max_line_mb, "Longest accepted line in megabytes")
      ->check(CLI::Range(size_t{1}, size_t{1024}))
      ->capture_default_str();
  load_cmd->add_option("--max-errors", load->max_errors, "Stop (exit 4) when more than N rows are rejected; -1: never")
      ->capture_default_str();
  load_cmd->add_option("--rejects", load->rejects, "Write rejected lines to FILE as NDJSON {file,line,error,raw}");
  load_cmd->add_flag("--strict", load->strict, "Reject objects with fields the entity does not define");
  load_cmd->add_flag("--fresh", load->fresh,
                     "Into an empty (or new) table: COPY without its primary key and build the key at the end; "
                     "--on-conflict error semantics, all or nothing");
  load_cmd->add_flag("-q,--quiet", load->quiet, "No progress, no summary");
  load_cmd->add_flag("--json", load->json, "Print the summary as one JSON object");
  load_cmd->add_flag("--via-nats", load->via_nats,
                     "Publish the validated rows to NATS JetStream for the workers instead of writing PostgreSQL");
  load_cmd
      ->add_option("--publish-format", load->publish_format,
                   "With --via-nats: chunk bodies as 'binary' COPY tuples (the default for entities without "
                   "derived entities) or 'ndjson' lines")
      ->check(CLI::IsMember({"ndjson", "binary"}));
  load_cmd->add_option("--chunk-rows", load->chunk_rows, "With --via-nats: rows per chunk message")
      ->capture_default_str();
  load_cmd
      ->add_option("--chunk-kb", load->chunk_kb,
                   "With --via-nats: KB per chunk message (JetStream's max payload is 1 MB)")
      ->check(CLI::Range(size_t{1}, size_t{65536}))
      ->capture_default_str();
  AddNatsOptions(load_cmd, &load->nats);
  return load_cmd;
}

// `nomnom gen tpch ...`: the subcommands, one per table, their options into *gen.
struct GenCommands {
  CLI::App* orders = nullptr;
  std::vector<CLI::App*> tables;  // the other tables
};
GenCommands AddGenCommands(CLI::App& app, GenArgs* gen) {
  GenCommands cmds;
  CLI::App* gen_cmd = app.add_subcommand("gen", "Generate test data");
  CLI::App* tpch_cmd = gen_cmd->add_subcommand("tpch", "TPC-H-shaped data");
  gen_cmd->require_subcommand(1);
  tpch_cmd->require_subcommand(1);
  cmds.orders = tpch_cmd->add_subcommand("orders", "ORDERS rows (1,500,000 x SF), deterministic per --seed");
  for (const char* t : {"region", "nation", "supplier", "customer", "part", "partsupp", "lineitem"}) {
    cmds.tables.push_back(tpch_cmd->add_subcommand(
        t,
        std::string("TPC-H ") + t + " rows, deterministic per --seed (load with --entities data/tpch/entities-full)"));
  }
  for (CLI::App* c : cmds.tables) {
    c->add_option("--sf", gen->sf, "Scale factor (may be fractional)")->capture_default_str();
    c->add_option("--seed", gen->seed, "Random seed")->capture_default_str();
    c->add_option("--format", gen->format, "ndjson, csv (no header) or tbl (dbgen's layout)")
        ->check(CLI::IsMember({"ndjson", "csv", "tbl"}))
        ->capture_default_str();
    c->add_option("-o,--output", gen->output, "Output file (- for stdout)")->capture_default_str();
  }
  cmds.orders->add_option("--sf", gen->sf, "Scale factor (may be fractional)")->capture_default_str();
  cmds.orders->add_option("--seed", gen->seed, "Random seed")->capture_default_str();
  cmds.orders
      ->add_option("--format", gen->format,
                   "ndjson, csv (csv: the table's column order, no header) or tbl (dbgen's layout, TPC-H's columns)")
      ->check(CLI::IsMember({"ndjson", "csv", "tbl"}))
      ->capture_default_str();
  cmds.orders->add_option("-o,--output", gen->output, "Output file (- for stdout)")->capture_default_str();
  cmds.orders->add_flag("--nested", gen->nested,
                        "Each order with its line items as a line_items array (load with --entities "
                        "data/tpch/entities-nested)");
  cmds.orders->add_flag(
      "--spec", gen->spec,
      "TPC-H's column names and types, o_orderkey ... (load with --entities data/tpch/entities-full)");
  return cmds;
}

int Main(int argc, char** argv) {
  CLI::App app{"nomnom: load JSON data into PostgreSQL, fast and without losing any of it."};
  app.name("nomnom");
  app.set_version_flag("--version", VersionLine("nomnom"));
  app.require_subcommand(1);

  LoadArgs load;
  CLI::Option* on_conflict_opt = nullptr;
  CLI::App* load_cmd = AddLoadCommand(app, &load, &on_conflict_opt);

  GenArgs gen;
  const GenCommands gen_cmds = AddGenCommands(app, &gen);
  CLI::App* orders_cmd = gen_cmds.orders;
  const std::vector<CLI::App*>& table_cmds = gen_cmds.tables;

  WorkerArgs worker;
  CLI::App* worker_cmd = app.add_subcommand("worker", "Drain NATS JetStream into PostgreSQL until SIGTERM/SIGINT");
  worker_cmd->add_option("--db", worker.db, "PostgreSQL URL or conninfo")->envname("DATABASE_URL");
  AddEntitiesOption(worker_cmd, &worker.entities_dir);
  worker_cmd->add_option("--threads", worker.threads, "Worker threads (each its own fetches and connection)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  AddWorkerOptions(worker_cmd, &worker.worker);
  worker_cmd
      ->add_option("--idle-exit-ms", worker.worker.opts.idle_exit_ms,
                   "Exit after this many ms without messages (0: run until signalled)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  worker_cmd
      ->add_option("--metrics-listen", worker.metrics_listen,
                   "Serve /metrics, /live and /ready on this address (host:port; default: none)")
      ->envname("NOMNOM_METRICS_LISTEN");
  worker_cmd->add_flag("--json", worker.json, "Print the final counts as one JSON object");
  AddNatsOptions(worker_cmd, &worker.nats);
  AddLogOptions(worker_cmd, &worker.log);

  std::string schema_entity, schema_dir, schema_table, schema_from_table, schema_db;
  CLI::App* schema_cmd = app.add_subcommand("schema", "Print the CREATE TABLE statement for an entity");
  schema_cmd->add_option("entity", schema_entity,
                         "Entity name (default: every entity of the set; with --table: the only one, else Order)");
  schema_cmd->add_option("--entities", schema_dir, "Directory of entity YAML files")->envname("NOMNOM_ENTITIES");
  schema_cmd->add_option("--table", schema_table, "Table name to print instead of conformant_table");
  schema_cmd
      ->add_option("--from-table", schema_from_table,
                   "Print the entity YAML that matches this existing table ([schema.]name) instead")
      ->excludes("entity")
      ->excludes("--table");
  schema_cmd->add_option("--db", schema_db, "PostgreSQL URL or conninfo, for --from-table (default: DATABASE_URL)")
      ->envname("DATABASE_URL");

  TopArgs top;
  CLI::App* top_cmd =
      app.add_subcommand("top", "Show nomnomd's dashboard (GET /dashboard/snapshot) in the terminal, every second");
  top_cmd->add_option("url", top.url, "nomnomd's address, http://host:port")->required();
  top_cmd->add_option("--token", top.token, "Bearer token, when nomnomd has one")->envname("NOMNOM_API_TOKEN");
  top_cmd->add_option("--interval", top.interval_s, "Seconds between reads")
      ->check(CLI::Range(0.2, 3600.0))
      ->capture_default_str();
  top_cmd->add_flag("--once", top.once, "Print one snapshot and exit (1 when it cannot be read)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (load_cmd->parsed()) {
    load.on_conflict_given = on_conflict_opt->count() > 0;
    return RunLoadCommand(load);
  }
  if (orders_cmd->parsed()) {
    gen.table = "orders";
    return RunGenCommand(gen);
  }
  for (CLI::App* c : table_cmds) {
    if (!c->parsed()) continue;
    gen.table = c->get_name();
    return RunGenTableCommand(gen);
  }
  if (schema_cmd->parsed())
    return RunSchemaCommand(schema_dir, schema_entity, schema_table, schema_from_table, schema_db);
  if (top_cmd->parsed()) return RunTopCommand(top);
  if (worker_cmd->parsed()) {
    if (Status s = ApplyLogOptions(*worker_cmd, worker.log, "nomnom worker"); !s.ok()) {
      PrintError(s);
      return kExitUsage;
    }
    return RunWorkerCommand(worker);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace nomnom

int main(int argc, char** argv) {
  // Chunk and batch buffers are megabytes each and move between threads. With
  // glibc's dynamic mmap threshold they end up in per-thread heap arenas and
  // fragment them, so RSS creeps up with the input size; a fixed threshold
  // keeps every large buffer in its own mapping, returned on free.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  try {
    return nomnom::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nomnom: internal error: %s\n", e.what());
    return 1;
  }
}
