// The dashboard's snapshot: what nomnomd's live page (GET /dashboard), its
// event stream and `nomnom top` show, built once a second as one JSON document.
//
// DashboardInputs is what the service read at one instant (counters, the
// monitors' last readings, the latency histogram, the last dead letters and
// rejects); SnapshotBuilder turns a sequence of them into snapshots, with
// rates from the difference of the last two inputs, the API's request rate and
// p50/p99 latency over a short window of histogram readings, and a bounded
// history of total rates for the page's chart. The JSON layout is documented in
// README.md ("Dashboard").
//
// Pure: no I/O, no clock (the inputs carry the times). SnapshotBuilder is not
// thread-safe (one builder thread); RecentEvents is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nomnom {

// A dead letter or a reject, as the page lists it.
struct DashboardEvent {
  std::string time;    // ISO 8601 (UTC)
  std::string id;      // the id /ingest/status knows ("" when the data got none)
  std::string entity;  // "" when unknown
  uint64_t line = 0;   // 1-based line in the batch or chunk, 0 when none
  std::string reason;
};

// The newest `capacity` events, newest first. Thread-safe.
class RecentEvents {
 public:
  explicit RecentEvents(size_t capacity) : capacity_(capacity) {}
  void Add(DashboardEvent e);
  std::vector<DashboardEvent> Newest() const;  // newest first
  uint64_t added() const;                      // how many were ever added

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<DashboardEvent> events_;  // guarded by mu_, newest at the front
  uint64_t added_ = 0;                 // guarded by mu_
};

struct DashboardEntityInput {
  std::string name;
  uint64_t accepted = 0;   // rows this process's API stored in JetStream
  uint64_t rejected = 0;   // rows this process's API refused as invalid
  uint64_t committed = 0;  // rows every worker committed (counters table)
  uint64_t dead = 0;       // dead letters: rows, plus chunks dead-lettered whole
  // Nested entities: the root's table (its rows are `committed`) and each
  // derived entity's table with the rows committed there (counters table).
  // Accepted, rejected and dead count root rows: a root row and its derived
  // rows are accepted, rejected or dead-lettered as one.
  std::string table;
  std::vector<std::pair<std::string, uint64_t>> derived;
};

struct DashboardWorker {
  std::string name;
  std::string state;  // "fetching", "committing", "backing off", ...
  std::string error;  // its last error, "" when none
};

// A worker process's last heartbeat (from the shared nomnom_workers table).
struct DashboardProcess {
  std::string process;  // "<host>:<pid>"
  int workers = 0;
  std::string states;  // "fetching 2, committing 1"
  std::string error;
  uint64_t rows_committed = 0;  // by this process since it started
  double age_s = 0;             // seconds since its heartbeat
};

// A latency histogram read at one instant: upper bounds (seconds) and the
// cumulative count per bound, then +Inf (bounds.size() + 1 entries).
struct HistogramReading {
  std::vector<double> bounds;
  std::vector<uint64_t> cumulative;
};

struct DashboardInputs {
  double monotonic_s = 0;  // steady clock, seconds: rates divide by its differences
  double unix_s = 0;       // wall clock, seconds since the epoch (chart time axis)
  std::string time;        // the same, ISO 8601
  std::vector<DashboardEntityInput> entities;
  // Totals as /stats gives them (the committed ones also cover entities that
  // this process does not know).
  uint64_t accepted = 0, rejected = 0, committed = 0, dead = 0;
  bool committed_known = false;  // PostgreSQL's counters were read at least once
  // When the committed and dead counts were read (monotonic_s's clock; 0:
  // unknown). Their rates divide by the time between two readings, not
  // between two snapshots, so a reading that lands late or twice in one
  // interval does not make the chart jump; without a new reading the last
  // rates stand.
  double db_read_s = 0;
  bool nats_connected = false;
  bool postgres_connected = false;
  std::string postgres_error;
  std::string stream, consumer;
  std::optional<uint64_t> stream_messages, stream_bytes;
  std::optional<uint64_t> consumer_pending, consumer_ack_pending, consumer_redelivered;
  std::vector<std::pair<std::string, int>> worker_states;  // state name -> how many workers
  std::vector<DashboardWorker> workers;
  std::vector<DashboardProcess> processes;  // every worker process seen lately
  HistogramReading api_latency;             // every API request but the dashboard's
  std::vector<DashboardEvent> dead_letters, rejects;
};

// (after - before) / seconds; 0 when seconds <= 0 or a counter went back
// (a restart, or a reading that failed).
double RatePerSecond(uint64_t before, uint64_t after, double seconds);

// The q-quantile (0 < q < 1) of the observations counted between two readings
// of one histogram (cumulative counts, +Inf last), interpolated linearly
// within its bucket as Prometheus' histogram_quantile does (the first bucket
// from 0). nullopt when nothing was observed or the readings do not match.
// A quantile in the +Inf bucket is the largest finite bound.
std::optional<double> HistogramQuantile(double q, const std::vector<double>& bounds,
                                        const std::vector<uint64_t>& cumulative_before,
                                        const std::vector<uint64_t>& cumulative_after);

struct SnapshotOptions {
  size_t history_points = 180;  // chart: seconds of total rates kept
  size_t latency_window = 10;   // readings (seconds) the request rate and percentiles cover
};

class SnapshotBuilder {
 public:
  explicit SnapshotBuilder(SnapshotOptions options = {}) : options_(options) {}
  // The snapshot for `in`, as compact JSON; rates against the previous call's
  // inputs (0 on the first call).
  std::string Build(const DashboardInputs& in);
  uint64_t builds() const { return seq_; }

 private:
  struct Point {
    double unix_s;
    double accepted_per_s;
    double committed_per_s;
  };
  struct LatencySample {
    double monotonic_s;
    HistogramReading reading;
  };
  // The time since the previous inputs, and since the previous database
  // reading (new_db_reading: the committed and dead rates are recomputed).
  struct Intervals {
    double dt = 0;
    double db_dt = 0;
    bool new_db_reading = false;
  };

  // The steps of Build(), one part of the snapshot each; those that keep
  // rates or history update them.
  nlohmann::ordered_json TotalsJson(const DashboardInputs& in, const Intervals& iv);
  nlohmann::ordered_json EntitiesJson(const DashboardInputs& in, const Intervals& iv);
  // A nested entity's tables (the root's committed rate given), against p,
  // the same entity in the previous inputs (nullptr: none).
  nlohmann::ordered_json TablesJson(const DashboardEntityInput& e, const DashboardEntityInput* p, double root_per_s,
                                    const Intervals& iv);
  nlohmann::ordered_json HistoryJson(double unix_s, double accepted_per_s, double committed_per_s);
  nlohmann::ordered_json ApiJson(const DashboardInputs& in);

  SnapshotOptions options_;
  std::optional<DashboardInputs> prev_;
  // The committed and dead rates from the last new database reading.
  struct DbRates {
    double committed = 0;
    double dead = 0;
  };
  DbRates total_db_rates_;
  std::map<std::string, DbRates> entity_db_rates_;
  std::map<std::pair<std::string, std::string>, double> table_db_rates_;  // (entity, table) -> committed/s
  std::deque<Point> history_;
  std::deque<LatencySample> latency_;
  uint64_t seq_ = 0;
};

}  // namespace nomnom
