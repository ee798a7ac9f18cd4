#include "core/gen/tpch_gen.h"

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using nomnom::StatusCode;
using nomnom::TpchFormat;
using nomnom::TpchOrderRow;
using nomnom::TpchOrdersGenerator;
using nomnom::TpchOrdersOptions;

namespace {

std::string Generate(double sf, uint64_t seed, TpchFormat format) {
  TpchOrdersOptions options;
  options.scale_factor = sf;
  options.seed = seed;
  options.format = format;
  std::string text;
  nomnom::Status s = nomnom::WriteTpchOrders(options, [&text](std::string_view chunk) {
    text.append(chunk);
    return nomnom::Status::Ok();
  });
  REQUIRE(s.ok());
  return text;
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    REQUIRE(nl != std::string_view::npos);  // every line ends with '\n'
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// RFC 4180 records of a whole text (quoted fields may span lines).
std::vector<std::vector<std::string>> ParseCsv(std::string_view text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  bool was_quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c == '"') {
      REQUIRE(field.empty());  // a quote may only open a field
      REQUIRE_FALSE(was_quoted);
      quoted = true;
      was_quoted = true;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else if (c == '\n') {
      record.push_back(std::move(field));
      field.clear();
      was_quoted = false;
      records.push_back(std::move(record));
      record.clear();
    } else {
      REQUIRE_FALSE(was_quoted);  // nothing may follow a closing quote but , or \n
      field += c;
    }
  }
  REQUIRE_FALSE(quoted);
  REQUIRE(field.empty());
  REQUIRE(record.empty());
  return records;
}

const char* const kFieldNames[9] = {"order_key",      "customer_key", "order_status",  "total_price", "order_date",
                                    "order_priority", "clerk",        "ship_priority", "comment"};

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Parses one NDJSON line with simdjson and checks field names, order and JSON
// types. Returns the values as text: strings unescaped, numbers as written.
std::vector<std::string> ParseNdjsonLine(simdjson::ondemand::parser& parser, std::string_view line) {
  simdjson::padded_string padded(line);
  simdjson::ondemand::document doc;
  REQUIRE(parser.iterate(padded).get(doc) == simdjson::SUCCESS);
  simdjson::ondemand::object obj;
  REQUIRE(doc.get_object().get(obj) == simdjson::SUCCESS);
  std::vector<std::string> values;
  for (auto field : obj) {
    std::string_view key;
    REQUIRE(field.unescaped_key().get(key) == simdjson::SUCCESS);
    REQUIRE(values.size() < 9);
    CHECK(key == kFieldNames[values.size()]);
    simdjson::ondemand::value value = field.value();
    simdjson::ondemand::json_type type;
    REQUIRE(value.type().get(type) == simdjson::SUCCESS);
    if (key == "total_price" || key == "ship_priority") {
      REQUIRE(type == simdjson::ondemand::json_type::number);
      const std::string_view raw = TrimRight(value.raw_json_token());
      if (key == "ship_priority") {
        int64_t v = -1;
        REQUIRE(value.get_int64().get(v) == simdjson::SUCCESS);
        CHECK(v == 0);
        CHECK(raw == "0");
      } else {
        double v = 0;
        REQUIRE(value.get_double().get(v) == simdjson::SUCCESS);
        CHECK(v > 0);
      }
      values.emplace_back(raw);
    } else {
      REQUIRE(type == simdjson::ondemand::json_type::string);
      std::string_view s;
      REQUIRE(value.get_string().get(s) == simdjson::SUCCESS);
      values.emplace_back(s);
    }
  }
  REQUIRE(values.size() == 9);
  return values;
}

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

uint64_t ToU64(std::string_view s) {
  REQUIRE(IsDigits(s));
  REQUIRE(s.size() <= 18);
  uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

bool IsValidDate(std::string_view d) {
  if (d.size() != 10 || d[4] != '-' || d[7] != '-') return false;
  if (!IsDigits(d.substr(0, 4)) || !IsDigits(d.substr(5, 2)) || !IsDigits(d.substr(8, 2))) {
    return false;
  }
  const int y = static_cast<int>(ToU64(d.substr(0, 4)));
  const int m = static_cast<int>(ToU64(d.substr(5, 2)));
  const int day = static_cast<int>(ToU64(d.substr(8, 2)));
  if (m < 1 || m > 12 || day < 1) return false;
  static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  const int max_day = kDays[m - 1] + (m == 2 && leap ? 1 : 0);
  return day <= max_day;
}

// "123.45": digits, a dot, exactly two digits.
bool HasTwoDecimals(std::string_view s) {
  const size_t dot = s.find('.');
  return dot != std::string_view::npos && dot > 0 && IsDigits(s.substr(0, dot)) && s.size() == dot + 3 &&
         IsDigits(s.substr(dot + 1));
}

struct Parsed {
  std::string text;
  std::vector<std::vector<std::string>> rows;
};

// SF 0.01, seed 42, parsed once and shared by the content tests.
const Parsed& Ndjson001() {
  static const Parsed parsed = [] {
    Parsed p;
    p.text = Generate(0.01, 42, TpchFormat::kNdjson);
    simdjson::ondemand::parser parser;
    for (std::string_view line : Lines(p.text)) p.rows.push_back(ParseNdjsonLine(parser, line));
    return p;
  }();
  return parsed;
}

}  // namespace

TEST_CASE("TPC-H orders: row count follows the scale factor", "[tpch_gen]") {
  for (auto [sf, expected] : {std::pair{0.01, 15000}, std::pair{0.001, 1500}}) {
    TpchOrdersOptions options;
    options.scale_factor = sf;
    auto gen = TpchOrdersGenerator::Create(options);
    REQUIRE(gen.ok());
    CHECK(gen->row_count() == static_cast<uint64_t>(expected));
    CHECK(Lines(Generate(sf, 7, TpchFormat::kNdjson)).size() == static_cast<size_t>(expected));
    CHECK(Lines(Generate(sf, 7, TpchFormat::kCsv)).size() == static_cast<size_t>(expected));
  }
  TpchOrdersOptions one;
  auto gen = TpchOrdersGenerator::Create(one);
  REQUIRE(gen.ok());
  CHECK(gen->row_count() == 1500000);
}

TEST_CASE("TPC-H orders: bad scale factors are rejected", "[tpch_gen]") {
  for (double sf :
       {0.0, -1.0, 1e-9, 1e6, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    TpchOrdersOptions options;
    options.scale_factor = sf;
    auto gen = TpchOrdersGenerator::Create(options);
    CHECK_FALSE(gen.ok());
    CHECK(gen.status().code() == StatusCode::kInvalidArgument);
    nomnom::Status s = nomnom::WriteTpchOrders(options, [](std::string_view) {
      FAIL("nothing may be written");
      return nomnom::Status::Ok();
    });
    CHECK(s.code() == StatusCode::kInvalidArgument);
  }
  CHECK(nomnom::ParseTpchFormat("csv").value() == TpchFormat::kCsv);
  CHECK(nomnom::ParseTpchFormat("ndjson").value() == TpchFormat::kNdjson);
  CHECK_FALSE(nomnom::ParseTpchFormat("json").ok());
}

TEST_CASE("TPC-H orders: sparse, increasing order keys", "[tpch_gen]") {
  const auto& rows = Ndjson001().rows;
  REQUIRE(rows.size() == 15000);
  const std::vector<uint64_t> first = {1, 2, 3, 4, 5, 6, 7, 8, 33, 34, 35, 36, 37, 38, 39, 40, 65};
  for (size_t i = 0; i < first.size(); ++i) CHECK(ToU64(rows[i][0]) == first[i]);
  uint64_t prev = 0;
  size_t bad = 0;
  for (const auto& r : rows) {
    const uint64_t k = ToU64(r[0]);
    if (k <= prev || (k - 1) % 32 >= 8) ++bad;
    prev = k;
  }
  CHECK(bad == 0);
  CHECK(prev == (15000 - 1) / 8 * 32 + (15000 - 1) % 8 + 1);
}

TEST_CASE("TPC-H orders: customer keys in range, never a multiple of 3", "[tpch_gen]") {
  const auto& rows = Ndjson001().rows;
  uint64_t lo = ~uint64_t{0}, hi = 0;
  size_t bad = 0;
  for (const auto& r : rows) {
    const uint64_t c = ToU64(r[1]);
    if (c % 3 == 0 || c < 1 || c > 1500) ++bad;
    lo = std::min(lo, c);
    hi = std::max(hi, c);
  }
  CHECK(bad == 0);
  CHECK(lo <= 5);  // the whole range is used
  CHECK(hi >= 1490);

  // Tiny SF: 150 rows, 15 customers.
  TpchOrdersOptions options;
  options.scale_factor = 0.0001;
  auto gen = TpchOrdersGenerator::Create(options);
  REQUIRE(gen.ok());
  REQUIRE(gen->row_count() == 150);
  TpchOrderRow row;
  std::set<uint64_t> seen;
  while (!gen->Done()) {
    gen->Next(&row);
    CHECK(row.customer_key >= 1);
    CHECK(row.customer_key <= 14);
    CHECK(row.customer_key % 3 != 0);
    seen.insert(row.customer_key);
  }
  CHECK(seen.size() == 10);  // 1,2,4,5,7,8,10,11,13,14
}

TEST_CASE("TPC-H orders: order dates valid and in range", "[tpch_gen]") {
  const auto& rows = Ndjson001().rows;
  std::string lo = "9999-99-99", hi = "0000-00-00";
  size_t bad = 0;
  for (const auto& r : rows) {
    const std::string& d = r[4];
    if (!IsValidDate(d) || d < "1992-01-01" || d > "1998-08-02") ++bad;
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(bad == 0);
  CHECK(lo < "1992-01-10");
  CHECK(hi > "1998-07-20");
}

TEST_CASE("TPC-H orders: date formatting", "[tpch_gen]") {
  std::string s;
  nomnom::AppendTpchDate(0, &s);
  CHECK(s == "1970-01-01");
  s.clear();
  nomnom::AppendTpchDate(8035, &s);
  CHECK(s == "1992-01-01");
  s.clear();
  nomnom::AppendTpchDate(8094, &s);
  CHECK(s == "1992-02-29");
  s.clear();
  nomnom::AppendTpchDate(10440, &s);
  CHECK(s == "1998-08-02");
}

TEST_CASE("TPC-H orders: status mix, priorities, clerks, comments, prices", "[tpch_gen]") {
  const auto& rows = Ndjson001().rows;
  std::map<std::string, size_t> status, priority;
  size_t bad_clerk = 0, bad_comment = 0, bad_price = 0;
  uint64_t max_clerk = 0;
  size_t commas = 0, inconsistent_status = 0;
  double price_sum = 0;
  for (const auto& r : rows) {
    // Lineitems ship 1..121 days after the order; 'F' means all shipped by
    // 1995-06-17, 'O' none. So early orders are F, late ones O, and P is only
    // possible in between.
    const std::string& date = r[4];
    const std::string want = date <= "1995-02-16" ? "F" : date >= "1995-06-17" ? "O" : "";
    if (!want.empty() && r[2] != want) ++inconsistent_status;
    ++status[r[2]];
    ++priority[r[5]];
    const std::string& clerk = r[6];
    if (clerk.size() != 15 || clerk.compare(0, 6, "Clerk#") != 0 || !IsDigits(std::string_view(clerk).substr(6))) {
      ++bad_clerk;
    } else {
      const uint64_t n = ToU64(std::string_view(clerk).substr(6));
      if (n < 1 || n > 10) ++bad_clerk;
      max_clerk = std::max(max_clerk, n);
    }
    const std::string& c = r[8];
    if (c.size() < 19 || c.size() > 78 || c.front() == ' ' || c.back() == ' ' || c.find("  ") != std::string::npos) {
      ++bad_comment;
    }
    if (c.find(',') != std::string::npos) ++commas;
    const std::string& p = r[3];
    if (!HasTwoDecimals(p)) {
      ++bad_price;
    } else {
      const double v = std::stod(p);
      price_sum += v;
      // 1 to 7 lineitems of 1..50 units at 900.00..2099.00, tax <= 8%, discount <= 10%.
      if (v < 900 * 0.9 - 0.01 || v > 7 * 50 * 2099 * 1.08 + 0.01) ++bad_price;
    }
  }
  const double n = static_cast<double>(rows.size());
  const double mean_price = price_sum / n;
  CHECK(status.size() == 3);
  CHECK(status["F"] / n > 0.30);
  CHECK(status["O"] / n > 0.30);
  CHECK(status["P"] > 0);
  CHECK(status["F"] + status["O"] + status["P"] == rows.size());
  REQUIRE(priority.size() == 5);
  for (std::string_view want : nomnom::kTpchOrderPriorities) {
    CHECK(priority[std::string(want)] > rows.size() / 10);
  }
  CHECK(bad_clerk == 0);
  CHECK(max_clerk == 10);
  CHECK(bad_comment == 0);
  CHECK(commas > 0);  // so CSV quoting is exercised
  CHECK(bad_price == 0);
  CHECK(inconsistent_status == 0);
  // E[total] ~= 4 lines * 25.5 units * ~1400.5 (retail price at SF 0.01)
  // * E[1+tax] 1.04 * E[1-discount] 0.95 ~= 141k; dropping tax or discount
  // moves it by 4-5%.
  CHECK(mean_price > 138000);
  CHECK(mean_price < 144000);
}

TEST_CASE("TPC-H orders: deterministic per seed", "[tpch_gen]") {
  const std::string a = Generate(0.001, 1, TpchFormat::kNdjson);
  const std::string b = Generate(0.001, 1, TpchFormat::kNdjson);
  const std::string c = Generate(0.001, 2, TpchFormat::kNdjson);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(Generate(0.001, 1, TpchFormat::kCsv) == Generate(0.001, 1, TpchFormat::kCsv));
  CHECK(Generate(0.001, 1, TpchFormat::kCsv) != Generate(0.001, 2, TpchFormat::kCsv));

  // Different seeds differ row by row, not only somewhere.
  auto la = Lines(a), lc = Lines(c);
  REQUIRE(la.size() == lc.size());
  size_t same = 0;
  for (size_t i = 0; i < la.size(); ++i) same += la[i] == lc[i] ? 1 : 0;
  CHECK(same < 5);

  // The row-level API produces the same bytes, sequentially or at random.
  TpchOrdersOptions options;
  options.scale_factor = 0.001;
  options.seed = 1;
  auto gen = TpchOrdersGenerator::Create(options);
  REQUIRE(gen.ok());
  std::string rebuilt;
  while (!gen->Done()) gen->AppendNdjson(&rebuilt);
  CHECK(rebuilt == a);
  TpchOrderRow row;
  gen->GenerateRow(777, &row);
  std::string one;
  nomnom::AppendTpchOrderNdjson(row, &one);
  CHECK(one == std::string(la[777]) + "\n");
  gen->Seek(1000);
  gen->Next(&row);
  CHECK(row.order_key == 1000 / 8 * 32 + 1000 % 8 + 1);
  CHECK(gen->position() == 1001);
}

TEST_CASE("TPC-H orders: CSV matches NDJSON", "[tpch_gen]") {
  const auto& json_rows = Ndjson001().rows;
  const std::string csv = Generate(0.01, 42, TpchFormat::kCsv);
  const auto csv_rows = ParseCsv(csv);
  REQUIRE(csv_rows.size() == json_rows.size());
  size_t mismatched = 0, wrong_width = 0;
  for (size_t i = 0; i < csv_rows.size(); ++i) {
    if (csv_rows[i].size() != 9) {
      ++wrong_width;
    } else if (csv_rows[i] != json_rows[i]) {
      ++mismatched;
    }
  }
  CHECK(wrong_width == 0);
  CHECK(mismatched == 0);
  CHECK(csv.find(",\"") != std::string::npos);   // some comment needed quoting
  CHECK(csv.find("\"\"") == std::string::npos);  // no quotes in generated text
}

TEST_CASE("TPC-H orders: writers escape awkward text", "[tpch_gen]") {
  TpchOrderRow row;
  row.order_key = 18446744073709551615ULL;
  row.customer_key = 2;
  row.order_status = 'P';
  row.total_price_cents = 5;
  row.order_date = 8035;
  row.order_priority = 3;
  row.clerk = 1234567890;
  row.comment = std::string("q\"b\\s\nn\tt\x01 c,\r\x7f") + "\xc3\xa9";

  std::string json;
  nomnom::AppendTpchOrderNdjson(row, &json);
  REQUIRE(json.back() == '\n');
  CHECK(json.find('\n') == json.size() - 1);
  simdjson::ondemand::parser parser;
  const auto values = ParseNdjsonLine(parser, std::string_view(json).substr(0, json.size() - 1));
  CHECK(values[0] == "18446744073709551615");
  CHECK(values[2] == "P");
  CHECK(values[3] == "0.05");
  CHECK(values[4] == "1992-01-01");
  CHECK(values[5] == "4-NOT SPECIFIED");
  CHECK(values[6] == "Clerk#1234567890");
  CHECK(values[8] == row.comment);

  std::string csv;
  nomnom::AppendTpchOrderCsv(row, &csv);
  const auto records = ParseCsv(csv);
  REQUIRE(records.size() == 1);
  REQUIRE(records[0].size() == 9);
  CHECK(records[0] == values);

  row.comment = "plain words";
  csv.clear();
  nomnom::AppendTpchOrderCsv(row, &csv);
  CHECK(csv ==
        "18446744073709551615,2,P,0.05,1992-01-01,4-NOT SPECIFIED,Clerk#1234567890,0,plain "
        "words\n");
}

TEST_CASE("TPC-H orders: FILE* writer reports write failures", "[tpch_gen]") {
  TpchOrdersOptions options;
  options.scale_factor = 0.001;
  std::FILE* full = std::fopen("/dev/full", "w");
  if (full == nullptr) {
    WARN("/dev/full not available; skipped");
    return;
  }
  nomnom::Status s = nomnom::WriteTpchOrders(options, full);
  std::fclose(full);
  CHECK(s.code() == StatusCode::kIo);

  std::FILE* tmp = std::tmpfile();
  REQUIRE(tmp != nullptr);
  s = nomnom::WriteTpchOrders(options, tmp);
  CHECK(s.ok());
  const long size = std::ftell(tmp);
  std::fclose(tmp);
  CHECK(static_cast<size_t>(size) == Generate(0.001, 0, TpchFormat::kNdjson).size());
}
