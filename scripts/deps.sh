#!/usr/bin/env bash
# Installs with apt-get the Debian packages nomnom needs. Only what is missing
# is installed, so a second run is quick and offline.
# Usage: scripts/deps.sh [--demo] [--bench]
#   (default)  everything to build, run and test (scripts/test.sh)
#   --demo     only what building and running nomnom and nomnomd needs
#              (scripts/demo.sh): no test frameworks, browser or linters
#   --bench    adds the benchmark tools (wrk, nginx, pgloader, ...)
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

demo=0 bench=0
for arg in "$@"; do
  case "$arg" in
    --demo) demo=1 ;;
    --bench) bench=1 ;;
    -h|--help) nn_usage ;;
    *) nn_die "unknown argument: $arg" ;;
  esac
done

# Building and running: the compiler, the libraries nomnom links, and the
# servers the demo starts (PostgreSQL, nats-server) with curl to talk to nomnomd.
packages=(
  build-essential cmake pkg-config g++
  libsimdjson-dev libnats-dev libpq-dev libconcurrentqueue-dev libcli11-dev
  libyaml-cpp-dev libboost-dev zlib1g-dev libzstd-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev
  postgresql nats-server curl
)
# The e2e tests and scripts use python3; any python3 on the PATH will do.
command -v python3 >/dev/null 2>&1 || packages+=(python3)
if [ "$demo" = 0 ]; then
  # Tests: Catch2, Google Benchmark (bench/ builds with the tests), clang for
  # the ASan build and libFuzzer, clang-format for the style check.
  packages+=(clang clang-format libclang-rt-14-dev catch2 libbenchmark-dev)
  # e2e k8s_render needs kubectl (kustomize) and PyYAML; a kubectl from another
  # package will do (Debian's kubernetes-client conflicts with some of them).
  command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
  python3 -c 'import yaml' >/dev/null 2>&1 || packages+=(python3-yaml)
  # e2e metrics_docs checks the shipped alert rules with promtool (Debian's
  # prometheus package; its server is not started).
  command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
  # e2e dashboard drives Debian's headless chromium with Debian's python3-websocket.
  packages+=(chromium python3-websocket)
fi
[ "$bench" = 0 ] || packages+=(wrk time pgloader shellcheck jq nginx-light)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  nn_log "deps: all ${#packages[@]} packages installed"
  exit 0
fi

sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || nn_die "not root and no sudo; install as root: apt-get install ${missing[*]}"
  sudo=(sudo)
fi
# Wait for the dpkg lock rather than fail when another apt-get runs.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600)
nn_log "deps: installing ${missing[*]}"
"${apt[@]}" update
# The demo's first run should be quick: it skips recommended extras.
recommends=()
[ "$demo" = 0 ] || recommends=(--no-install-recommends)
"${apt[@]}" install -y "${recommends[@]}" -o Dpkg::Options::=--force-confold "${missing[@]}"
nn_log "deps: done"
