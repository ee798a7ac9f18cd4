// libFuzzer harness: RejectToJson (core/format/rejects.h), which turns a rejected
// line (arbitrary bytes from the input), its file name and the error text into
// one line of the --rejects NDJSON file.
//
// Input: FuzzedDataProvider splits it into file, error, line number and raw.
// The output must be one line (no '\n'), valid UTF-8, and parse with nlohmann
// as {"file","line","error","raw"} in that order; each text field must equal
// the reference escaping (every byte not part of a well-formed UTF-8 sequence
// as \xNN), so valid UTF-8 comes back unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/format/rejects.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::fuzz::Show;

std::string RefEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = nomnom::fuzz::WellFormedUtf8At(s, i);
    if (n == 0) {
      const auto c = static_cast<unsigned char>(s[i++]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

void CheckField(const nlohmann::ordered_json& j, const char* name, const std::string& original) {
  FUZZ_CHECK(j.contains(name) && j[name].is_string(), std::string("no string field ") + name);
  const std::string& got = j[name].get_ref<const std::string&>();
  FUZZ_CHECK(got == RefEscape(original),
             std::string(name) + ": \"" + Show(got) + "\" is not the escaped \"" + Show(original) + "\"");
  if (nomnom::fuzz::Utf8Valid(original)) FUZZ_CHECK(got == original, std::string(name) + " changed valid UTF-8");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  nomnom::RejectRecord r;
  r.file = in.ConsumeRandomLengthString(64);
  r.error = in.ConsumeRandomLengthString(256);
  r.line = in.ConsumeIntegral<uint64_t>();
  r.raw = in.ConsumeRemainingBytesAsString();

  const std::string json = nomnom::RejectToJson(r);
  FUZZ_CHECK(json.find('\n') == std::string::npos, "the reject record spans lines: " + Show(json));
  FUZZ_CHECK(nomnom::fuzz::Utf8Valid(json), "the reject record is not valid UTF-8: " + Show(json));
  const auto j = nlohmann::ordered_json::parse(json, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!j.is_discarded() && j.is_object(), "not a JSON object: " + Show(json));
  FUZZ_CHECK(j.size() == 4, "not 4 members: " + Show(json));
  auto it = j.begin();
  FUZZ_CHECK(it.key() == "file" && (++it).key() == "line" && (++it).key() == "error" && (++it).key() == "raw",
             "members out of order: " + Show(json));
  FUZZ_CHECK(j["line"].is_number_unsigned() && j["line"].get<uint64_t>() == r.line, "line number changed");
  CheckField(j, "file", r.file);
  CheckField(j, "error", r.error);
  CheckField(j, "raw", r.raw);
  return 0;
}
