#!/usr/bin/env bash
# nn_npm_vendor: copies files of a pinned npm package into the tree (web
# assets that nomnomd embeds), after checking the tarball against the
# registry's integrity. Used by scripts/fetch-*.sh; sourced, not run.
#
#   nn_npm_vendor NAME PACKAGE VERSION INTEGRITY DEST ENTRY...
#     NAME       the caller, for messages
#     INTEGRITY  `npm view PACKAGE@VERSION dist.integrity` (sha512-<base64>)
#     DEST       directory the files go to (created)
#     ENTRY      "path/in/package" or "path/in/package:name-in-DEST"
# Exits with a message on any failure.

nn_npm_vendor() {
  local name=$1 package=$2 version=$3 integrity=$4 dest=$5
  shift 5
  command -v npm >/dev/null || { echo "$name: npm is required (apt-get install npm)" >&2; exit 1; }
  local tmp
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the trap runs after tmp is gone
  trap "rm -rf '$tmp'" EXIT
  (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
  local tarball="$tmp/$package-$version.tgz"
  [[ -f "$tarball" ]] || { echo "$name: npm pack produced no $tarball" >&2; exit 1; }
  local actual
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [[ "$actual" != "$integrity" ]]; then
    echo "$name: integrity mismatch for $package@$version" >&2
    echo "  expected $integrity" >&2
    echo "  got      $actual" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$tmp"
  mkdir -p "$dest"
  local entry
  for entry in "$@"; do
    install -m 0644 "$tmp/package/${entry%%:*}" "$dest/${entry#*:}"
  done
}
