#include "core/format/json_check.h"

#include <cstddef>

namespace nomnom {

namespace {

class Checker {
 public:
  explicit Checker(std::string_view s) : s_(s) {}

  bool Whole() {
    Space();
    if (!Value(0)) return false;
    Space();
    return i_ == s_.size();
  }

 private:
  static constexpr int kMaxDepth = 1024;

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
          for (int k = 0; k < 4; ++k) {
            if (!More() || !Hex(s_[i_++])) return false;
          }
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
    if (depth > kMaxDepth) return false;
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
    if (depth > kMaxDepth) return false;
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
  size_t i_ = 0;
};

}  // namespace

bool IsJsonValue(std::string_view text) { return Checker(text).Whole(); }

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
