#!/usr/bin/env bash
# Builds the Debian package nomnom_<version>_<arch>.deb with CPack: nomnom and
# nomnomd in /usr/bin, the entity sets in /usr/share/nomnom/entities/, the
# systemd units (installed disabled), man pages made from --help (help2man),
# the docs, the Grafana dashboard and the alert rules. Its Depends line is
# computed by dpkg-shlibdeps from the libraries the binaries link.
# Usage: scripts/package.sh [--build-dir DIR] [--arch default|haswell|native] [-DOPTION=VALUE...]
#   --build-dir DIR  package this build directory (default build-package/, a
#                    Release build of the programs only); it is configured
#                    with CMAKE_INSTALL_PREFIX=/usr, so a test build can be
#                    packaged without compiling it all again
#   --arch A         CPU target (default: default, which runs on any x86-64;
#                    haswell is faster, for machines with AVX2)
# Prints the package's path, its Depends line and its size.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

dir=build-package arch=default extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) dir=${2:?--build-dir needs a directory}; shift ;;
    --arch) arch=${2:?--arch needs a value}; shift ;;
    -D*) extra+=("$1") ;;
    -h|--help) nn_usage ;;
    *) nn_die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

"$NN_ROOT/scripts/deps.sh" --demo
# dpkg-shlibdeps (dpkg-dev) computes Depends; help2man writes the man pages.
missing=()
for p in dpkg-dev help2man; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 install -y \
    --no-install-recommends "${missing[@]}"
fi

opts=(-DCMAKE_INSTALL_PREFIX=/usr)
if [ "$dir" = build-package ]; then
  opts+=(-DCMAKE_BUILD_TYPE=Release -DNOMNOM_BUILD_TESTS=OFF -DNOMNOM_BUILD_BENCH=OFF -DNOMNOM_ARCH="$arch")
fi
if command -v ccache >/dev/null 2>&1; then
  opts+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$NN_ROOT" CCACHE_NOHASHDIR=1
fi
start=$SECONDS
nn_log "package: configuring $dir/ (${opts[*]} ${extra[*]})"
cmake -S . -B "$dir" "${opts[@]}" "${extra[@]}" >/dev/null
cmake --build "$dir" --parallel 2 --target nomnom nomnomd
cmake --build "$dir" --parallel 2 --target man
rm -f "$dir"/nomnom_*.deb
(cd "$dir" && cpack -G DEB >/dev/null)
deb=$(ls "$dir"/nomnom_*.deb)
nn_log "package: $deb ($(du -h "$deb" | cut -f1)) in $(nn_duration $((SECONDS - start)))"
dpkg-deb --field "$deb" Package Version Architecture Depends
