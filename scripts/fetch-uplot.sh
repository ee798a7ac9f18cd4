#!/usr/bin/env bash
# Refreshes the uPlot files that nomnomd's dashboard embeds
# (daemon/assets/dashboard/) from the npm package uplot at a pinned version.
#
# The files are committed, so building does not need npm; run this only to
# change the version: edit VERSION and INTEGRITY (from
# `npm view uplot@<ver> dist.integrity`), run it, rebuild, commit.
#
# Usage: scripts/fetch-uplot.sh
set -euo pipefail

VERSION="1.6.32"
INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
# package path -> file name under daemon/assets/dashboard/
FILES=(
  "dist/uPlot.iife.min.js:uPlot.iife.min.js"
  "dist/uPlot.min.css:uPlot.min.css"
  "LICENSE:uPlot.LICENSE"
)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/daemon/assets/dashboard"
command -v npm >/dev/null || { echo "fetch-uplot: npm is required (apt-get install npm)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "uplot@$VERSION" >/dev/null)
tarball="$tmp/uplot-$VERSION.tgz"
[[ -f "$tarball" ]] || { echo "fetch-uplot: npm pack produced no $tarball" >&2; exit 1; }

# Check the tarball against the pinned registry integrity (sha512, base64).
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$actual" != "$INTEGRITY" ]]; then
  echo "fetch-uplot: integrity mismatch for uplot@$VERSION" >&2
  echo "  expected $INTEGRITY" >&2
  echo "  got      $actual" >&2
  exit 1
fi

tar -xzf "$tarball" -C "$tmp"
mkdir -p "$dest"
for entry in "${FILES[@]}"; do
  install -m 0644 "$tmp/package/${entry%%:*}" "$dest/${entry#*:}"
done
echo "$VERSION" >"$dest/uPlot.VERSION"
echo "fetch-uplot: uplot@$VERSION -> ${dest#"$root/"}"
