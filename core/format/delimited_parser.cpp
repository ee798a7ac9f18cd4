#include "core/format/delimited_parser.h"

#include "core/format/delimited_scan.h"

namespace nomnom {

DelimitedParser::Result DelimitedParser::Next(std::string_view text, bool at_end, uint64_t line,
                                              std::vector<DelimitedField>* fields, size_t* consumed, uint64_t* lines,
                                              std::string* error) {
  return NextInto(text, at_end, line, fields, consumed, lines, error);
}

}  // namespace nomnom
