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
dest="$root/daemon/assets/swagger-ui"
command -v npm >/dev/null || { echo "fetch-swagger-ui: npm is required (apt-get install npm)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tarball="$tmp/swagger-ui-dist-$VERSION.tgz"
[[ -f "$tarball" ]] || { echo "fetch-swagger-ui: npm pack produced no $tarball" >&2; exit 1; }

# Check the tarball against the pinned registry integrity (sha512, base64).
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$actual" != "$INTEGRITY" ]]; then
  echo "fetch-swagger-ui: integrity mismatch for swagger-ui-dist@$VERSION" >&2
  echo "  expected $INTEGRITY" >&2
  echo "  got      $actual" >&2
  exit 1
fi

tar -xzf "$tarball" -C "$tmp"
mkdir -p "$dest"
for f in "${FILES[@]}"; do
  install -m 0644 "$tmp/package/$f" "$dest/$f"
done
echo "$VERSION" >"$dest/VERSION"
echo "fetch-swagger-ui: swagger-ui-dist@$VERSION -> ${dest#"$root/"}"
du -ch "${FILES[@]/#/$dest/}" | tail -1
