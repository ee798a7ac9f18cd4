// Metrics: counters, gauges and histograms with Prometheus text exposition
// (format version 0.0.4).
//
// A MetricsRegistry owns its metrics; references returned by Counter(),
// Gauge() and Histogram() stay valid for the registry's lifetime. Looking a
// metric up takes a mutex, so callers keep the reference; updating one is a
// relaxed atomic operation and thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nomnom {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricCounter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class MetricGauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) {
    double cur = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
    }
  }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class MetricHistogram {
 public:
  explicit MetricHistogram(std::vector<double> upper_bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bucket (le bound), then +Inf; and sum, count.
  std::vector<uint64_t> CumulativeCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Default latency buckets in seconds: 100 µs .. 10 s.
std::vector<double> LatencyBuckets();

class MetricsRegistry {
 public:
  MetricCounter& Counter(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  MetricGauge& Gauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  MetricHistogram& Histogram(const std::string& name, const std::string& help, const MetricLabels& labels = {},
                             std::vector<double> bounds = LatencyBuckets());
  // The whole registry in Prometheus text format, families sorted by name.
  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, std::unique_ptr<MetricCounter>> counters;  // by rendered label set
    std::map<std::string, std::unique_ptr<MetricGauge>> gauges;
    std::map<std::string, std::unique_ptr<MetricHistogram>> histograms;
  };
  Family& GetFamily(const std::string& name, Kind kind, const std::string& help);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
};

// Renders labels as {a="x",b="y"} with Prometheus escaping ("" for none).
std::string RenderLabels(const MetricLabels& labels);

}  // namespace nomnom
