// TransferCodingStatus: what a request's Transfer-Encoding asks (RFC 9112 6.1).
#include <catch2/catch.hpp>

#include "core/http/text.h"

using nomnom::http::internal::TransferCodingStatus;

TEST_CASE("http: only exactly chunked is read; anything else is refused", "[http][smuggling]") {
  for (const char* ok : {"chunked", "Chunked", " chunked ", "chunked,", ", chunked"}) {
    INFO(ok);
    CHECK(TransferCodingStatus(ok) == 0);
  }
  // chunked not last, twice, or absent: the body's length is unknown.
  for (const char* bad : {"xchunked", "gzip", "identity", "chunked, identity", "chunked, chunked", "", " , ",
                          "chunked;x=1", "chunkedx"}) {
    INFO(bad);
    CHECK(TransferCodingStatus(bad) == 400);
  }
  // A coding nomnomd does not implement before the final chunked.
  for (const char* unknown : {"gzip, chunked", "deflate,chunked", "identity, chunked"}) {
    INFO(unknown);
    CHECK(TransferCodingStatus(unknown) == 501);
  }
}
