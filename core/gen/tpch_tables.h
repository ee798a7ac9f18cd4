// Every TPC-H table as text: `nomnom gen tpch TABLE --format ndjson|csv|tbl`,
// with the spec's column names (TPC-H 2.18 clause 1.4) in the column order of
// data/tpch/entities-full.
//
//   * Cardinalities as in the spec: REGION 5, NATION 25, SUPPLIER 10,000 x SF,
//     CUSTOMER 150,000 x SF, PART 200,000 x SF, PARTSUPP 4 per part, ORDERS
//     1,500,000 x SF, LINEITEM 1..7 per order (about 6,000,000 x SF); counts
//     that scale are max(1, round(n x SF)).
//   * ORDERS and LINEITEM come from TpchOrdersGenerator (core/gen/tpch_gen.h), so
//     an order's total and status are those of its lineitems, and the same
//     (SF, seed) gives the same orders as `gen tpch orders`.
//   * Values are plausible per the spec, not dbgen's: names "Supplier#%09d",
//     "Customer#%09d"; phones "CC-ddd-ddd-dddd" with CC = nation key + 10;
//     account balances -999.99..9999.99; PART's retail price by the spec's
//     formula, its name five distinct colours, MFGR/BRAND/TYPE/CONTAINER from
//     the spec's lists; PARTSUPP's supplier keys by the spec's formula, so
//     (ps_partkey, ps_suppkey) is unique; comments from the O_COMMENT
//     vocabulary at the spec's lengths. Addresses are 10..40 letters, digits,
//     spaces and commas.
//   * NDJSON: one object per row, keys = column names, integers as numbers,
//     decimals as numbers with two decimals, dates as "YYYY-MM-DD".
//     CSV: no header, RFC 4180 quoting only where needed. TBL: dbgen's layout,
//     fields separated by '|', a trailing '|', no header, no quoting (no value
//     contains '|' or a newline).
// Determinism: output depends only on (table, SF, seed, format). Row i of a
// table uses its own splitmix64 stream, seeded from (seed, table, i).
// Thread-safety: the functions are reentrant.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace nomnom {

enum class TpchTable { kRegion, kNation, kSupplier, kCustomer, kPart, kPartSupp, kOrders, kLineItem };
enum class TpchTextFormat { kNdjson, kCsv, kTbl };

// "region", "nation", ..., "lineitem" (lower case, exact).
Result<TpchTable> ParseTpchTable(std::string_view name);
std::string_view TpchTableName(TpchTable table);
// "ndjson", "csv" or "tbl".
Result<TpchTextFormat> ParseTpchTextFormat(std::string_view name);

struct TpchTableOptions {
  TpchTable table = TpchTable::kOrders;
  double scale_factor = 1;  // as TpchOrdersOptions: > 0, <= kTpchMaxScaleFactor
  uint64_t seed = 0;
  TpchTextFormat format = TpchTextFormat::kNdjson;
};

// Rows of the table at this scale factor; LINEITEM's is not known without
// generating the orders, and is returned as 0.
uint64_t TpchTableRowCount(TpchTable table, double scale_factor);

// Generates every row and hands the text to `sink` in chunks of about 1 MiB
// (whole lines only). Stops at, and returns, the first non-OK sink Status;
// InvalidArgument for bad options.
Status WriteTpchTable(const TpchTableOptions& options, const std::function<Status(std::string_view chunk)>& sink);
// As above to `out` (fwrite, flushed at the end; a failed write is Status::Io).
Status WriteTpchTable(const TpchTableOptions& options, std::FILE* out);

}  // namespace nomnom
