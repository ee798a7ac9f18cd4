#include "core/gen/tpch_tables.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

#include "core/gen/tpch_gen.h"

namespace nomnom {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

constexpr uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

__extension__ typedef unsigned __int128 Uint128;

class Rng {
 public:
  explicit Rng(uint64_t state) : state_(state) {}
  uint64_t Next() {
    state_ += kGolden;
    return Mix64(state_);
  }
  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    return lo + static_cast<uint64_t>((static_cast<Uint128>(Next()) * (hi - lo + 1)) >> 64);
  }

 private:
  uint64_t state_;
};

constexpr std::string_view kRegions[5] = {"AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"};
struct NationDef {
  std::string_view name;
  int region;
};
constexpr NationDef kNations[25] = {
    {"ALGERIA", 0},      {"ARGENTINA", 1},  {"BRAZIL", 1},  {"CANADA", 1},         {"EGYPT", 4},
    {"ETHIOPIA", 0},     {"FRANCE", 3},     {"GERMANY", 3}, {"INDIA", 2},          {"INDONESIA", 2},
    {"IRAN", 4},         {"IRAQ", 4},       {"JAPAN", 2},   {"JORDAN", 4},         {"KENYA", 0},
    {"MOROCCO", 0},      {"MOZAMBIQUE", 0}, {"PERU", 1},    {"CHINA", 2},          {"ROMANIA", 3},
    {"SAUDI ARABIA", 4}, {"VIETNAM", 2},    {"RUSSIA", 3},  {"UNITED KINGDOM", 3}, {"UNITED STATES", 1}};
constexpr std::string_view kSegments[5] = {"AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD"};
constexpr std::string_view kColours[] = {
    "almond",   "antique", "aquamarine", "azure",     "beige",      "bisque",    "black",     "blanched", "blue",
    "blush",    "brown",   "burlywood",  "burnished", "chartreuse", "chiffon",   "chocolate", "coral",    "cornflower",
    "cornsilk", "cream",   "cyan",       "dark",      "deep",       "dim",       "dodger",    "drab",     "firebrick",
    "floral",   "forest",  "frosted",    "gainsboro", "ghost",      "goldenrod", "green",     "grey",     "honeydew",
    "hot",      "indian",  "ivory",      "khaki",     "lace",       "lavender",  "lawn",      "lemon",    "light",
    "lime",     "linen",   "magenta",    "maroon",    "medium",     "metallic",  "midnight",  "mint",     "misty",
    "moccasin", "navajo",  "navy",       "olive",     "orange",     "orchid",    "pale",      "papaya",   "peach",
    "peru",     "pink",    "plum",       "powder",    "puff",       "purple",    "red",       "rose",     "rosy",
    "royal",    "saddle",  "salmon",     "sandy",     "seashell",   "sienna",    "sky",       "slate",    "smoke",
    "snow",     "spring",  "steel",      "tan",       "thistle",    "tomato",    "turquoise", "violet",   "wheat",
    "white",    "yellow"};
constexpr std::string_view kTypeS1[] = {"STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO"};
constexpr std::string_view kTypeS2[] = {"ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED"};
constexpr std::string_view kTypeS3[] = {"TIN", "NICKEL", "BRASS", "STEEL", "COPPER"};
constexpr std::string_view kContainerS1[] = {"SM", "LG", "MED", "JUMBO", "WRAP"};
constexpr std::string_view kContainerS2[] = {"CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM"};
constexpr char kAddressChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,";

template <size_t N>
std::string_view Pick(Rng& rng, const std::string_view (&words)[N]) {
  return words[rng.Uniform(0, N - 1)];
}

uint64_t Scaled(double sf, double n) {
  const double v = std::round(sf * n);
  return v < 1 ? 1 : static_cast<uint64_t>(v);
}

// Writes one row's fields in one of the three layouts.
class RowWriter {
 public:
  RowWriter(TpchTextFormat format, std::string* out) : format_(format), out_(out) {}

  void Begin() {
    first_ = true;
    if (format_ == TpchTextFormat::kNdjson) out_->push_back('{');
  }
  void End() {
    if (format_ == TpchTextFormat::kNdjson) out_->push_back('}');
    if (format_ == TpchTextFormat::kTbl) out_->push_back('|');
    out_->push_back('\n');
  }
  void Int(std::string_view name, int64_t v) {
    Key(name);
    char buf[24];
    out_->append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  }
  // A decimal with two digits after the point.
  void Cents(std::string_view name, int64_t cents) {
    Key(name);
    if (cents < 0) {
      out_->push_back('-');
      cents = -cents;
    }
    char buf[24];
    out_->append(buf, std::to_chars(buf, buf + sizeof buf, cents / 100).ptr);
    out_->push_back('.');
    out_->push_back(static_cast<char>('0' + (cents % 100) / 10));
    out_->push_back(static_cast<char>('0' + cents % 10));
  }
  void Date(std::string_view name, int32_t days) {
    Key(name);
    if (format_ == TpchTextFormat::kNdjson) out_->push_back('"');
    AppendTpchDate(days, out_);
    if (format_ == TpchTextFormat::kNdjson) out_->push_back('"');
  }
  void Str(std::string_view name, std::string_view v) {
    Key(name);
    switch (format_) {
      case TpchTextFormat::kNdjson:
        out_->push_back('"');
        for (char c : v) {
          if (c == '"' || c == '\\') out_->push_back('\\');
          out_->push_back(c);  // generated text has no control characters
        }
        out_->push_back('"');
        break;
      case TpchTextFormat::kCsv:
        if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
          out_->append(v);
        } else {
          out_->push_back('"');
          for (char c : v) {
            if (c == '"') out_->push_back('"');
            out_->push_back(c);
          }
          out_->push_back('"');
        }
        break;
      case TpchTextFormat::kTbl:
        out_->append(v);
        break;
    }
  }

 private:
  void Key(std::string_view name) {
    if (!first_) out_->push_back(format_ == TpchTextFormat::kTbl ? '|' : ',');
    first_ = false;
    if (format_ == TpchTextFormat::kNdjson) {
      out_->push_back('"');
      out_->append(name);
      out_->append("\":");
    }
  }

  TpchTextFormat format_;
  std::string* out_;
  bool first_ = true;
};

std::string Numbered(std::string_view prefix, uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*s#%09llu", static_cast<int>(prefix.size()), prefix.data(),
                static_cast<unsigned long long>(n));
  return buf;
}

std::string Phone(Rng& rng, int nation) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d-%03d-%03d-%04d", nation + 10, static_cast<int>(rng.Uniform(100, 999)),
                static_cast<int>(rng.Uniform(100, 999)), static_cast<int>(rng.Uniform(1000, 9999)));
  return buf;
}

std::string Address(Rng& rng) {
  std::string s(rng.Uniform(10, 40), ' ');
  for (char& c : s) c = kAddressChars[rng.Uniform(0, sizeof kAddressChars - 2)];
  return s;
}

std::string Text(Rng& rng, size_t lo, size_t hi) {
  std::string s;
  AppendTpchText(rng.Next(), lo, hi, &s);
  return s;
}

uint64_t TableSalt(TpchTable t) { return 0x6E6F6D5450434800ULL + static_cast<uint64_t>(t); }

// Appends row `i` (0-based) of a table other than ORDERS and LINEITEM.
void AppendRow(TpchTable table, uint64_t i, uint64_t seed_base, uint64_t suppliers, RowWriter& w) {
  Rng rng(Mix64(seed_base + i));
  w.Begin();
  switch (table) {
    case TpchTable::kRegion:
      w.Int("r_regionkey", static_cast<int64_t>(i));
      w.Str("r_name", kRegions[i]);
      w.Str("r_comment", Text(rng, 31, 115));
      break;
    case TpchTable::kNation:
      w.Int("n_nationkey", static_cast<int64_t>(i));
      w.Str("n_name", kNations[i].name);
      w.Int("n_regionkey", kNations[i].region);
      w.Str("n_comment", Text(rng, 31, 114));
      break;
    case TpchTable::kSupplier: {
      const auto nation = static_cast<int>(rng.Uniform(0, 24));
      w.Int("s_suppkey", static_cast<int64_t>(i + 1));
      w.Str("s_name", Numbered("Supplier", i + 1));
      w.Str("s_address", Address(rng));
      w.Int("s_nationkey", nation);
      w.Str("s_phone", Phone(rng, nation));
      w.Cents("s_acctbal", static_cast<int64_t>(rng.Uniform(0, 1099998)) - 99999);
      w.Str("s_comment", Text(rng, 25, 100));
      break;
    }
    case TpchTable::kCustomer: {
      const auto nation = static_cast<int>(rng.Uniform(0, 24));
      w.Int("c_custkey", static_cast<int64_t>(i + 1));
      w.Str("c_name", Numbered("Customer", i + 1));
      w.Str("c_address", Address(rng));
      w.Int("c_nationkey", nation);
      w.Str("c_phone", Phone(rng, nation));
      w.Cents("c_acctbal", static_cast<int64_t>(rng.Uniform(0, 1099998)) - 99999);
      w.Str("c_mktsegment", Pick(rng, kSegments));
      w.Str("c_comment", Text(rng, 29, 116));
      break;
    }
    case TpchTable::kPart: {
      const uint64_t key = i + 1;
      std::string name;
      std::array<size_t, 5> used{};
      for (size_t k = 0; k < 5; ++k) {
        size_t c = 0;
        bool dup = true;
        while (dup) {  // five distinct colours
          c = rng.Uniform(0, std::size(kColours) - 1);
          dup = false;
          for (size_t j = 0; j < k; ++j) dup = dup || used[j] == c;
        }
        used[k] = c;
        if (k > 0) name.push_back(' ');
        name.append(kColours[c]);
      }
      const auto m = rng.Uniform(1, 5);
      const auto n = rng.Uniform(1, 5);
      std::string type(Pick(rng, kTypeS1));
      type.append(" ").append(Pick(rng, kTypeS2)).append(" ").append(Pick(rng, kTypeS3));
      std::string container(Pick(rng, kContainerS1));
      container.append(" ").append(Pick(rng, kContainerS2));
      w.Int("p_partkey", static_cast<int64_t>(key));
      w.Str("p_name", name);
      w.Str("p_mfgr", "Manufacturer#" + std::to_string(m));
      w.Str("p_brand", "Brand#" + std::to_string(m) + std::to_string(n));
      w.Str("p_type", type);
      w.Int("p_size", static_cast<int64_t>(rng.Uniform(1, 50)));
      w.Str("p_container", container);
      w.Cents("p_retailprice", static_cast<int64_t>(90000 + (key / 10) % 20001 + 100 * (key % 1000)));
      w.Str("p_comment", Text(rng, 5, 22));
      break;
    }
    case TpchTable::kPartSupp: {
      const uint64_t part = i / 4 + 1;
      const uint64_t j = i % 4;
      const uint64_t s = suppliers;
      // TPC-H 4.2.3: PS_SUPPKEY = (ps_partkey + (i * ((S/4) + (int)(ps_partkey-1)/S))) modulo S + 1.
      // At tiny scale factors that can repeat a supplier for a part; then the
      // part's four suppliers are the ones after it, (part + j) % S + 1 (which
      // still repeats below 4 suppliers, as nothing else can).
      auto spec = [&](uint64_t k) { return (part + k * (s / 4 + (part - 1) / s)) % s + 1; };
      bool distinct = s >= 4;
      for (uint64_t a = 0; a < 4 && distinct; ++a)
        for (uint64_t b = a + 1; b < 4; ++b) distinct = distinct && spec(a) != spec(b);
      const uint64_t supp = distinct ? spec(j) : (part + j) % s + 1;
      w.Int("ps_partkey", static_cast<int64_t>(part));
      w.Int("ps_suppkey", static_cast<int64_t>(supp));
      w.Int("ps_availqty", static_cast<int64_t>(rng.Uniform(1, 9999)));
      w.Cents("ps_supplycost", static_cast<int64_t>(rng.Uniform(100, 100000)));
      w.Str("ps_comment", Text(rng, 49, 198));
      break;
    }
    case TpchTable::kOrders:
    case TpchTable::kLineItem:
      break;
  }
  w.End();
}

void AppendOrder(const TpchOrderRow& o, RowWriter& w) {
  w.Begin();
  w.Int("o_orderkey", static_cast<int64_t>(o.order_key));
  w.Int("o_custkey", static_cast<int64_t>(o.customer_key));
  w.Str("o_orderstatus", std::string_view(&o.order_status, 1));
  w.Cents("o_totalprice", o.total_price_cents);
  w.Date("o_orderdate", o.order_date);
  w.Str("o_orderpriority", kTpchOrderPriorities[o.order_priority]);
  w.Str("o_clerk", Numbered("Clerk", o.clerk));
  w.Int("o_shippriority", o.ship_priority);
  w.Str("o_comment", o.comment);
  w.End();
}

void AppendLineItem(const TpchOrderRow& o, const TpchLineItem& li, Rng& rng, RowWriter& w) {
  w.Begin();
  w.Int("l_orderkey", static_cast<int64_t>(o.order_key));
  w.Int("l_partkey", static_cast<int64_t>(li.part_key));
  w.Int("l_suppkey", static_cast<int64_t>(li.supplier_key));
  w.Int("l_linenumber", li.line_number);
  w.Cents("l_quantity", static_cast<int64_t>(li.quantity) * 100);
  w.Cents("l_extendedprice", li.extended_price_cents);
  w.Cents("l_discount", li.discount);
  w.Cents("l_tax", li.tax);
  w.Str("l_returnflag", std::string_view(&li.return_flag, 1));
  w.Str("l_linestatus", std::string_view(&li.line_status, 1));
  w.Date("l_shipdate", li.ship_date);
  w.Date("l_commitdate", li.commit_date);
  w.Date("l_receiptdate", li.receipt_date);
  w.Str("l_shipinstruct", kTpchShipInstructions[li.ship_instruct]);
  w.Str("l_shipmode", kTpchShipModes[li.ship_mode]);
  w.Str("l_comment", Text(rng, 10, 43));
  w.End();
}

constexpr size_t kChunkBytes = 1 << 20;

}  // namespace

Result<TpchTable> ParseTpchTable(std::string_view name) {
  for (auto t : {TpchTable::kRegion, TpchTable::kNation, TpchTable::kSupplier, TpchTable::kCustomer, TpchTable::kPart,
                 TpchTable::kPartSupp, TpchTable::kOrders, TpchTable::kLineItem}) {
    if (TpchTableName(t) == name) return t;
  }
  return Status::InvalidArgument("unknown TPC-H table '" + std::string(name) +
                                 "' (region, nation, supplier, customer, part, partsupp, orders, lineitem)");
}

std::string_view TpchTableName(TpchTable table) {
  switch (table) {
    case TpchTable::kRegion:
      return "region";
    case TpchTable::kNation:
      return "nation";
    case TpchTable::kSupplier:
      return "supplier";
    case TpchTable::kCustomer:
      return "customer";
    case TpchTable::kPart:
      return "part";
    case TpchTable::kPartSupp:
      return "partsupp";
    case TpchTable::kOrders:
      return "orders";
    case TpchTable::kLineItem:
      return "lineitem";
  }
  return "?";
}

Result<TpchTextFormat> ParseTpchTextFormat(std::string_view name) {
  if (name == "ndjson") return TpchTextFormat::kNdjson;
  if (name == "csv") return TpchTextFormat::kCsv;
  if (name == "tbl") return TpchTextFormat::kTbl;
  return Status::InvalidArgument("unknown format '" + std::string(name) + "' (ndjson, csv or tbl)");
}

uint64_t TpchTableRowCount(TpchTable table, double sf) {
  switch (table) {
    case TpchTable::kRegion:
      return 5;
    case TpchTable::kNation:
      return 25;
    case TpchTable::kSupplier:
      return Scaled(sf, 10000);
    case TpchTable::kCustomer:
      return Scaled(sf, 150000);
    case TpchTable::kPart:
      return Scaled(sf, 200000);
    case TpchTable::kPartSupp:
      return 4 * Scaled(sf, 200000);
    case TpchTable::kOrders:  // as TpchOrdersGenerator: no minimum
      return static_cast<uint64_t>(std::llround(1500000.0 * sf));
    case TpchTable::kLineItem:
      return 0;
  }
  return 0;
}

Status WriteTpchTable(const TpchTableOptions& options, const std::function<Status(std::string_view chunk)>& sink) {
  TpchOrdersOptions oo;
  oo.scale_factor = options.scale_factor;
  oo.seed = options.seed;
  if (Status s = ValidateTpchOrdersOptions(oo); !s.ok()) return s;
  std::string buf;
  buf.reserve(kChunkBytes + 4096);
  RowWriter w(options.format, &buf);
  auto flush = [&](bool force) -> Status {
    if (buf.empty() || (!force && buf.size() < kChunkBytes)) return Status::Ok();
    Status s = sink(buf);
    buf.clear();
    return s;
  };
  const uint64_t seed_base = Mix64(options.seed ^ TableSalt(options.table));
  if (options.table == TpchTable::kOrders || options.table == TpchTable::kLineItem) {
    auto gen = TpchOrdersGenerator::Create(oo);
    if (!gen.ok()) return gen.status();
    TpchOrderRow row;
    for (uint64_t i = 0; i < gen->row_count(); ++i) {
      gen->GenerateRow(i, &row);
      if (options.table == TpchTable::kOrders) {
        AppendOrder(row, w);
      } else {
        Rng rng(Mix64(seed_base + i));
        for (const TpchLineItem& li : row.line_items) AppendLineItem(row, li, rng, w);
      }
      if (Status s = flush(false); !s.ok()) return s;
    }
  } else {
    const uint64_t n = TpchTableRowCount(options.table, options.scale_factor);
    const uint64_t suppliers = Scaled(options.scale_factor, 10000);
    for (uint64_t i = 0; i < n; ++i) {
      AppendRow(options.table, i, seed_base, suppliers, w);
      if (Status s = flush(false); !s.ok()) return s;
    }
  }
  return flush(true);
}

Status WriteTpchTable(const TpchTableOptions& options, std::FILE* out) {
  Status s = WriteTpchTable(options, [out](std::string_view chunk) {
    if (std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size()) return Status::Io("write failed");
    return Status::Ok();
  });
  if (s.ok() && std::fflush(out) != 0) s = Status::Io("flush failed");
  return s;
}

}  // namespace nomnom
