#include "core/format/pg_binary.h"

#include <cstddef>
#include <cstring>

#include "core/base/utf8.h"

namespace nomnom::pg {

using namespace detail;  // NOLINT: the helpers shared with the inline hot paths

namespace {

// NUMERIC sign words (PostgreSQL's NUMERIC_NAN, _PINF, _NINF; _POS and _NEG are in the header).
constexpr uint16_t kNumericNan = 0xC000;
constexpr uint16_t kNumericPinf = 0xD000;
constexpr uint16_t kNumericNinf = 0xF000;
// numeric_send reads the dscale of a special value through the short-header
// macro, which sees bits of the 0xD000/0xF000 flags: infinities go out with
// dscale 32, NaN with 0. numeric_recv ignores it; we match it byte for byte.
constexpr uint16_t kInfinityDscale = 32;

constexpr int64_t kNumericMaxWeight = 32767;  // int16 weight: 131072 digits before the point
constexpr int64_t kNumericMaxDscale = 16383;  // NUMERIC_DSCALE_MASK
// numeric_in rejects |exponent| >= INT_MAX / 2.
constexpr int64_t kNumericMaxExponent = 1073741823;

// The whitespace numeric_in skips around a value (C isspace in the C locale).
bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view s, std::string_view lower_word) {
  if (s.size() != lower_word.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (AsciiLower(s[i]) != lower_word[i]) return false;
  }
  return true;
}

int64_t FloorDiv4(int64_t v) { return v >= 0 ? v / 4 : -((-v + 3) / 4); }
int64_t FloorMod4(int64_t v) { return v - 4 * FloorDiv4(v); }

// Appends a numeric field with no digits (zero, NaN, infinities).
void AppendDigitlessNumeric(ByteBuffer& out, uint16_t sign, uint16_t dscale) {
  out.PutI32(8);
  out.PutU16(0);  // ndigits
  out.PutU16(0);  // weight
  out.PutU16(sign);
  out.PutU16(dscale);
}

bool NumericError(std::string* error, std::string_view what, std::string_view text) {
  if (error != nullptr) {
    // Cut at a character boundary, invalid bytes escaped: messages are valid UTF-8.
    *error = std::string(what) + ": \"" + Excerpt(text, 64) + "\"";
  }
  return false;
}

// Parses the "YYYY-MM-DD" at the start of text (which must be >= 10 bytes).
std::optional<int32_t> ParseDatePrefix(std::string_view text) {
  const char* p = text.data();
  int y_hi, y_lo, month, day;
  if (!TwoDigits(p, &y_hi) || !TwoDigits(p + 2, &y_lo) || p[4] != '-' || !TwoDigits(p + 5, &month) || p[7] != '-' ||
      !TwoDigits(p + 8, &day)) {
    return std::nullopt;
  }
  const int year = y_hi * 100 + y_lo;
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) return std::nullopt;
  return static_cast<int32_t>(DaysFromCivil(year, month, day) - kUnixEpochDaysBefore2000);
}

}  // namespace

void AppendCopyHeader(ByteBuffer& out) {
  static constexpr char kSignature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
  out.Append(kSignature, sizeof kSignature);
  out.PutI32(0);  // flags: no OIDs
  out.PutI32(0);  // header extension length
}

void AppendCopyTrailer(ByteBuffer& out) { out.PutI16(-1); }

bool AppendNumericField(ByteBuffer& out, std::string_view text, std::string* error) {
  char* w = out.Grow(kMaxPlainNumericField);
  if (char* end = WritePlainNumericField(w, text); end != nullptr) {
    out.Commit(static_cast<size_t>(end - w));
    return true;
  }
  // numeric_in ignores surrounding whitespace.
  std::string_view s = text;
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  if (s.empty()) return NumericError(error, "empty numeric value", text);

  const char c0 = AsciiLower(s[0]);
  if (c0 == 'n' || c0 == 'i' || ((s[0] == '+' || s[0] == '-') && s.size() > 1 && AsciiLower(s[1]) == 'i')) {
    if (EqualsIgnoreCase(s, "nan")) {
      AppendDigitlessNumeric(out, kNumericNan, 0);
      return true;
    }
    const bool negative = s[0] == '-';
    std::string_view word = (s[0] == '+' || s[0] == '-') ? s.substr(1) : s;
    if (EqualsIgnoreCase(word, "infinity") || EqualsIgnoreCase(word, "inf")) {
      AppendDigitlessNumeric(out, negative ? kNumericNinf : kNumericPinf, kInfinityDscale);
      return true;
    }
    return NumericError(error, "invalid numeric value", text);
  }

  // Grammar: [+-] (digits ['.' digits*] | '.' digits) [(e|E) [+-] digits].
  const size_t n = s.size();
  size_t i = 0;
  bool negative = false;
  if (s[i] == '+' || s[i] == '-') {
    negative = s[i] == '-';
    ++i;
  }
  const size_t int_begin = i;
  while (i < n && IsDigit(s[i])) ++i;
  const size_t int_end = i;
  size_t frac_begin = i, frac_end = i;
  if (i < n && s[i] == '.') {
    ++i;
    frac_begin = i;
    while (i < n && IsDigit(s[i])) ++i;
    frac_end = i;
  }
  const int64_t n_int = static_cast<int64_t>(int_end - int_begin);
  const int64_t n_frac = static_cast<int64_t>(frac_end - frac_begin);
  if (n_int + n_frac == 0) return NumericError(error, "invalid numeric value", text);

  int64_t exponent = 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
      exp_negative = s[i] == '-';
      ++i;
    }
    if (i >= n || !IsDigit(s[i])) return NumericError(error, "invalid numeric exponent", text);
    for (; i < n && IsDigit(s[i]); ++i) {
      // Saturate: anything past the limit is rejected below.
      if (exponent <= kNumericMaxExponent) exponent = exponent * 10 + (s[i] - '0');
    }
    if (exponent >= kNumericMaxExponent) return NumericError(error, "numeric exponent out of range", text);
    if (exp_negative) exponent = -exponent;
  }
  if (i != n) return NumericError(error, "invalid numeric value", text);

  const int64_t dscale = n_frac - exponent > 0 ? n_frac - exponent : 0;
  if (dscale > kNumericMaxDscale) {
    return NumericError(error, "numeric value has more than 16383 digits after the decimal point", text);
  }

  // The first and last non-zero digits bound the stripped base-10000 digits.
  size_t first = n, last = n;
  for (size_t k = int_begin; k < frac_end && first == n; ++k) {
    if (s[k] != '0' && s[k] != '.') first = k;
  }
  if (first == n) {
    AppendDigitlessNumeric(out, kNumericPos, static_cast<uint16_t>(dscale));  // zero: sign is always +
    return true;
  }
  for (size_t k = frac_end; k-- > int_begin;) {
    if (s[k] != '0' && s[k] != '.') {
      last = k;
      break;
    }
  }
  // Decimal position (power of ten) of the digit at index k of s.
  auto position = [&](size_t k) -> int64_t {
    if (k < int_end) return n_int - 1 - static_cast<int64_t>(k - int_begin) + exponent;
    return -1 - static_cast<int64_t>(k - frac_begin) + exponent;
  };
  const int64_t top = position(first);
  const int64_t bottom = position(last);
  const int64_t weight = FloorDiv4(top);
  if (weight > kNumericMaxWeight) {
    return NumericError(error, "numeric value has more than 131072 digits before the decimal point", text);
  }
  // bottom >= -dscale >= -16383, so weight >= -4096 and ndigits <= 36864.
  const int64_t ndigits = weight - FloorDiv4(bottom) + 1;

  const size_t payload = 8 + 2 * static_cast<size_t>(ndigits);
  char* p = out.Grow(4 + payload);
  out.Commit(4 + payload);
  const uint32_t len = static_cast<uint32_t>(payload);
  p[0] = static_cast<char>(len >> 24);
  p[1] = static_cast<char>((len >> 16) & 0xFF);
  p[2] = static_cast<char>((len >> 8) & 0xFF);
  p[3] = static_cast<char>(len & 0xFF);
  // ndigits can exceed 32767; numeric_send writes its low 16 bits and
  // numeric_recv reads them back as unsigned.
  StoreBe16(p + 4, static_cast<uint16_t>(ndigits));
  StoreBe16(p + 6, static_cast<uint16_t>(static_cast<int16_t>(weight)));
  StoreBe16(p + 8, negative ? kNumericNeg : kNumericPos);
  StoreBe16(p + 10, static_cast<uint16_t>(dscale));
  char* d = p + 12;

  // Pack decimal digits into base-10000 digits; each covers positions 4g+3..4g.
  int64_t pos = top;
  unsigned acc = 0;
  for (size_t k = first; k <= last; ++k) {
    if (s[k] == '.') continue;
    acc = acc * 10 + static_cast<unsigned>(s[k] - '0');
    if (FloorMod4(pos) == 0) {
      StoreBe16(d, static_cast<uint16_t>(acc));
      d += 2;
      acc = 0;
    }
    --pos;
  }
  if (const int64_t missing = FloorMod4(bottom); missing != 0) {
    for (int64_t k = 0; k < missing; ++k) acc *= 10;
    StoreBe16(d, static_cast<uint16_t>(acc));
  }
  return true;
}

std::optional<int32_t> ParseDate(std::string_view text) {
  int32_t days;
  if (!ParseDate(text, &days)) return std::nullopt;
  return days;
}

std::optional<int64_t> ParseTimestamp(std::string_view text) {
  if (text.size() < 10) return std::nullopt;
  const std::optional<int32_t> days = ParseDatePrefix(text);
  if (!days) return std::nullopt;
  const int64_t day_usecs = int64_t{*days} * kUsecsPerDay;
  if (text.size() == 10) return day_usecs;

  const size_t n = text.size();
  const char* p = text.data();
  size_t i = 10;
  if (p[i] != 'T' && p[i] != ' ') return std::nullopt;
  ++i;
  int hour, minute, second = 0;
  if (n - i < 5 || !TwoDigits(p + i, &hour) || p[i + 2] != ':' || !TwoDigits(p + i + 3, &minute)) {
    return std::nullopt;
  }
  i += 5;
  int64_t fraction_usecs = 0;
  if (i < n && p[i] == ':') {
    if (n - i < 3 || !TwoDigits(p + i + 1, &second)) return std::nullopt;
    i += 3;
    if (i < n && p[i] == '.') {
      ++i;
      const size_t frac_begin = i;
      int64_t scale = kUsecsPerSecond;
      while (i < n && IsDigit(p[i])) {
        const int digit = p[i] - '0';
        if (scale > 1) {
          scale /= 10;
          fraction_usecs += digit * scale;
        } else if (i - frac_begin == 6 && digit >= 5) {
          ++fraction_usecs;  // the 7th digit decides; may carry into the next second
        }
        ++i;
      }
      if (i == frac_begin) return std::nullopt;
    }
  }
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;

  int64_t offset_seconds = 0;
  if (i < n) {
    if (p[i] == 'Z') {
      ++i;
    } else if (p[i] == '+' || p[i] == '-') {
      const bool west = p[i] == '-';
      ++i;
      int off_hour, off_minute = 0;
      if (n - i < 2 || !TwoDigits(p + i, &off_hour)) return std::nullopt;
      i += 2;
      if (i < n && p[i] == ':') ++i;
      if (i < n) {
        if (n - i < 2 || !TwoDigits(p + i, &off_minute)) return std::nullopt;
        i += 2;
      } else if (p[i - 1] == ':') {
        return std::nullopt;  // "+HH:" without minutes
      }
      if (off_hour > 23 || off_minute > 59) return std::nullopt;
      offset_seconds = (off_hour * 3600 + off_minute * 60) * (west ? -1 : 1);
    }
    if (i != n) return std::nullopt;
  }

  const int64_t local_seconds = hour * 3600 + minute * 60 + second;
  return day_usecs + (local_seconds - offset_seconds) * kUsecsPerSecond + fraction_usecs;
}

}  // namespace nomnom::pg
