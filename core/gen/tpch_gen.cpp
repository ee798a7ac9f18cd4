#include "core/gen/tpch_gen.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

namespace nomnom {
namespace {

// ---------------------------------------------------------------- randomness

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kSeedSalt = 0x6E6F6D6E6F6D5450ULL;  // "nomnomTP"

constexpr uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

__extension__ typedef unsigned __int128 Uint128;

// splitmix64: state advances by the golden gamma, output is Mix64(state).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t Next() {
    state_ += kGolden;
    return Mix64(state_);
  }
  // Uniform in [lo, hi] (hi >= lo) by Lemire's multiply-shift; the bias is at
  // most (hi-lo+1)/2^64, irrelevant at these ranges.
  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    const uint64_t span = hi - lo + 1;
    if (span == 0) return Next();  // full 64-bit range
    return lo + static_cast<uint64_t>((static_cast<Uint128>(Next()) * span) >> 64);
  }

 private:
  uint64_t state_;
};

// ---------------------------------------------------------------------- dates

// Howard Hinnant's days_from_civil / civil_from_days.
constexpr int32_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Civil {
  int year;
  int month;
  int day;
};

constexpr Civil CivilFromDays(int32_t z) {
  z += 719468;
  const int era = (z >= 0 ? z : z - 146096) / 146097;
  const int doe = z - era * 146097;
  const int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int y = yoe + era * 400;
  const int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int mp = (5 * doy + 2) / 153;
  const int d = doy - (153 * mp + 2) / 5 + 1;
  const int m = mp < 10 ? mp + 3 : mp - 9;
  return {m <= 2 ? y + 1 : y, m, d};
}

constexpr int32_t kStartDate = DaysFromCivil(1992, 1, 1);
constexpr int32_t kEndDate = DaysFromCivil(1998, 12, 31);
constexpr int32_t kLastOrderDate = kEndDate - 151;
constexpr int32_t kCurrentDate = DaysFromCivil(1995, 6, 17);
static_assert(kLastOrderDate == DaysFromCivil(1998, 8, 2));
static_assert(CivilFromDays(kLastOrderDate).month == 8);

// Writes exactly 10 characters.
inline char* WriteDate(int32_t days, char* p) {
  const Civil c = CivilFromDays(days);
  int y = c.year;
  if (y < 0 || y > 9999) y = 0;  // unreachable for generated rows
  p[0] = static_cast<char>('0' + y / 1000);
  p[1] = static_cast<char>('0' + y / 100 % 10);
  p[2] = static_cast<char>('0' + y / 10 % 10);
  p[3] = static_cast<char>('0' + y % 10);
  p[4] = '-';
  p[5] = static_cast<char>('0' + c.month / 10);
  p[6] = static_cast<char>('0' + c.month % 10);
  p[7] = '-';
  p[8] = static_cast<char>('0' + c.day / 10);
  p[9] = static_cast<char>('0' + c.day % 10);
  return p + 10;
}

// ------------------------------------------------------------------- comments

constexpr std::string_view kNouns[] = {
    "foxes",     "ideas",      "theodolites", "pinto beans", "instructions", "dependencies", "excuses",
    "platelets", "asymptotes", "courts",      "dolphins",    "multipliers",  "sauternes",    "warthogs",
    "frets",     "dinos",      "attainments", "somas",       "patterns",     "forges",       "braids",
    "frays",     "warhorses",  "dugouts",     "epitaphs",    "pearls",       "tithes",       "waters",
    "orbits",    "gifts",      "sheaves",     "depths",      "sentiments",   "decoys",       "realms",
    "pains",     "grouches",   "escapades",   "accounts",    "deposits",     "packages",     "requests"};
constexpr std::string_view kVerbs[] = {
    "sleep",     "wake",     "are",    "cajole", "haggle", "nag",     "use",     "boost",  "affix",   "detect",
    "integrate", "maintain", "nod",    "was",    "lose",   "sublate", "solve",   "thrash", "promise", "engage",
    "hinder",    "print",    "x-ray",  "breach", "eat",    "grow",    "impress", "mold",   "poach",   "serve",
    "run",       "dazzle",   "snooze", "doze",   "unwind", "kindle",  "play",    "hang",   "believe", "doubt"};
constexpr std::string_view kAdjectives[] = {
    "furious", "sly",    "careful", "blithe", "quick",    "fluffy",    "slow",     "quiet",   "ruthless", "thin",
    "close",   "dogged", "daring",  "brave",  "stealthy", "permanent", "enticing", "idle",    "busy",     "regular",
    "final",   "ironic", "even",    "bold",   "silent",   "pending",   "special",  "express", "unusual"};
constexpr std::string_view kAdverbs[] = {
    "sometimes", "always",    "never",   "furiously",  "slyly",       "carefully",  "blithely",
    "quickly",   "fluffily",  "slowly",  "quietly",    "ruthlessly",  "thinly",     "closely",
    "doggedly",  "daringly",  "bravely", "stealthily", "permanently", "enticingly", "idly",
    "busily",    "regularly", "finally", "ironically", "evenly",      "boldly",     "silently"};
constexpr std::string_view kPrepositions[] = {
    "about",      "above",   "according to", "across", "after",   "against", "along",       "among",   "around",
    "at",         "atop",    "before",       "behind", "beneath", "beside",  "besides",     "between", "beyond",
    "by",         "despite", "during",       "except", "for",     "from",    "in place of", "inside",  "instead of",
    "into",       "near",    "of",           "on",     "outside", "over",    "past",        "since",   "through",
    "throughout", "to",      "toward",       "under",  "until",   "upon",    "without",     "with",    "within"};
constexpr std::string_view kTerminators[] = {".", ".", ".", ";", ":", "?", "!", "--", ","};

constexpr size_t kMinComment = 19;
constexpr size_t kMaxComment = 78;

template <size_t N>
std::string_view Pick(SplitMix64& rng, const std::string_view (&words)[N]) {
  return words[rng.Uniform(0, N - 1)];
}

// A tiny text builder over a fixed buffer; sentences are appended until the
// text is long enough, so every word fits (longest sentence < 120 chars).
class CommentText {
 public:
  void Word(std::string_view w) {
    if (size_ != 0 && buf_[size_ - 1] != ' ') buf_[size_++] = ' ';
    Raw(w);
  }
  void Raw(std::string_view w) {
    std::memcpy(buf_ + size_, w.data(), w.size());
    size_ += w.size();
  }
  size_t size() const { return size_; }
  const char* data() const { return buf_; }

 private:
  char buf_[kMaxTpchText + 160];
  size_t size_ = 0;
};

void NounPhrase(SplitMix64& rng, CommentText* t) {
  switch (rng.Uniform(0, 3)) {
    case 0:
      break;
    case 1:
      t->Word(Pick(rng, kAdjectives));
      break;
    case 2:
      t->Word(Pick(rng, kAdjectives));
      t->Raw(",");
      t->Word(Pick(rng, kAdjectives));
      break;
    default:
      t->Word(Pick(rng, kAdverbs));
      t->Word(Pick(rng, kAdjectives));
      break;
  }
  t->Word(Pick(rng, kNouns));
}

void Sentence(SplitMix64& rng, CommentText* t) {
  NounPhrase(rng, t);
  t->Word(Pick(rng, kVerbs));
  if (rng.Uniform(0, 1) == 1) t->Word(Pick(rng, kAdverbs));
  if (rng.Uniform(0, 2) == 0) {
    t->Word(Pick(rng, kPrepositions));
    t->Word("the");
    NounPhrase(rng, t);
  }
  t->Raw(Pick(rng, kTerminators));
  t->Raw(" ");
}

void MakeComment(SplitMix64& rng, size_t length, std::string* out, size_t min_length = kMinComment) {
  CommentText text;
  while (text.size() <= length) Sentence(rng, &text);
  // Words are separated by single spaces, so if the cut ends on a space the
  // characters either side are not spaces.
  size_t n = length;
  if (text.data()[n - 1] == ' ') n = n - 1 >= min_length ? n - 1 : n + 1;
  out->assign(text.data(), n);
}

// ------------------------------------------------------------------ formatting

// Upper bound of one formatted line, given the comment length.
inline size_t MaxLineBytes(const TpchOrderRow& row) { return 512 + 6 * row.comment.size(); }

inline char* WriteU64(uint64_t v, char* p) { return std::to_chars(p, p + 20, v).ptr; }

inline char* WriteLiteral(std::string_view s, char* p) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

inline char* WritePrice(int64_t cents, char* p) {
  if (cents < 0) {
    *p++ = '-';
    cents = -cents;
  }
  const auto c = static_cast<uint64_t>(cents);
  p = WriteU64(c / 100, p);
  *p++ = '.';
  *p++ = static_cast<char>('0' + c / 10 % 10);
  *p++ = static_cast<char>('0' + c % 10);
  return p;
}

inline char* WriteClerk(uint64_t clerk, char* p) {
  p = WriteLiteral("Clerk#", p);
  char digits[20];
  const char* end = std::to_chars(digits, digits + 20, clerk).ptr;
  const auto len = static_cast<size_t>(end - digits);
  for (size_t i = len; i < 9; ++i) *p++ = '0';
  std::memcpy(p, digits, len);
  return p + len;
}

inline char* WriteJsonString(std::string_view s, char* p) {
  static constexpr char kHex[] = "0123456789abcdef";
  *p++ = '"';
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (u >= 0x20 && ch != '"' && ch != '\\') {
      *p++ = ch;
      continue;
    }
    *p++ = '\\';
    switch (ch) {
      case '"':
        *p++ = '"';
        break;
      case '\\':
        *p++ = '\\';
        break;
      case '\n':
        *p++ = 'n';
        break;
      case '\r':
        *p++ = 'r';
        break;
      case '\t':
        *p++ = 't';
        break;
      case '\b':
        *p++ = 'b';
        break;
      case '\f':
        *p++ = 'f';
        break;
      default:
        p = WriteLiteral("u00", p);
        *p++ = kHex[u >> 4];
        *p++ = kHex[u & 0xF];
        break;
    }
  }
  *p++ = '"';
  return p;
}

inline char* WriteCsvField(std::string_view s, char* p) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return WriteLiteral(s, p);
  *p++ = '"';
  for (const char ch : s) {
    if (ch == '"') *p++ = '"';
    *p++ = ch;
  }
  *p++ = '"';
  return p;
}

// Appends via a stack buffer: no zero-filling of the string's new tail.
template <typename WriteFn>
void AppendLine(const TpchOrderRow& row, std::string* out, WriteFn write) {
  const size_t max = MaxLineBytes(row);
  char stack_buf[1024];
  if (max <= sizeof(stack_buf)) {
    const char* end = write(stack_buf);
    out->append(stack_buf, static_cast<size_t>(end - stack_buf));
  } else {
    std::string heap(max, '\0');
    const char* end = write(heap.data());
    out->append(heap.data(), static_cast<size_t>(end - heap.data()));
  }
}

}  // namespace

// ----------------------------------------------------------------------- API

Result<TpchFormat> ParseTpchFormat(std::string_view name) {
  if (name == "ndjson") return TpchFormat::kNdjson;
  if (name == "csv") return TpchFormat::kCsv;
  return Status::InvalidArgument("unknown format '" + std::string(name) + "' (expected ndjson or csv)");
}

Status ValidateTpchOrdersOptions(const TpchOrdersOptions& options) {
  const double sf = options.scale_factor;
  if (!std::isfinite(sf) || sf <= 0) {
    return Status::InvalidArgument("scale factor must be a positive number");
  }
  if (sf > kTpchMaxScaleFactor) {
    return Status::InvalidArgument("scale factor must be at most 100000");
  }
  if (std::llround(1500000.0 * sf) < 1) {
    return Status::InvalidArgument("scale factor is too small: it yields no ORDERS rows");
  }
  if (options.format != TpchFormat::kNdjson && options.format != TpchFormat::kCsv) {
    return Status::InvalidArgument("unknown output format");
  }
  if (options.nested && options.format != TpchFormat::kNdjson) {
    return Status::InvalidArgument("nested orders (line_items arrays) are written as NDJSON only");
  }
  return Status::Ok();
}

void AppendTpchDate(int32_t days, std::string* out) {
  char buf[10];
  WriteDate(days, buf);
  out->append(buf, sizeof(buf));
}

void AppendTpchOrderNdjson(const TpchOrderRow& row, std::string* out) {
  AppendLine(row, out, [&row](char* p) {
    p = WriteLiteral("{\"order_key\":\"", p);
    p = WriteU64(row.order_key, p);
    p = WriteLiteral("\",\"customer_key\":\"", p);
    p = WriteU64(row.customer_key, p);
    p = WriteLiteral("\",\"order_status\":", p);
    p = WriteJsonString(std::string_view(&row.order_status, 1), p);
    p = WriteLiteral(",\"total_price\":", p);
    p = WritePrice(row.total_price_cents, p);
    p = WriteLiteral(",\"order_date\":\"", p);
    p = WriteDate(row.order_date, p);
    p = WriteLiteral("\",\"order_priority\":\"", p);
    p = WriteLiteral(kTpchOrderPriorities[row.order_priority % 5], p);
    p = WriteLiteral("\",\"clerk\":\"", p);
    p = WriteClerk(row.clerk, p);
    p = WriteLiteral("\",\"ship_priority\":", p);
    p = std::to_chars(p, p + 12, row.ship_priority).ptr;
    p = WriteLiteral(",\"comment\":", p);
    p = WriteJsonString(row.comment, p);
    p = WriteLiteral("}\n", p);
    return p;
  });
}

void AppendTpchOrderNestedNdjson(const TpchOrderRow& row, std::string* out) {
  AppendTpchOrderNdjson(row, out);
  out->resize(out->size() - 2);  // "}\n"
  out->append(",\"line_items\":[");
  char buf[64];
  auto num = [&](uint64_t v) { out->append(buf, static_cast<size_t>(WriteU64(v, buf) - buf)); };
  auto price = [&](int64_t cents) { out->append(buf, static_cast<size_t>(WritePrice(cents, buf) - buf)); };
  auto date = [&](int32_t days) {
    out->push_back('"');
    out->append(buf, static_cast<size_t>(WriteDate(days, buf) - buf));
    out->push_back('"');
  };
  for (size_t i = 0; i < row.line_items.size(); ++i) {
    const TpchLineItem& li = row.line_items[i];
    out->append(i == 0 ? "{\"line_number\":" : ",{\"line_number\":");
    num(li.line_number);
    out->append(",\"part_key\":\"");
    num(li.part_key);
    out->append("\",\"supplier_key\":\"");
    num(li.supplier_key);
    out->append("\",\"quantity\":");
    num(li.quantity);
    out->append(",\"extended_price\":");
    price(li.extended_price_cents);
    out->append(",\"discount\":");
    price(li.discount);
    out->append(",\"tax\":");
    price(li.tax);
    out->append(",\"return_flag\":\"");
    out->push_back(li.return_flag);
    out->append("\",\"line_status\":\"");
    out->push_back(li.line_status);
    out->append("\",\"ship_date\":");
    date(li.ship_date);
    out->append(",\"commit_date\":");
    date(li.commit_date);
    out->append(",\"receipt_date\":");
    date(li.receipt_date);
    out->append(",\"ship_instruct\":\"");
    out->append(kTpchShipInstructions[li.ship_instruct % 4]);
    out->append("\",\"ship_mode\":\"");
    out->append(kTpchShipModes[li.ship_mode % 7]);
    out->append("\"}");
  }
  out->append("]}\n");
}

void AppendTpchOrderCsv(const TpchOrderRow& row, std::string* out) {
  AppendLine(row, out, [&row](char* p) {
    p = WriteU64(row.order_key, p);
    *p++ = ',';
    p = WriteU64(row.customer_key, p);
    *p++ = ',';
    p = WriteCsvField(std::string_view(&row.order_status, 1), p);
    *p++ = ',';
    p = WritePrice(row.total_price_cents, p);
    *p++ = ',';
    p = WriteDate(row.order_date, p);
    *p++ = ',';
    p = WriteLiteral(kTpchOrderPriorities[row.order_priority % 5], p);
    *p++ = ',';
    p = WriteClerk(row.clerk, p);
    *p++ = ',';
    p = std::to_chars(p, p + 12, row.ship_priority).ptr;
    *p++ = ',';
    p = WriteCsvField(row.comment, p);
    *p++ = '\n';
    return p;
  });
}

TpchOrdersGenerator::TpchOrdersGenerator(const TpchOrdersOptions& options) : options_(options) {
  const double sf = options.scale_factor;
  auto scaled = [sf](double base) {
    const long long n = std::llround(sf * base);
    return n < 1 ? uint64_t{1} : static_cast<uint64_t>(n);
  };
  row_count_ = static_cast<uint64_t>(std::llround(1500000.0 * sf));
  customers_ = scaled(150000);
  parts_ = scaled(200000);
  clerks_ = scaled(1000);
  suppliers_ = scaled(10000);
  seed_base_ = Mix64(options.seed ^ kSeedSalt);
}

Result<TpchOrdersGenerator> TpchOrdersGenerator::Create(const TpchOrdersOptions& options) {
  Status s = ValidateTpchOrdersOptions(options);
  if (!s.ok()) return s;
  return TpchOrdersGenerator(options);
}

void TpchOrdersGenerator::GenerateRow(uint64_t index, TpchOrderRow* row) const {
  SplitMix64 rng(Mix64(seed_base_ + index));

  row->order_key = (index / 8) * 32 + index % 8 + 1;
  // The j-th (0-based) positive integer that is not a multiple of 3 is j + j/2 + 1.
  const uint64_t eligible_customers = customers_ - customers_ / 3;
  const uint64_t j = rng.Uniform(0, eligible_customers - 1);
  row->customer_key = j + j / 2 + 1;
  row->order_date = static_cast<int32_t>(rng.Uniform(0, kLastOrderDate - kStartDate)) + kStartDate;
  row->order_priority = static_cast<uint8_t>(rng.Uniform(0, 4));
  row->clerk = rng.Uniform(1, clerks_);
  row->ship_priority = 0;
  const auto comment_length = static_cast<size_t>(rng.Uniform(kMinComment, kMaxComment));

  // Lineitems. Prices in cents; discount and tax in hundredths, so each
  // charge is ext_cents * (100 + tax) * (100 - discount) / 10^4 cents.
  const uint64_t lines = rng.Uniform(1, 7);
  uint64_t total_scaled = 0;  // in 10^-4 cents
  uint64_t shipped = 0;
  row->line_items.resize(lines);
  for (uint64_t l = 0; l < lines; ++l) {
    const uint64_t part = rng.Uniform(1, parts_);
    const uint64_t quantity = rng.Uniform(1, 50);
    const uint64_t discount = rng.Uniform(0, 10);
    const uint64_t tax = rng.Uniform(0, 8);
    const auto ship_date = row->order_date + static_cast<int32_t>(rng.Uniform(1, 121));
    const uint64_t retail_cents = 90000 + (part / 10) % 20001 + 100 * (part % 1000);
    total_scaled += quantity * retail_cents * (100 + tax) * (100 - discount);
    if (ship_date <= kCurrentDate) ++shipped;
    // The rest of the lineitem, derived without drawing from rng (so the
    // order's remaining fields stay the same).
    TpchLineItem& li = row->line_items[l];
    const uint64_t h = Mix64(row->order_key * 8 + l);
    li.line_number = static_cast<uint32_t>(l + 1);
    li.part_key = part;
    li.supplier_key = (part + (l % 4) * (suppliers_ / 4 + (part - 1) / suppliers_)) % suppliers_ + 1;
    li.quantity = static_cast<uint32_t>(quantity);
    li.extended_price_cents = static_cast<int64_t>(quantity * retail_cents);
    li.discount = static_cast<uint32_t>(discount);
    li.tax = static_cast<uint32_t>(tax);
    li.ship_date = ship_date;
    li.commit_date = row->order_date + 30 + static_cast<int32_t>(h % 61);
    li.receipt_date = ship_date + 1 + static_cast<int32_t>((h >> 8) % 30);
    li.return_flag = li.receipt_date <= kCurrentDate ? (((h >> 16) & 1) ? 'R' : 'A') : 'N';
    li.line_status = ship_date > kCurrentDate ? 'O' : 'F';
    li.ship_instruct = static_cast<uint8_t>((h >> 24) % 4);
    li.ship_mode = static_cast<uint8_t>((h >> 32) % 7);
  }
  row->total_price_cents = static_cast<int64_t>((total_scaled + 5000) / 10000);
  row->order_status = shipped == lines ? 'F' : shipped == 0 ? 'O' : 'P';

  MakeComment(rng, comment_length, &row->comment);
}

void TpchOrdersGenerator::Next(TpchOrderRow* row) {
  GenerateRow(position_, row);
  ++position_;
}

void TpchOrdersGenerator::AppendNdjson(std::string* out) {
  Next(&scratch_);
  AppendTpchOrderNdjson(scratch_, out);
}

void TpchOrdersGenerator::AppendCsv(std::string* out) {
  Next(&scratch_);
  AppendTpchOrderCsv(scratch_, out);
}

void TpchOrdersGenerator::Append(TpchFormat format, std::string* out) {
  if (options_.nested && format == TpchFormat::kNdjson) {
    Next(&scratch_);
    AppendTpchOrderNestedNdjson(scratch_, out);
  } else if (format == TpchFormat::kCsv) {
    AppendCsv(out);
  } else {
    AppendNdjson(out);
  }
}

Status WriteTpchOrders(const TpchOrdersOptions& options, const std::function<Status(std::string_view chunk)>& sink) {
  auto gen = TpchOrdersGenerator::Create(options);
  if (!gen.ok()) return gen.status();
  constexpr size_t kChunk = size_t{1} << 20;
  std::string buf;
  buf.reserve(kChunk + 4096);
  while (!gen->Done()) {
    gen->Append(options.format, &buf);
    if (buf.size() >= kChunk) {
      Status s = sink(buf);
      if (!s.ok()) return s;
      buf.clear();
    }
  }
  if (!buf.empty()) return sink(buf);
  return Status::Ok();
}

Status WriteTpchOrders(const TpchOrdersOptions& options, std::FILE* out) {
  if (out == nullptr) return Status::InvalidArgument("no output stream");
  Status s = WriteTpchOrders(options, [out](std::string_view chunk) {
    if (std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size()) {
      return Status::Io(std::string("writing TPC-H orders failed: ") + std::strerror(errno));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (std::fflush(out) != 0) {
    return Status::Io(std::string("flushing TPC-H orders failed: ") + std::strerror(errno));
  }
  return Status::Ok();
}

void AppendTpchText(uint64_t stream, size_t min_length, size_t max_length, std::string* out) {
  SplitMix64 rng(stream);
  std::string text;
  MakeComment(rng, static_cast<size_t>(rng.Uniform(min_length, max_length)), &text, min_length);
  out->append(text);
}

}  // namespace nomnom
