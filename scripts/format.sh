#!/usr/bin/env bash
# Formats the C++ sources with clang-format (.clang-format at the root).
# Usage: scripts/format.sh [--check]   (--check: change nothing, list the files
#                                       that are not formatted, exit 1 if any)
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

check=0
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    -h|--help) nn_usage ;;
    *) nn_die "unknown argument: $arg" ;;
  esac
done
command -v clang-format >/dev/null 2>&1 || nn_die "clang-format is not installed (scripts/deps.sh installs it)"
cd "$NN_ROOT"
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.hpp')
if [ "$check" = 1 ]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if [ "${#bad[@]}" -gt 0 ]; then
    nn_log "format: not formatted (run scripts/format.sh): ${bad[*]}"
    exit 1
  fi
  nn_log "format: ${#files[@]} files formatted"
else
  clang-format -i "${files[@]}"
fi
