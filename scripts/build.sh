#!/usr/bin/env bash
# Configures and builds nomnom with CMake, two jobs.
# Usage: scripts/build.sh [--app] [--asan] [--debug] [-DOPTION=VALUE...]
#   (default)  Release into build/: the programs, tests and benchmarks
#   --app      only the programs nomnom and nomnomd (scripts/demo.sh): no
#              tests or benchmarks, so neither Catch2 nor Google Benchmark is needed
#   --asan     ASan+UBSan, RelWithDebInfo, no benchmarks, into build-asan/, with
#              clang++ when installed (so CI builds with both g++ and clang)
#   --debug    Debug build type, into build-debug/ (or build-asan-debug/)
#   -D...      passed on to cmake
# Warnings are errors when $CI is set.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

asan=0 debug=0 app=0 extra=()
for arg in "$@"; do
  case "$arg" in
    --app) app=1 ;;
    --asan) asan=1 ;;
    --debug) debug=1 ;;
    -D*) extra+=("$arg") ;;
    -h|--help) nn_usage ;;
    *) nn_die "unknown argument: $arg" ;;
  esac
done

dir=build type=Release opts=(-DNOMNOM_BUILD_TESTS=ON -DNOMNOM_BUILD_BENCH=ON)
targets=()
if [ "$app" = 1 ]; then
  opts=(-DNOMNOM_BUILD_TESTS=OFF -DNOMNOM_BUILD_BENCH=OFF)
  targets=(--target nomnom nomnomd)
fi
if [ "$asan" = 1 ]; then
  dir+=-asan type=RelWithDebInfo
  opts+=(-DNOMNOM_SANITIZE=ON -DNOMNOM_BUILD_BENCH=OFF)
  if command -v clang++ >/dev/null 2>&1; then
    opts+=(-DCMAKE_CXX_COMPILER=clang++)
  fi
fi
if [ "$debug" = 1 ]; then
  dir+=-debug type=Debug
fi
werror=OFF
[ -n "${CI:-}" ] && werror=ON
opts+=(-DCMAKE_BUILD_TYPE="$type" -DNOMNOM_WERROR="$werror")
# ccache, when installed, makes rebuilds (and builds of other checkouts of the
# same tree) fast; paths are rewritten relative to the checkout so they share.
if command -v ccache >/dev/null 2>&1; then
  opts+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$NN_ROOT" CCACHE_NOHASHDIR=1
fi

start=$SECONDS
nn_log "build: $type into $dir/ (${opts[*]} ${extra[*]})"
cmake -S . -B "$dir" "${opts[@]}" "${extra[@]}"
cmake --build "$dir" --parallel 2 "${targets[@]}"
nn_log "build: done in $(nn_duration $((SECONDS - start))); binaries: $NN_ROOT/$dir/cli/nomnom, $NN_ROOT/$dir/daemon/nomnomd"
