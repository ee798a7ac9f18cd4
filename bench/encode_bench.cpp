// Microbenchmarks of the CPU side of a load: parse + validate + encode TPC-H
// ORDERS NDJSON lines into binary COPY tuples, per core.
//
//   build/bench/nomnom_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// bytes_per_second is NDJSON input consumed per second by one thread.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/delimited_encoder.h"
#include "core/format/delimited_parser.h"
#include "core/format/ndjson_reader.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"
#include "core/gen/tpch_gen.h"
#include "core/gen/tpch_tables.h"

namespace nomnom {
namespace {

const Entity& OrderEntity() {
  static const Entity* e = [] {
    auto dir = ResolveEntityDir("");
    auto entities = LoadEntityDir(dir.value());
    return new Entity(*FindEntity(entities.value(), "Order"));
  }();
  return *e;
}

// About 25 MB of NDJSON (SF 0.1), padded for simdjson.
const std::string& OrdersNdjson() {
  static const std::string* s = [] {
    TpchOrdersOptions o;
    o.scale_factor = 0.1;
    auto gen = TpchOrdersGenerator::Create(o);
    auto* out = new std::string();
    while (!gen->Done()) gen->AppendNdjson(out);
    return out;
  }();
  return *s;
}

void BM_EncodeOrders(benchmark::State& state) {
  const std::string& input = OrdersNdjson();
  std::string padded = input + std::string(kChunkPadding, ' ');
  RowEncoder encoder(OrderEntity(), RowEncoderOptions{});
  ByteBuffer out(input.size() * 2);
  std::string error;
  uint64_t rows = 0;
  for (auto _ : state) {
    out.clear();
    const char* p = padded.data();
    const char* end = p + input.size();
    const char* readable_end = padded.data() + padded.size();
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      std::string_view line(p, static_cast<size_t>(nl - p));
      if (!encoder.Encode(line, static_cast<size_t>(readable_end - p), &out, nullptr, &error)) {
        state.SkipWithError(error.c_str());
        return;
      }
      ++rows;
      p = nl + 1;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(rows));
}
BENCHMARK(BM_EncodeOrders)->Unit(benchmark::kMillisecond);
// Fixed work, for instruction counts: perf stat -e instructions:u nomnom_bench --benchmark_filter=fixed
BENCHMARK(BM_EncodeOrders)->Name("BM_EncodeOrders/fixed")->Iterations(10)->Unit(benchmark::kMillisecond);

// simdjson alone: parse each line and touch every field, no validation or
// encoding. The ceiling for BM_EncodeOrders.
void BM_SimdjsonIterateOnly(benchmark::State& state) {
  const std::string& input = OrdersNdjson();
  std::string padded = input + std::string(kChunkPadding, ' ');
  simdjson::ondemand::parser parser;
  uint64_t fields = 0;
  for (auto _ : state) {
    const char* p = padded.data();
    const char* end = p + input.size();
    const char* readable_end = padded.data() + padded.size();
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      auto doc = parser.iterate(p, static_cast<size_t>(nl - p), static_cast<size_t>(readable_end - p));
      for (auto field : doc.get_object()) {
        std::string_view raw = field.value().raw_json_token();
        benchmark::DoNotOptimize(raw);
        ++fields;
      }
      p = nl + 1;
    }
  }
  benchmark::DoNotOptimize(fields);
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
}
BENCHMARK(BM_SimdjsonIterateOnly)->Unit(benchmark::kMillisecond);

// Reading chunks from a file is measured by scripts/bench-load.sh end to end;
// here: cutting an in-memory buffer into lines (the parser loop's memchr).
void BM_LineSplit(benchmark::State& state) {
  const std::string& input = OrdersNdjson();
  uint64_t lines = 0;
  for (auto _ : state) {
    const char* p = input.data();
    const char* end = p + input.size();
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      ++lines;
      p = nl + 1;
    }
  }
  benchmark::DoNotOptimize(lines);
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
}
BENCHMARK(BM_LineSplit)->Unit(benchmark::kMillisecond);

// TPC-H LINEITEM (data/tpch/entities-full) at SF 0.02 in each input format,
// encoded by one thread: NDJSON by RowEncoder, CSV and .tbl by
// DelimitedParser + DelimitedEncoder. bytes_per_second is input consumed.
const Entity& LineItemEntity() {
  static const Entity* e = [] {
    auto entities = LoadEntityDir(std::string(NOMNOM_SOURCE_DIR) + "/data/tpch/entities-full");
    return new Entity(*FindEntity(entities.value(), "lineitem"));
  }();
  return *e;
}

const std::string& LineItems(TpchTextFormat format) {
  static std::string* texts[3] = {};
  std::string*& s = texts[static_cast<int>(format)];
  if (s == nullptr) {
    s = new std::string();
    TpchTableOptions o;
    o.table = TpchTable::kLineItem;
    o.scale_factor = 0.02;
    o.format = format;
    (void)WriteTpchTable(o, [&](std::string_view c) {
      s->append(c);
      return Status::Ok();
    });
  }
  return *s;
}

void BM_EncodeLineItemNdjson(benchmark::State& state) {
  const std::string& input = LineItems(TpchTextFormat::kNdjson);
  std::string padded = input + std::string(kChunkPadding, ' ');
  RowEncoder encoder(LineItemEntity(), RowEncoderOptions{});
  ByteBuffer out(input.size() * 2);
  std::string error;
  for (auto _ : state) {
    out.clear();
    const char* p = padded.data();
    const char* end = p + input.size();
    const char* readable_end = padded.data() + padded.size();
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      std::string_view line(p, static_cast<size_t>(nl - p));
      if (!encoder.Encode(line, static_cast<size_t>(readable_end - p), &out, nullptr, &error)) {
        state.SkipWithError(error.c_str());
        return;
      }
      p = nl + 1;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
}
BENCHMARK(BM_EncodeLineItemNdjson)->Unit(benchmark::kMillisecond);

void EncodeDelimited(benchmark::State& state, TpchTextFormat format, DelimitedDialect dialect) {
  const std::string& input = LineItems(format);
  DelimitedParser parser(dialect);
  DelimitedEncoder encoder(LineItemEntity());
  ByteBuffer out(input.size() * 2);
  std::string error;
  for (auto _ : state) {
    out.clear();
    std::string_view rest = input;
    uint64_t line = 1;
    while (!rest.empty()) {
      size_t consumed = 0;
      uint64_t lines = 0;
      if (encoder.ParseAndEncode(&parser, rest, true, line, &out, nullptr, &consumed, &lines, &error) !=
          DelimitedEncoder::Fused::kRow) {
        state.SkipWithError(error.c_str());
        return;
      }
      rest.remove_prefix(consumed);
      line += lines;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
}
void BM_EncodeLineItemCsv(benchmark::State& state) {
  EncodeDelimited(state, TpchTextFormat::kCsv, DelimitedDialect::kCsv);
}
BENCHMARK(BM_EncodeLineItemCsv)->Unit(benchmark::kMillisecond);
void BM_EncodeLineItemTbl(benchmark::State& state) {
  EncodeDelimited(state, TpchTextFormat::kTbl, DelimitedDialect::kTbl);
}
BENCHMARK(BM_EncodeLineItemTbl)->Unit(benchmark::kMillisecond);

// DelimitedParser alone: records split into fields, nothing encoded. The
// ceiling for the two cases above.
void ParseDelimited(benchmark::State& state, TpchTextFormat format, DelimitedDialect dialect) {
  const std::string& input = LineItems(format);
  DelimitedParser parser(dialect);
  std::vector<DelimitedField> fields;
  std::string error;
  uint64_t n = 0;
  for (auto _ : state) {
    std::string_view rest = input;
    uint64_t line = 1;
    while (!rest.empty()) {
      size_t consumed = 0;
      uint64_t lines = 0;
      if (parser.Next(rest, true, line, &fields, &consumed, &lines, &error) != DelimitedParser::Result::kRecord) {
        state.SkipWithError(error.c_str());
        return;
      }
      n += fields.size();
      rest.remove_prefix(consumed);
      line += lines;
    }
  }
  benchmark::DoNotOptimize(n);
  state.SetBytesProcessed(static_cast<int64_t>(input.size()) * state.iterations());
}
void BM_ParseLineItemCsv(benchmark::State& state) {
  ParseDelimited(state, TpchTextFormat::kCsv, DelimitedDialect::kCsv);
}
BENCHMARK(BM_ParseLineItemCsv)->Unit(benchmark::kMillisecond);
void BM_ParseLineItemTbl(benchmark::State& state) {
  ParseDelimited(state, TpchTextFormat::kTbl, DelimitedDialect::kTbl);
}
BENCHMARK(BM_ParseLineItemTbl)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace nomnom

BENCHMARK_MAIN();
