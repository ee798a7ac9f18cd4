#!/usr/bin/env bash
# Checks that includes point down the layers, never up (core/README.md):
#   * a file in core/<layer>/ includes only from its own layer or a lower one
#     (rank below), and never from cli/, daemon/, bench/ or tests/;
#   * a file in cli/ never includes from daemon/ (nomnomd shares the service
#     flags of cli/service_options.h, the other way round);
#   * nothing in core/ outside core/http/ includes core/http/.
# Prints every offending line as file:line: include (why) and exits 1 if there
# is one. scripts/test.sh runs it, and on tests/fixtures/layers-bad/ (a tree
# with one violation of each kind) to see it fail.
# Usage: scripts/check-layers.sh [DIR]   (DIR: the tree to check, default the repository)
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "${1:-}" in -h | --help) nn_usage ;; esac
[ -z "${1:-}" ] || cd "$1" || nn_die "no directory $1"

# A layer's rank: it may include its own rank and lower ones. Layers of one
# rank may include each other (sideways), but none does today.
declare -A rank=([base]=0 [format]=1 [gen]=1 [http]=1 [pg]=2 [queue]=2 [load]=3 [worker]=3)

bad=0
report() {
  echo "$1: $2 ($3)"
  bad=1
}

# grep -n over the tracked C++ files of a folder: "file:line:#include ..."
includes() { git ls-files -z -- "$1" | xargs -0 -r grep -nH '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' || true; }

while IFS= read -r hit; do
  file=${hit%%:*}
  rest=${hit#*:}
  line=${rest%%:*}
  inc=$(sed -E 's/^[^"]*"([^"]*)".*/\1/' <<<"${rest#*:}")
  layer=$(cut -d/ -f2 <<<"$file")
  [ -n "${rank[$layer]+x}" ] || {
    report "$file:$line" "$inc" "core/$layer/ is not a layer: add it to scripts/check-layers.sh and core/README.md"
    continue
  }
  case "$inc" in
    core/*/*)
      to=$(cut -d/ -f2 <<<"$inc")
      if [ -z "${rank[$to]+x}" ]; then
        report "$file:$line" "$inc" "no layer core/$to/"
      elif [ "$to" = http ] && [ "$layer" != http ]; then
        report "$file:$line" "$inc" "core/http/ serves the programs; core/$layer/ must not depend on it"
      elif [ "${rank[$to]}" -gt "${rank[$layer]}" ]; then
        report "$file:$line" "$inc" "core/$layer/ (rank ${rank[$layer]}) includes up into core/$to/ (rank ${rank[$to]})"
      fi
      ;;
    cli/* | daemon/* | bench/* | tests/*)
      report "$file:$line" "$inc" "core/ includes from ${inc%%/*}/"
      ;;
    core/*)
      report "$file:$line" "$inc" "a core/ header outside any layer folder"
      ;;
  esac
done < <(includes core)

# cli/ never includes daemon/; daemon/ may use cli/'s shared service options.
for pair in cli:daemon; do
  from=${pair%%:*} to=${pair##*:}
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    report "$file:${rest%%:*}" "$(sed -E 's/^[^"]*"([^"]*)".*/\1/' <<<"${rest#*:}")" \
      "$from/ must not include $to/: share it through core/"
  done < <(includes "$from" | grep -E "^[^:]+:[0-9]+:[[:space:]]*#[[:space:]]*include[[:space:]]*\"$to/" || true)
done

if [ "$bad" = 1 ]; then
  nn_log "check-layers: includes point up (above); move the code down a layer or the include out"
  exit 1
fi
nn_log "check-layers: every include in core/, cli/ and daemon/ points down or sideways"
