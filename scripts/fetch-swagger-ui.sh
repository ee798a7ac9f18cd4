#!/usr/bin/env bash
# Refreshes the Swagger UI files that nomnomd embeds (daemon/assets/swagger-ui/)
# from the npm package swagger-ui-dist at a pinned version.
#
# The files are committed, so building does not need npm; run this only to
# change the version: edit VERSION and INTEGRITY (from
# `npm view swagger-ui-dist@<ver> dist.integrity`), run it, rebuild, commit.
#
# Usage: scripts/fetch-swagger-ui.sh
set -euo pipefail

VERSION="5.35.0"
INTEGRITY="sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
# Only what the daemon serves, plus the licence texts.
FILES=(
  swagger-ui.css
  swagger-ui-bundle.js
  swagger-ui-standalone-preset.js
  favicon-16x16.png
  favicon-32x32.png
  LICENSE
  NOTICE
  swagger-ui-bundle.js.LICENSE.txt
  swagger-ui-standalone-preset.js.LICENSE.txt
)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/npm_vendor.sh source-path=SCRIPTDIR
source "$root/scripts/lib/npm_vendor.sh"
dest="$root/daemon/assets/swagger-ui"
nn_npm_vendor fetch-swagger-ui swagger-ui-dist "$VERSION" "$INTEGRITY" "$dest" "${FILES[@]}"
echo "$VERSION" >"$dest/VERSION"
echo "fetch-swagger-ui: swagger-ui-dist@$VERSION -> ${dest#"$root/"}"
du -ch "${FILES[@]/#/$dest/}" | tail -1
