// libFuzzer harness: pg::AppendNumericField (core/format/pg_binary.h), which turns
// Decimal values from the input (JSON numbers or strings) into binary NUMERIC.
//
// The whole input is the text. A reference parser here reads the same grammar
// into (sign, significant digits, power of ten) and applies NUMERIC's limits;
// AppendNumericField must accept exactly what it accepts, and the NUMERIC it
// appends is decoded back (ndigits, weight, sign, dscale, base-10000 digits)
// and must be well formed and equal in value and display scale. A rejected
// text must leave the buffer unchanged and come with a valid UTF-8 message.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/byte_buffer.h"
#include "core/format/pg_binary.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::fuzz::Show;

struct Decimal {
  enum class Kind { kFinite, kNaN, kPinf, kNinf } kind = Kind::kFinite;
  bool negative = false;
  std::string digits;    // significant digits, no leading or trailing zeros; empty for zero
  int64_t exponent = 0;  // value = digits * 10^exponent
  int64_t dscale = 0;
};

bool Space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
bool Digit(char c) { return c >= '0' && c <= '9'; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Strips zeros: leading ones off digits, trailing ones into the exponent.
void Normalize(Decimal* d) {
  const size_t first = d->digits.find_first_not_of('0');
  if (first == std::string::npos) {
    d->digits.clear();
    d->exponent = 0;
    return;
  }
  d->digits.erase(0, first);
  while (d->digits.back() == '0') {
    d->digits.pop_back();
    ++d->exponent;
  }
}

std::optional<Decimal> Reference(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && Space(text[b])) ++b;
  while (e > b && Space(text[e - 1])) --e;
  const std::string_view s = text.substr(b, e - b);
  Decimal d;
  const std::string word = Lower(s);
  if (word == "nan") {
    d.kind = Decimal::Kind::kNaN;
    return d;
  }
  for (const char* w : {"infinity", "+infinity", "inf", "+inf"}) {
    if (word == w) d.kind = Decimal::Kind::kPinf;
  }
  for (const char* w : {"-infinity", "-inf"}) {
    if (word == w) d.kind = Decimal::Kind::kNinf;
  }
  if (d.kind != Decimal::Kind::kFinite) return d;

  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) d.negative = s[i++] == '-';
  int64_t frac = 0;
  size_t mantissa_digits = 0;
  while (i < s.size() && Digit(s[i])) d.digits += s[i++], ++mantissa_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && Digit(s[i])) d.digits += s[i++], ++frac, ++mantissa_digits;
  }
  if (mantissa_digits == 0) return std::nullopt;
  int64_t exp = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool neg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == s.size() || !Digit(s[i])) return std::nullopt;
    while (i < s.size() && Digit(s[i])) {
      exp = exp * 10 + (s[i++] - '0');
      if (exp > 2000000000) exp = 2000000000;  // rejected below either way
    }
    if (exp >= 1073741823) return std::nullopt;  // numeric_in: |exponent| >= INT_MAX / 2
    if (neg) exp = -exp;
  }
  if (i != s.size()) return std::nullopt;
  d.dscale = frac - exp > 0 ? frac - exp : 0;
  if (d.dscale > 16383) return std::nullopt;
  d.exponent = exp - frac;
  Normalize(&d);
  if (d.digits.empty()) {
    d.negative = false;  // NUMERIC has no negative zero
    return d;
  }
  // The leading digit's power of ten, and the base-10000 weight it gives.
  const int64_t top = d.exponent + static_cast<int64_t>(d.digits.size()) - 1;
  const int64_t weight = top >= 0 ? top / 4 : -((-top + 3) / 4);
  if (weight > 32767) return std::nullopt;
  return d;
}

uint16_t Be16(const unsigned char* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// Decodes one binary NUMERIC field, checking its form on the way.
Decimal Decode(std::string_view field, std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(field.data());
  const std::string where = " for \"" + Show(text) + "\"";
  FUZZ_CHECK(field.size() >= 12, "NUMERIC field shorter than its header" + where);
  const uint32_t len =
      static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
  FUZZ_CHECK(len == field.size() - 4, "NUMERIC length word is wrong" + where);
  const uint16_t ndigits = Be16(p + 4), sign = Be16(p + 8), dscale = Be16(p + 10);
  const auto weight = static_cast<int16_t>(Be16(p + 6));
  FUZZ_CHECK(len == 8 + 2 * static_cast<uint32_t>(ndigits) || (len - 8) / 2 > 0xFFFF,
             "NUMERIC length does not match ndigits" + where);
  Decimal d;
  d.dscale = dscale;
  if (sign == 0xC000 || sign == 0xD000 || sign == 0xF000) {
    FUZZ_CHECK(ndigits == 0 && weight == 0, "special NUMERIC with digits" + where);
    d.kind = sign == 0xC000 ? Decimal::Kind::kNaN : sign == 0xD000 ? Decimal::Kind::kPinf : Decimal::Kind::kNinf;
    d.dscale = 0;
    return d;
  }
  FUZZ_CHECK(sign == 0x0000 || sign == 0x4000, "bad NUMERIC sign word" + where);
  FUZZ_CHECK(dscale <= 16383, "dscale over 16383" + where);
  d.negative = sign == 0x4000;
  const size_t count = (len - 8) / 2;  // ndigits may have wrapped; the length has not
  for (size_t k = 0; k < count; ++k) {
    const uint16_t digit = Be16(p + 12 + 2 * k);
    FUZZ_CHECK(digit < 10000, "base-10000 digit out of range" + where);
    FUZZ_CHECK(k != 0 || digit != 0, "leading zero base-10000 digit (not stripped)" + where);
    FUZZ_CHECK(k + 1 != count || digit != 0, "trailing zero base-10000 digit (not stripped)" + where);
    std::string four = std::to_string(digit);
    d.digits += std::string(4 - four.size(), '0') + four;
  }
  FUZZ_CHECK(count > 0 || !d.negative, "negative zero" + where);
  d.exponent = (static_cast<int64_t>(weight) - static_cast<int64_t>(count) + 1) * 4;
  Normalize(&d);
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nomnom::ByteBuffer out;
  out.Append(std::string_view("prefix"));  // the field is appended after what is there
  std::string error;
  const bool ok = nomnom::pg::AppendNumericField(out, text, &error);
  const std::optional<Decimal> want = Reference(text);
  const std::string where = "\"" + Show(text) + "\"";
  if (!ok) {
    FUZZ_CHECK(!want, "rejected " + where + " (" + error + "), the reference accepts it");
    FUZZ_CHECK(!error.empty(), "rejected " + where + " without a message");
    FUZZ_CHECK(nomnom::fuzz::Utf8Valid(error), "the message is not valid UTF-8: " + Show(error));
    FUZZ_CHECK(out.size() == 6, "a rejected value left bytes in the buffer: " + where);
    return 0;
  }
  FUZZ_CHECK(want.has_value(), "accepted " + where + ", the reference rejects it");
  FUZZ_CHECK(std::string_view(out.data(), 6) == "prefix", "overwrote the bytes before the field");
  const Decimal got = Decode(std::string_view(out.data() + 6, out.size() - 6), text);
  FUZZ_CHECK(got.kind == want->kind, "wrong kind of value for " + where);
  FUZZ_CHECK(got.negative == want->negative, "wrong sign for " + where);
  FUZZ_CHECK(got.digits == want->digits && got.exponent == want->exponent,
             "wrong value for " + where + ": " + got.digits + "e" + std::to_string(got.exponent) + ", want " +
                 want->digits + "e" + std::to_string(want->exponent));
  FUZZ_CHECK(got.dscale == want->dscale, "wrong dscale for " + where + ": " + std::to_string(got.dscale) + ", want " +
                                             std::to_string(want->dscale));
  return 0;
}
