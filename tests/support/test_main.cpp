#define CATCH_CONFIG_RUNNER
#include <signal.h>

#include <catch2/catch.hpp>

int main(int argc, char* argv[]) {
  // A child that exits without reading all its stdin must fail a test, not
  // kill the test process.
  signal(SIGPIPE, SIG_IGN);
  return Catch::Session().run(argc, argv);
}
