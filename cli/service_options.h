// The command-line options that nomnomd and `nomnom worker` (and, for NATS,
// `nomnom load --via-nats`) share, declared once, with their environment
// variables and range checks. Values that would spin or publish empty
// messages (a 0 ms fetch wait, 0-row chunks, ...) are refused by CLI11 with a
// message naming the option.
//
// Not thread-safe; for start-up code.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "core/base/log.h"
#include "core/base/status.h"
#include "core/queue/nats_client.h"
#include "core/worker/ingest_worker.h"

namespace nomnom {

// NATS, the streams and the consumer.
struct NatsFlags {
  JetStreamConfig js;
  int64_t max_age_s = 86400;
  int64_t max_bytes_mb = 1024;
  int64_t dup_window_s = 120;
  int64_t ack_wait_ms = 30000;
};
void AddNatsOptions(CLI::App* app, NatsFlags* flags);
// Copies the unit-converted values into flags->js (call after parsing).
void FinishNatsOptions(NatsFlags* flags, const std::string& connection_name);

// The worker loop: fetch sizes, delivery limit, conflict mode.
struct WorkerFlags {
  WorkerOptions opts;
  std::string on_conflict = "nothing";
  int64_t ledger_retention_s = -1;  // -1: the stream's max age + duplicate window + 1 h; 0: keep forever
};
void AddWorkerOptions(CLI::App* app, WorkerFlags* flags);
// Sets opts.mode from on_conflict (call after parsing).
void FinishWorkerOptions(WorkerFlags* flags);
// How long ledger rows are kept, in ms (0: forever): --ledger-retention, or
// by default as long as JetStream may still deliver a chunk (max age) plus
// its duplicate window, plus an hour.
int64_t LedgerRetentionMs(const WorkerFlags& worker, const NatsFlags& nats);

// --entities DIR (NOMNOM_ENTITIES).
void AddEntitiesOption(CLI::App* app, std::string* dir);

// --log-level (NOMNOM_LOG_LEVEL, else RUST_LOG) and --log-json.
struct LogFlags {
  std::string level = "info";
  bool json = false;
};
void AddLogOptions(CLI::App* app, LogFlags* flags);
// Configures core/base/log.h for `component`; an unknown level is an error.
Status ApplyLogOptions(const CLI::App& app, const LogFlags& flags, const std::string& component);

// The bearer token from --token-file: the file's first line, without its line
// end. An unreadable or empty file is an error.
Result<std::string> ReadTokenFile(const std::string& path);

}  // namespace nomnom
