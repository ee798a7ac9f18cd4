#include "core/format/json_check.h"

#include <cstddef>

namespace nomnom {

namespace {

class Checker {
 public:
  Checker(std::string_view s, JsonRules rules) : s_(s), jsonb_(rules == JsonRules::kJsonb) {}

  JsonCheck Whole() {
    Space();
    if (!Value(0)) return failure_;
    Space();
    return i_ == s_.size() ? JsonCheck::kOk : JsonCheck::kMalformed;
  }

 private:
  static constexpr int kMaxDepth = kMaxJsonDepth;
  bool Fail(JsonCheck why) {
    failure_ = why;
    return false;
  }
  static int HexValue(char c) {
    if (Digit(c)) return c - '0';
    return (c | 0x20) - 'a' + 10;
  }
  // The 4 hex digits of a \u escape at i_ (false if they are not hex).
  bool CodeUnit(unsigned* unit) {
    *unit = 0;
    for (int k = 0; k < 4; ++k) {
      if (!More() || !Hex(s_[i_])) return false;
      *unit = *unit * 16 + static_cast<unsigned>(HexValue(s_[i_++]));
    }
    return true;
  }
  // jsonb: the escape just read must not be U+0000 or half a surrogate pair.
  bool JsonbUnit(unsigned unit) {
    if (unit == 0) return Fail(JsonCheck::kNulEscape);
    if (unit >= 0xDC00 && unit <= 0xDFFF) return Fail(JsonCheck::kLoneSurrogate);  // a low half first
    if (unit >= 0xD800 && unit <= 0xDBFF) {                                        // a high half: its low half next
      unsigned low = 0;
      if (s_.substr(i_, 2) != "\\u") return Fail(JsonCheck::kLoneSurrogate);
      i_ += 2;
      if (!CodeUnit(&low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) return Fail(JsonCheck::kLoneSurrogate);
    }
    return true;
  }

  bool More() const { return i_ < s_.size(); }
  char Peek() const { return s_[i_]; }
  void Space() {
    while (More() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) ++i_;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  static bool Digit(char c) { return c >= '0' && c <= '9'; }
  static bool Hex(char c) { return Digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

  bool Digits() {
    const size_t start = i_;
    while (More() && Digit(Peek())) ++i_;
    return i_ > start;
  }
  bool Number() {
    if (More() && Peek() == '-') ++i_;
    if (!More()) return false;
    if (Peek() == '0') {
      ++i_;
    } else if (!Digits()) {
      return false;
    }
    if (More() && Peek() == '.') {
      ++i_;
      if (!Digits()) return false;
    }
    if (More() && (Peek() == 'e' || Peek() == 'E')) {
      ++i_;
      if (More() && (Peek() == '+' || Peek() == '-')) ++i_;
      if (!Digits()) return false;
    }
    return true;
  }
  bool String() {
    ++i_;  // the opening quote
    while (More()) {
      const auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (!More()) return false;
        const char e = s_[i_++];
        if (e == 'u') {
          unsigned unit = 0;
          if (!CodeUnit(&unit)) return false;
          if (jsonb_ && !JsonbUnit(unit)) return false;
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
          return false;
        }
      }
    }
    return false;
  }
  bool Value(int depth) {
    if (!More()) return false;
    switch (Peek()) {
      case '{':
        return Object(depth + 1);
      case '[':
        return Array(depth + 1);
      case '"':
        return String();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }
  bool Object(int depth) {
    if (depth > kMaxDepth) return Fail(JsonCheck::kTooDeep);
    ++i_;
    Space();
    if (More() && Peek() == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      Space();
      if (!More() || Peek() != '"' || !String()) return false;
      Space();
      if (!More() || Peek() != ':') return false;
      ++i_;
      Space();
      if (!Value(depth)) return false;
      Space();
      if (!More()) return false;
      const char c = s_[i_++];
      if (c == '}') return true;
      if (c != ',') return false;
    }
  }
  bool Array(int depth) {
    if (depth > kMaxDepth) return Fail(JsonCheck::kTooDeep);
    ++i_;
    Space();
    if (More() && Peek() == ']') {
      ++i_;
      return true;
    }
    for (;;) {
      Space();
      if (!Value(depth)) return false;
      Space();
      if (!More()) return false;
      const char c = s_[i_++];
      if (c == ']') return true;
      if (c != ',') return false;
    }
  }

  std::string_view s_;
  const bool jsonb_;
  size_t i_ = 0;
  JsonCheck failure_ = JsonCheck::kMalformed;  // why Value() returned false
};

}  // namespace

JsonCheck CheckJsonValue(std::string_view text, JsonRules rules) { return Checker(text, rules).Whole(); }

static_assert(kMaxJsonDepth == 1024, "JsonCheckMessage names the depth");

std::string_view JsonCheckMessage(JsonCheck result) {
  switch (result) {
    case JsonCheck::kOk:
      return "";
    case JsonCheck::kMalformed:
      return "malformed JSON";
    case JsonCheck::kTooDeep:
      return "JSON nested deeper than 1024 levels";
    case JsonCheck::kNulEscape:
      return "a \\u0000 escape, which PostgreSQL's jsonb cannot store";
    case JsonCheck::kLoneSurrogate:
      return "a \\u escape of half a UTF-16 surrogate pair, which PostgreSQL's jsonb refuses";
  }
  return "malformed JSON";
}

std::string_view JsonTypeName(simdjson::ondemand::json_type t) {
  switch (t) {
    case simdjson::ondemand::json_type::array:
      return "array";
    case simdjson::ondemand::json_type::object:
      return "object";
    case simdjson::ondemand::json_type::number:
      return "number";
    case simdjson::ondemand::json_type::string:
      return "string";
    case simdjson::ondemand::json_type::boolean:
      return "boolean";
    case simdjson::ondemand::json_type::null:
      return "null";
  }
  return "value";
}

}  // namespace nomnom
