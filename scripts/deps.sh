#!/usr/bin/env bash
# Installs with apt-get the Debian packages nomnom needs to build, test and
# demo. Only what is missing is installed, so a second run is quick and
# offline. Usage: scripts/deps.sh [--bench]   (--bench adds benchmark tools)
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

packages=(
  build-essential cmake pkg-config g++ clang clang-format libclang-rt-14-dev
  libsimdjson-dev libnats-dev libpq-dev libconcurrentqueue-dev libcli11-dev
  catch2 libbenchmark-dev libyaml-cpp-dev libboost-dev zlib1g-dev libzstd-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev
  postgresql nats-server curl
)
# e2e k8s_render needs kubectl (kustomize) and PyYAML; a kubectl from another
# package will do (Debian's kubernetes-client conflicts with some of them).
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
python3 -c 'import yaml' >/dev/null 2>&1 || packages+=(python3-yaml)
# e2e metrics_docs checks the shipped alert rules with promtool (Debian's
# prometheus package; its server is not started).
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
# e2e dashboard drives Debian's headless chromium with Debian's python3-websocket.
packages+=(chromium python3-websocket)
# The e2e tests use python3; any python3 on the PATH will do.
command -v python3 >/dev/null 2>&1 || packages+=(python3)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(wrk time pgloader shellcheck jq nginx-light) ;;
    -h|--help) nn_usage ;;
    *) nn_die "unknown argument: $arg" ;;
  esac
done

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
"${apt[@]}" install -y -o Dpkg::Options::=--force-confold "${missing[@]}"
nn_log "deps: done"
