#include "daemon/dashboard_snapshot.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

namespace nomnom {

namespace {

using json = nlohmann::ordered_json;

// Rates are shown with two decimals: enough for a page, and the JSON stays short.
double Round2(double v) { return std::round(v * 100.0) / 100.0; }

json EventsJson(const std::vector<DashboardEvent>& events) {
  json out = json::array();
  for (const auto& e : events) {
    json j;
    j["time"] = e.time;
    j["id"] = e.id;
    j["entity"] = e.entity;
    if (e.line > 0) j["line"] = e.line;
    j["reason"] = e.reason;
    out.push_back(std::move(j));
  }
  return out;
}

template <typename T>
json Optional(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

}  // namespace

void RecentEvents::Add(DashboardEvent e) {
  std::lock_guard<std::mutex> lock(mu_);
  ++added_;
  if (capacity_ == 0) return;
  events_.push_front(std::move(e));
  while (events_.size() > capacity_) events_.pop_back();
}

std::vector<DashboardEvent> RecentEvents::Newest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {events_.begin(), events_.end()};
}

uint64_t RecentEvents::added() const {
  std::lock_guard<std::mutex> lock(mu_);
  return added_;
}

double RatePerSecond(uint64_t before, uint64_t after, double seconds) {
  if (!(seconds > 0) || after < before) return 0;
  return static_cast<double>(after - before) / seconds;
}

std::optional<double> HistogramQuantile(double q, const std::vector<double>& bounds,
                                        const std::vector<uint64_t>& cumulative_before,
                                        const std::vector<uint64_t>& cumulative_after) {
  const size_t n = bounds.size() + 1;
  if (bounds.empty() || cumulative_before.size() != n || cumulative_after.size() != n || !(q > 0 && q < 1)) {
    return std::nullopt;
  }
  std::vector<uint64_t> cum;
  cum.reserve(n);
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (cumulative_after[i] < cumulative_before[i]) return std::nullopt;  // not the same histogram
    total = cumulative_after[i] - cumulative_before[i];
    cum.push_back(total);
  }
  if (total == 0) return std::nullopt;
  const double rank = q * static_cast<double>(total);
  for (size_t i = 0; i < n; ++i) {
    if (static_cast<double>(cum[i]) < rank) continue;
    if (i == bounds.size()) return bounds.back();  // in +Inf: the largest finite bound
    const double lower = i == 0 ? 0.0 : bounds[i - 1];
    const uint64_t below = i == 0 ? 0 : cum[i - 1];
    const uint64_t in_bucket = cum[i] - below;
    if (in_bucket == 0) return bounds[i];
    return lower + (bounds[i] - lower) * (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
  }
  return bounds.back();
}

namespace {

// The pipeline: NATS, PostgreSQL, the stream, the consumer, the workers here
// and every worker process's heartbeat.
json PipelineJson(const DashboardInputs& in) {
  json pipeline;
  pipeline["nats"] = {{"connected", in.nats_connected}};
  json pg;
  pg["connected"] = in.postgres_connected;
  if (!in.postgres_error.empty()) pg["error"] = in.postgres_error;
  pipeline["postgres"] = pg;
  pipeline["stream"] = {
      {"name", in.stream}, {"messages", Optional(in.stream_messages)}, {"bytes", Optional(in.stream_bytes)}};
  json consumer;
  consumer["name"] = in.consumer;
  consumer["pending"] = Optional(in.consumer_pending);
  consumer["ack_pending"] = Optional(in.consumer_ack_pending);
  consumer["redelivered"] = Optional(in.consumer_redelivered);
  consumer["lag"] = in.consumer_pending && in.consumer_ack_pending
                        ? json(*in.consumer_pending + *in.consumer_ack_pending)
                        : json(nullptr);
  pipeline["consumer"] = consumer;
  json states = json::object();
  for (const auto& [name, n] : in.worker_states) states[name] = n;
  json list = json::array();
  for (const auto& w : in.workers) {
    json x;
    x["name"] = w.name;
    x["state"] = w.state;
    if (!w.error.empty()) x["error"] = w.error;
    list.push_back(std::move(x));
  }
  pipeline["workers"] = {{"count", in.workers.size()}, {"states", std::move(states)}, {"list", std::move(list)}};
  json processes = json::array();
  for (const auto& p : in.processes) {
    json x;
    x["process"] = p.process;
    x["workers"] = p.workers;
    x["states"] = p.states;
    if (!p.error.empty()) x["error"] = p.error;
    x["rows_committed"] = p.rows_committed;
    x["age_s"] = Round2(p.age_s);
    processes.push_back(std::move(x));
  }
  pipeline["processes"] = std::move(processes);
  return pipeline;
}

}  // namespace

std::string SnapshotBuilder::Build(const DashboardInputs& in) {
  ++seq_;
  // Committed and dead rows are read from PostgreSQL on another thread: their
  // rates go by the time between readings.
  Intervals iv;
  iv.dt = prev_ ? in.monotonic_s - prev_->monotonic_s : 0.0;
  const bool timed_db = prev_ && in.db_read_s > 0 && prev_->db_read_s > 0;
  iv.db_dt = timed_db ? in.db_read_s - prev_->db_read_s : iv.dt;
  iv.new_db_reading = prev_ && (!timed_db || iv.db_dt > 0);

  json j;
  j["seq"] = seq_;
  j["time"] = in.time;
  j["interval_s"] = Round2(iv.dt);
  j["totals"] = TotalsJson(in, iv);
  j["entities"] = EntitiesJson(in, iv);
  j["history"] =
      HistoryJson(in.unix_s, j["totals"]["accepted_per_s"].get<double>(), j["totals"]["committed_per_s"].get<double>());
  j["pipeline"] = PipelineJson(in);
  j["api"] = ApiJson(in);
  j["dead_letters"] = EventsJson(in.dead_letters);
  j["rejects"] = EventsJson(in.rejects);
  prev_ = in;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json SnapshotBuilder::TotalsJson(const DashboardInputs& in, const Intervals& iv) {
  const auto rate = [&](uint64_t DashboardInputs::*field) {
    return prev_ ? Round2(RatePerSecond((*prev_).*field, in.*field, iv.dt)) : 0.0;
  };
  if (iv.new_db_reading) {
    total_db_rates_ = {Round2(RatePerSecond(prev_->committed, in.committed, iv.db_dt)),
                       Round2(RatePerSecond(prev_->dead, in.dead, iv.db_dt))};
  }
  json totals;
  totals["accepted"] = in.accepted;
  totals["rejected"] = in.rejected;
  totals["committed"] = in.committed;
  totals["dead"] = in.dead;
  totals["committed_known"] = in.committed_known;
  totals["accepted_per_s"] = rate(&DashboardInputs::accepted);
  totals["rejected_per_s"] = rate(&DashboardInputs::rejected);
  totals["committed_per_s"] = total_db_rates_.committed;
  totals["dead_per_s"] = total_db_rates_.dead;
  return totals;
}

json SnapshotBuilder::EntitiesJson(const DashboardInputs& in, const Intervals& iv) {
  // Per entity, against the same entity in the previous inputs.
  std::map<std::string, const DashboardEntityInput*> before;
  if (prev_) {
    for (const auto& e : prev_->entities) before[e.name] = &e;
  }
  json entities = json::array();
  for (const auto& e : in.entities) {
    const DashboardEntityInput* p = nullptr;
    if (auto it = before.find(e.name); it != before.end()) p = it->second;
    auto erate = [&](uint64_t DashboardEntityInput::*field) {
      return p ? Round2(RatePerSecond(p->*field, e.*field, iv.dt)) : 0.0;
    };
    DbRates& db = entity_db_rates_[e.name];
    if (iv.new_db_reading) {
      db = p ? DbRates{Round2(RatePerSecond(p->committed, e.committed, iv.db_dt)),
                       Round2(RatePerSecond(p->dead, e.dead, iv.db_dt))}
             : DbRates{};
    }
    json x;
    x["name"] = e.name;
    x["accepted"] = e.accepted;
    x["rejected"] = e.rejected;
    x["committed"] = e.committed;
    x["dead"] = e.dead;
    x["accepted_per_s"] = erate(&DashboardEntityInput::accepted);
    x["rejected_per_s"] = erate(&DashboardEntityInput::rejected);
    x["committed_per_s"] = db.committed;
    x["dead_per_s"] = db.dead;
    if (!e.derived.empty()) x["tables"] = TablesJson(e, p, db.committed, iv);
    entities.push_back(std::move(x));
  }
  return entities;
}

json SnapshotBuilder::TablesJson(const DashboardEntityInput& e, const DashboardEntityInput* p, double root_per_s,
                                 const Intervals& iv) {
  // Nested: every table's committed rows, the root's first.
  json tables = json::array();
  json root;
  root["table"] = e.table;
  root["committed"] = e.committed;
  root["committed_per_s"] = root_per_s;
  tables.push_back(std::move(root));
  for (const auto& [table, rows] : e.derived) {
    double& r = table_db_rates_[{e.name, table}];
    if (iv.new_db_reading) {
      uint64_t was = 0;
      bool known = false;
      if (p != nullptr) {
        for (const auto& [t, n] : p->derived) {
          if (t == table) {
            was = n;
            known = true;
          }
        }
      }
      r = known ? Round2(RatePerSecond(was, rows, iv.db_dt)) : 0.0;
    }
    json x;
    x["table"] = table;
    x["committed"] = rows;
    x["committed_per_s"] = r;
    tables.push_back(std::move(x));
  }
  return tables;
}

json SnapshotBuilder::HistoryJson(double unix_s, double accepted_per_s, double committed_per_s) {
  // Chart history: total rates, one point per build.
  history_.push_back(Point{unix_s, accepted_per_s, committed_per_s});
  while (history_.size() > options_.history_points) history_.pop_front();
  json t = json::array(), acc = json::array(), com = json::array();
  for (const auto& p : history_) {
    t.push_back(std::round(p.unix_s));
    acc.push_back(p.accepted_per_s);
    com.push_back(p.committed_per_s);
  }
  return {{"t", std::move(t)}, {"accepted_per_s", std::move(acc)}, {"committed_per_s", std::move(com)}};
}

json SnapshotBuilder::ApiJson(const DashboardInputs& in) {
  // The API: request rate and latency over the last readings.
  latency_.push_back(LatencySample{in.monotonic_s, in.api_latency});
  while (latency_.size() > options_.latency_window + 1) latency_.pop_front();
  json api;
  const LatencySample& first = latency_.front();
  const LatencySample& last = latency_.back();
  const double window = last.monotonic_s - first.monotonic_s;
  const uint64_t c0 = first.reading.cumulative.empty() ? 0 : first.reading.cumulative.back();
  const uint64_t c1 = last.reading.cumulative.empty() ? 0 : last.reading.cumulative.back();
  api["window_s"] = Round2(window);
  api["requests_per_s"] = Round2(RatePerSecond(c0, c1, window));
  const bool same = first.reading.bounds == last.reading.bounds;
  auto ms = [&](double q) -> json {
    if (!same) return nullptr;
    auto v = HistogramQuantile(q, last.reading.bounds, first.reading.cumulative, last.reading.cumulative);
    return v ? json(std::round(*v * 1e6) / 1e3) : json(nullptr);
  };
  api["p50_ms"] = ms(0.5);
  api["p99_ms"] = ms(0.99);
  return api;
}

}  // namespace nomnom
