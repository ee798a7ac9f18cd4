#include "core/format/tuple_json.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <vector>

namespace nomnom {

namespace {

constexpr int64_t kUsecsPerDay = 86400LL * 1000000;
constexpr int64_t kDaysFrom1970To2000 = 10957;

struct Reader {
  const unsigned char* p;
  size_t size;
  size_t pos = 0;
  bool Has(size_t n) const { return size - pos >= n; }
  uint32_t U32() {
    const uint32_t v =
        (uint32_t{p[pos]} << 24) | (uint32_t{p[pos + 1]} << 16) | (uint32_t{p[pos + 2]} << 8) | uint32_t{p[pos + 3]};
    pos += 4;
    return v;
  }
  uint16_t U16() {
    const auto v = static_cast<uint16_t>((uint16_t{p[pos]} << 8) | uint16_t{p[pos + 1]});
    pos += 2;
    return v;
  }
  uint64_t U64() {
    const uint64_t hi = U32();
    return (hi << 32) | U32();
  }
};

uint32_t Be32(std::string_view s, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + at;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out->append(buf);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

// Proleptic Gregorian y-m-d from days since 1970-01-01 (Howard Hinnant's
// civil_from_days).
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2 ? 1 : 0);
}

void AppendDate(std::string* out, int64_t days_since_2000) {
  int64_t y;
  unsigned m, d;
  CivilFromDays(days_since_2000 + kDaysFrom1970To2000, &y, &m, &d);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
  out->append(buf);
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0); }

bool AppendNumeric(std::string* out, std::string_view v, std::string* error) {
  Reader r{reinterpret_cast<const unsigned char*>(v.data()), v.size()};
  if (!r.Has(8)) {
    *error = "numeric shorter than its header";
    return false;
  }
  const auto ndigits = static_cast<int16_t>(r.U16());
  const auto weight = static_cast<int16_t>(r.U16());
  const uint16_t sign = r.U16();
  const auto dscale = static_cast<int16_t>(r.U16());
  if (ndigits < 0 || dscale < 0 || v.size() != 8 + 2 * static_cast<size_t>(ndigits)) {
    *error = "numeric header does not match its length";
    return false;
  }
  if (sign == 0xC000 || sign == 0xD000 || sign == 0xF000) {
    out->append(sign == 0xC000 ? "\"NaN\"" : sign == 0xD000 ? "\"Infinity\"" : "\"-Infinity\"");
    return true;
  }
  if (sign != 0x0000 && sign != 0x4000) {
    *error = "numeric with an unknown sign word";
    return false;
  }
  std::vector<int> digits(static_cast<size_t>(ndigits));
  for (auto& d : digits) {
    d = r.U16();
    if (d > 9999) {
      *error = "numeric digit out of range";
      return false;
    }
  }
  auto digit = [&](int i) { return i >= 0 && i < ndigits ? digits[static_cast<size_t>(i)] : 0; };
  if (sign == 0x4000) out->push_back('-');
  if (weight < 0) {
    out->push_back('0');
  } else {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "%d", digit(0));
    out->append(buf);
    for (int i = 1; i <= weight; ++i) {
      std::snprintf(buf, sizeof(buf), "%04d", digit(i));
      out->append(buf);
    }
  }
  if (dscale > 0) {
    out->push_back('.');
    std::string frac;
    for (int i = weight + 1; static_cast<int>(frac.size()) < dscale; ++i) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "%04d", digit(i));
      frac.append(buf);
    }
    frac.resize(static_cast<size_t>(dscale));
    out->append(frac);
  }
  return true;
}

bool AppendTextArray(std::string* out, std::string_view v, std::string* error) {
  Reader r{reinterpret_cast<const unsigned char*>(v.data()), v.size()};
  if (!r.Has(12)) {
    *error = "array shorter than its header";
    return false;
  }
  const auto ndim = static_cast<int32_t>(r.U32());
  r.U32();  // flags
  r.U32();  // element type
  if (ndim == 0) {
    if (r.pos != v.size()) {
      *error = "bytes after an empty array";
      return false;
    }
    out->append("[]");
    return true;
  }
  if (ndim != 1 || !r.Has(8)) {
    *error = "not a one-dimensional array";
    return false;
  }
  const auto n = static_cast<int32_t>(r.U32());
  r.U32();  // lower bound
  if (n < 0) {
    *error = "negative array length";
    return false;
  }
  out->push_back('[');
  for (int32_t i = 0; i < n; ++i) {
    if (!r.Has(4)) {
      *error = "array element " + std::to_string(i + 1) + " truncated";
      return false;
    }
    const auto len = static_cast<int32_t>(r.U32());
    if (i > 0) out->push_back(',');
    if (len == -1) {
      out->append("null");
      continue;
    }
    if (len < 0 || !r.Has(static_cast<size_t>(len))) {
      *error = "array element " + std::to_string(i + 1) + " length out of range";
      return false;
    }
    AppendJsonString(out, std::string_view(v.data() + r.pos, static_cast<size_t>(len)));
    r.pos += static_cast<size_t>(len);
  }
  if (r.pos != v.size()) {
    *error = "bytes after the array's elements";
    return false;
  }
  out->push_back(']');
  return true;
}

bool AppendValue(std::string* out, const Field& f, std::string_view v, std::string* error) {
  auto want = [&](size_t n) {
    if (v.size() == n) return true;
    *error = std::to_string(v.size()) + " bytes, " + std::string(FieldTypeName(f.type)) + " takes " + std::to_string(n);
    return false;
  };
  char buf[64];
  switch (f.type) {
    case FieldType::kString:
      AppendJsonString(out, v);
      return true;
    case FieldType::kSmallInt:
      if (!want(2)) return false;
      out->append(std::to_string(
          static_cast<int16_t>((static_cast<unsigned char>(v[0]) << 8) | static_cast<unsigned char>(v[1]))));
      return true;
    case FieldType::kInteger:
      if (!want(4)) return false;
      out->append(std::to_string(static_cast<int32_t>(Be32(v, 0))));
      return true;
    case FieldType::kBigInt: {
      if (!want(8)) return false;
      const uint64_t u = (uint64_t{Be32(v, 0)} << 32) | Be32(v, 4);
      out->append(std::to_string(static_cast<int64_t>(u)));
      return true;
    }
    case FieldType::kFloat: {
      if (!want(8)) return false;
      const uint64_t u = (uint64_t{Be32(v, 0)} << 32) | Be32(v, 4);
      double d;
      std::memcpy(&d, &u, 8);
      if (d != d || d - d != 0) {  // NaN or infinite: not a JSON number
        AppendJsonString(out, d != d ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
        return true;
      }
      auto res = std::to_chars(buf, buf + sizeof(buf), d);
      out->append(buf, res.ptr);
      return true;
    }
    case FieldType::kReal: {
      if (!want(4)) return false;
      const uint32_t u = Be32(v, 0);
      float x;
      std::memcpy(&x, &u, 4);
      if (x != x || x - x != 0) {
        AppendJsonString(out, x != x ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
        return true;
      }
      auto res = std::to_chars(buf, buf + sizeof(buf), x);
      out->append(buf, res.ptr);
      return true;
    }
    case FieldType::kDecimal:
      return AppendNumeric(out, v, error);
    case FieldType::kBoolean:
      if (!want(1)) return false;
      out->append(v[0] != 0 ? "true" : "false");
      return true;
    case FieldType::kDate:
      if (!want(4)) return false;
      out->push_back('"');
      AppendDate(out, static_cast<int32_t>(Be32(v, 0)));
      out->push_back('"');
      return true;
    case FieldType::kDateTime: {
      if (!want(8)) return false;
      const auto usecs = static_cast<int64_t>((uint64_t{Be32(v, 0)} << 32) | Be32(v, 4));
      const int64_t days = FloorDiv(usecs, kUsecsPerDay);
      int64_t rest = usecs - days * kUsecsPerDay;
      out->push_back('"');
      AppendDate(out, days);
      const int64_t micros = rest % 1000000;
      rest /= 1000000;
      std::snprintf(buf, sizeof(buf), "T%02d:%02d:%02d", static_cast<int>(rest / 3600),
                    static_cast<int>(rest / 60 % 60), static_cast<int>(rest % 60));
      out->append(buf);
      if (micros != 0) {
        std::snprintf(buf, sizeof(buf), ".%06d", static_cast<int>(micros));
        out->append(buf);
      }
      out->append("Z\"");
      return true;
    }
    case FieldType::kUuid: {
      if (!want(16)) return false;
      out->push_back('"');
      for (size_t i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out->push_back('-');
        std::snprintf(buf, sizeof(buf), "%02x", static_cast<unsigned char>(v[i]));
        out->append(buf);
      }
      out->push_back('"');
      return true;
    }
    case FieldType::kJson:
      if (v.empty() || v[0] != 1) {
        *error = "jsonb without version byte 1";
        return false;
      }
      out->append(v.substr(1));
      return true;
    case FieldType::kJsonText:
      out->append(v);
      return true;
    case FieldType::kTextArray:
      return AppendTextArray(out, v, error);
  }
  *error = "unknown field type";
  return false;
}

}  // namespace

bool TupleToJson(const Entity& entity, std::string_view tuple, std::string* out, std::string* error) {
  const auto& fields = entity.fields;
  if (tuple.size() < 2) {
    *error = "truncated field count";
    return false;
  }
  const auto count =
      static_cast<uint16_t>((static_cast<unsigned char>(tuple[0]) << 8) | static_cast<unsigned char>(tuple[1]));
  if (count != fields.size()) {
    *error = std::to_string(count) + " fields, the entity has " + std::to_string(fields.size());
    return false;
  }
  size_t pos = 2;
  out->push_back('{');
  for (size_t i = 0; i < fields.size(); ++i) {
    if (tuple.size() - pos < 4) {
      *error = "field '" + fields[i].name + "': truncated length";
      return false;
    }
    const auto len = static_cast<int32_t>(Be32(tuple, pos));
    pos += 4;
    if (i > 0) out->push_back(',');
    AppendJsonString(out, fields[i].InputName());
    out->push_back(':');
    if (len == -1) {
      out->append("null");
      continue;
    }
    if (len < 0 || static_cast<size_t>(len) > tuple.size() - pos) {
      *error = "field '" + fields[i].name + "': length " + std::to_string(len) + " out of range";
      return false;
    }
    std::string why;
    if (!AppendValue(out, fields[i], tuple.substr(pos, static_cast<size_t>(len)), &why)) {
      *error = "field '" + fields[i].name + "': " + why;
      return false;
    }
    pos += static_cast<size_t>(len);
  }
  if (pos != tuple.size()) {
    *error = "bytes after the last field";
    return false;
  }
  out->push_back('}');
  return true;
}

std::string HexBytes(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "\\x";
  s.reserve(2 + bytes.size() * 2);
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    s.push_back(kHex[u >> 4]);
    s.push_back(kHex[u & 15]);
  }
  return s;
}

std::string TupleRaw(const Entity& entity, std::string_view tuple) {
  std::string out, error;
  if (TupleToJson(entity, tuple, &out, &error)) return out;
  return "pgcopy1 tuple (" + error + "): " + HexBytes(tuple);
}

}  // namespace nomnom
