// TPC-H-shaped data generation: the ORDERS table, as NDJSON or CSV.
//
// Used by `nomnom gen tpch orders --sf X [--format ndjson|csv] [--seed S]` and by
// benchmarks that need realistic rows in memory. Rows follow TPC-H 4.2.3 for
// ORDERS, with these documented simplifications:
//   * Row count is round(1,500,000 * SF); SF may be fractional. Customer, part
//     and clerk counts are max(1, round(SF * 150,000 / 200,000 / 1,000)).
//   * O_ORDERKEY is sparse as in dbgen: the i-th order (i from 1) gets
//     ((i-1)/8)*32 + (i-1)%8 + 1, so only the first 8 of every 32 keys are used.
//   * O_CUSTKEY is uniform over the keys in [1, customers] that are not a
//     multiple of 3 (drawn directly from that set, no re-draw loop).
//   * O_ORDERDATE is uniform in [1992-01-01, 1998-08-02] (ENDDATE - 151 days).
//   * O_ORDERSTATUS and O_TOTALPRICE come from 1..7 simulated lineitems (part
//     key, quantity 1..50, discount 0.00..0.10, tax 0.00..0.08, ship date =
//     order date + 1..121 days; a lineitem is 'F' if shipped on or before
//     1995-06-17, else 'O'). Lineitems are not emitted and nothing ties them to
//     a LINEITEM table. The total is computed exactly in integer arithmetic and
//     rounded half-up to cents once, on the sum (dbgen rounds per lineitem).
//   * O_COMMENT is 19..78 characters of sentences built from a small TPC-H-like
//     vocabulary (not the spec's grammar and word weights), cut at the drawn
//     length; if the cut lands on a space it moves one character (shorter, or
//     longer when that would drop below 19). Comments may contain commas (so
//     CSV quoting is exercised) but never quotes, backslashes or control
//     characters; the writers escape correctly anyway.
//   * order_key and customer_key are written as strings (target columns are
//     VARCHAR); total_price as a number with exactly two decimals.
//
// Determinism: output depends only on (scale factor, seed, format), and is the
// same on every platform and standard library. Randomness comes from
// splitmix64 (Steele, Lea & Flood 2014): row i (0-based) uses its own stream
// whose state starts at Mix64(Mix64(seed ^ 0x6E6F6D6E6F6D5450) + i), where
// Mix64 is the splitmix64 output finaliser, and ranges are mapped with
// Lemire's 128-bit multiply (no std:: distributions). Because each
// row has its own stream, any row can be generated independently
// (GenerateRow), e.g. to split generation across threads.
//
// Thread-safety: TpchOrdersGenerator's const methods may be called
// concurrently; Next/Append*/Seek mutate the cursor and need external
// synchronisation. The free functions are reentrant.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace nomnom {

enum class TpchFormat { kNdjson, kCsv };

// "ndjson" or "csv" (exact, lower case).
Result<TpchFormat> ParseTpchFormat(std::string_view name);

struct TpchOrdersOptions {
  double scale_factor = 1;  // > 0 and <= kTpchMaxScaleFactor; must yield >= 1 row
  uint64_t seed = 0;
  TpchFormat format = TpchFormat::kNdjson;
  // NDJSON only: each order carries its simulated lineitems as a
  // `line_items` array (for data/tpch/entities-nested). The order fields are
  // the same as without it.
  bool nested = false;
};

inline constexpr double kTpchMaxScaleFactor = 100000;  // largest official TPC-H SF

// OK, or InvalidArgument explaining why the options cannot be generated.
Status ValidateTpchOrdersOptions(const TpchOrdersOptions& options);

// The five O_ORDERPRIORITY values; TpchOrderRow::order_priority indexes this.
inline constexpr std::string_view kTpchOrderPriorities[5] = {"1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED",
                                                             "5-LOW"};

// One simulated lineitem of an order (written only by the nested NDJSON
// format). Part, quantity, discount, tax and ship date are the values the
// order's status and total come from; the other fields are derived from them
// and the order key without drawing more random numbers, so that orders
// are the same with or without their lineitems: L_SUPPKEY by TPC-H's formula
// (S = max(1, round(SF * 10,000)) suppliers), commit date = order date +
// 30..90, receipt date = ship date + 1..30, return flag R or A when received
// by 1995-06-17 else N, line status F when shipped by then else O.
struct TpchLineItem {
  uint32_t line_number = 0;  // 1-based
  uint64_t part_key = 0;
  uint64_t supplier_key = 0;
  uint32_t quantity = 0;
  int64_t extended_price_cents = 0;  // quantity * the part's retail price
  uint32_t discount = 0;             // hundredths: 0..10
  uint32_t tax = 0;                  // hundredths: 0..8
  char return_flag = 'N';
  char line_status = 'O';
  int32_t ship_date = 0, commit_date = 0, receipt_date = 0;  // days since 1970-01-01
  uint8_t ship_instruct = 0;                                 // index into kTpchShipInstructions
  uint8_t ship_mode = 0;                                     // index into kTpchShipModes
};

inline constexpr std::string_view kTpchShipInstructions[4] = {"DELIVER IN PERSON", "COLLECT COD", "NONE",
                                                              "TAKE BACK RETURN"};
inline constexpr std::string_view kTpchShipModes[7] = {"REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"};

struct TpchOrderRow {
  uint64_t order_key = 0;
  uint64_t customer_key = 0;
  char order_status = 'O';        // 'F', 'O' or 'P'
  int64_t total_price_cents = 0;  // O_TOTALPRICE * 100
  int32_t order_date = 0;         // days since 1970-01-01
  uint8_t order_priority = 0;     // index into kTpchOrderPriorities
  uint64_t clerk = 0;             // written as "Clerk#" + 9-digit zero-padded number
  int32_t ship_priority = 0;
  std::string comment;
  std::vector<TpchLineItem> line_items;  // 1..7 (filled by every generator)
};

// Appends "YYYY-MM-DD" for `days` since 1970-01-01 (proleptic Gregorian).
void AppendTpchDate(int32_t days, std::string* out);

// Append one row plus '\n'. NDJSON field order: order_key, customer_key,
// order_status, total_price, order_date, order_priority, clerk, ship_priority,
// comment. CSV: the same columns, no header, RFC 4180 quoting of a field only
// when it contains a comma, quote, CR or LF (loadable with COPY ... CSV).
void AppendTpchOrderNdjson(const TpchOrderRow& row, std::string* out);
void AppendTpchOrderCsv(const TpchOrderRow& row, std::string* out);
// The NDJSON line with `"line_items":[{line_number, part_key, supplier_key,
// quantity, extended_price, discount, tax, return_flag, line_status,
// ship_date, commit_date, receipt_date, ship_instruct, ship_mode}, ...]` after
// the order's fields (keys as strings, prices with two decimals, discount and
// tax as 0.00..0.10).
void AppendTpchOrderNestedNdjson(const TpchOrderRow& row, std::string* out);

class TpchOrdersGenerator {
 public:
  // Fails with InvalidArgument when ValidateTpchOrdersOptions does.
  static Result<TpchOrdersGenerator> Create(const TpchOrdersOptions& options);

  uint64_t row_count() const { return row_count_; }
  uint64_t position() const { return position_; }  // index of the next row
  bool Done() const { return position_ >= row_count_; }
  const TpchOrdersOptions& options() const { return options_; }

  // Moves the cursor; index <= row_count().
  void Seek(uint64_t index) { position_ = index; }

  // Fills *row with the row at the cursor and advances. Requires !Done().
  // Reuses row->comment's capacity.
  void Next(TpchOrderRow* row);
  // Next() then append it in the given format. Require !Done().
  void AppendNdjson(std::string* out);
  void AppendCsv(std::string* out);
  void Append(TpchFormat format, std::string* out);

  // The row at `index` (0-based, < row_count()), independent of the cursor.
  void GenerateRow(uint64_t index, TpchOrderRow* row) const;

 private:
  explicit TpchOrdersGenerator(const TpchOrdersOptions& options);

  TpchOrdersOptions options_;
  uint64_t row_count_ = 0;
  uint64_t customers_ = 1;
  uint64_t parts_ = 1;
  uint64_t clerks_ = 1;
  uint64_t suppliers_ = 1;
  uint64_t seed_base_ = 0;
  uint64_t position_ = 0;
  TpchOrderRow scratch_;
};

// Generates every row and hands the text to `sink` in chunks of about 1 MiB
// (whole lines only). Stops at, and returns, the first non-OK sink Status.
Status WriteTpchOrders(const TpchOrdersOptions& options, const std::function<Status(std::string_view chunk)>& sink);

// As above, writing to `out` with fwrite and flushing at the end; a failed
// write or flush is Status::Io. The caller owns (and closes) `out`.
Status WriteTpchOrders(const TpchOrdersOptions& options, std::FILE* out);

// The longest text AppendTpchText makes.
inline constexpr size_t kMaxTpchText = 240;

// Appends comment-like text (the O_COMMENT vocabulary) of min_length..max_length
// characters (1 <= min_length <= max_length <= kMaxTpchText; may be one longer
// when the cut lands on a space), drawn from the splitmix64 stream `stream`.
void AppendTpchText(uint64_t stream, size_t min_length, size_t max_length, std::string* out);

}  // namespace nomnom
