#include "core/format/sql_ident.h"

namespace nomnom {

std::string QuoteIdent(std::string_view ident) {
  std::string out;
  out.reserve(ident.size() + 2);
  out.push_back('"');
  for (char c : ident) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string QuoteQualified(std::string_view schema, std::string_view name) {
  if (schema.empty()) return QuoteIdent(name);
  return QuoteIdent(schema) + "." + QuoteIdent(name);
}

}  // namespace nomnom
