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
# shellcheck source=lib/npm_vendor.sh source-path=SCRIPTDIR
source "$root/scripts/lib/npm_vendor.sh"
dest="$root/daemon/assets/dashboard"
nn_npm_vendor fetch-uplot uplot "$VERSION" "$INTEGRITY" "$dest" "${FILES[@]}"
echo "$VERSION" >"$dest/uPlot.VERSION"
echo "fetch-uplot: uplot@$VERSION -> ${dest#"$root/"}"
