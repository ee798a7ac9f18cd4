// SQL identifiers in statement text: every identifier nomnom puts into SQL
// goes through QuoteIdent (values never do: they go through bound parameters
// or COPY). Pure functions: thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace nomnom {

// Quotes a SQL identifier: wraps it in double quotes, doubling embedded ones.
std::string QuoteIdent(std::string_view ident);
// Quotes a possibly schema-qualified name "schema.table" part by part.
std::string QuoteQualified(std::string_view schema, std::string_view name);

}  // namespace nomnom
