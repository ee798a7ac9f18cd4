#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/) with clang++ into build-fuzz/
# and runs each for a while on a copy of its seed corpus.
# Usage: scripts/fuzz.sh [--seconds N] [--jobs J] [--merge] [--build-only] [harness...]
#   --seconds N   run each harness for N seconds (default 20)
#   --jobs J      J fuzzing processes per harness (libFuzzer -fork=J; default 1)
#   --merge       afterwards, merge the inputs that add coverage into the
#                 committed corpus tests/fuzz/corpus/<harness>/ (otherwise it
#                 is never written)
#   --build-only  build, run nothing
#   harness...    which ones (default: all), e.g. fuzz_numeric fuzz_row_encoder
# Stops at the first crash, leak or timeout with a non-zero exit, printing the
# path of the input that caused it (kept under /tmp until you delete it);
# reproduce with build-fuzz/tests/fuzz/<harness> <path>.
# Environment: NOMNOM_FUZZ_KNOWN_BUGS=name,... lists known, reported bugs the
# harnesses step over (tests/README.md, "Fuzzing"); default: the ones still
# open (lax-json). Set it empty to have them reported too.
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

all=(fuzz_row_encoder fuzz_ndjson_reader fuzz_numeric fuzz_datetime fuzz_ingest_ids fuzz_reject_json fuzz_ingest_request fuzz_http_request fuzz_nested_encoder fuzz_delimited fuzz_delimited_reader fuzz_pgcopy_chunk)
seconds=20 jobs=1 merge=0 build_only=0 harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) [ $# -ge 2 ] || nn_die "--seconds needs a value"; seconds=$2; shift ;;
    --jobs) [ $# -ge 2 ] || nn_die "--jobs needs a value"; jobs=$2; shift ;;
    --merge) merge=1 ;;
    --build-only) build_only=1 ;;
    -h|--help) nn_usage ;;
    -*) nn_die "unknown option: $1 (see --help)" ;;
    *) harnesses+=("$1") ;;
  esac
  shift
done
nn_need_int --seconds 1 "$seconds"
nn_need_int --jobs 1 "$jobs"
[ "${#harnesses[@]}" -gt 0 ] || harnesses=("${all[@]}")
for h in "${harnesses[@]}"; do
  [[ " ${all[*]} " == *" $h "* ]] || nn_die "unknown harness: $h (one of: ${all[*]})"
done
# Reported and not fixed yet; remove a name once its fix is in.
export NOMNOM_FUZZ_KNOWN_BUGS="${NOMNOM_FUZZ_KNOWN_BUGS-lax-json}"
command -v clang++ >/dev/null 2>&1 || nn_die "clang++ is not installed (scripts/deps.sh installs it)"

# Build as scripts/build.sh does (ccache shared with the other checkouts), but
# only the harnesses and what they link.
dir=build-fuzz
opts=(-DCMAKE_CXX_COMPILER=clang++ -DNOMNOM_FUZZ=ON -DNOMNOM_BUILD_TESTS=OFF -DNOMNOM_BUILD_BENCH=OFF
      -DCMAKE_BUILD_TYPE=RelWithDebInfo)
[ -n "${CI:-}" ] && opts+=(-DNOMNOM_WERROR=ON)
if command -v ccache >/dev/null 2>&1; then
  opts+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$NN_ROOT" CCACHE_NOHASHDIR=1
fi
start=$SECONDS
nn_log "fuzz: building ${harnesses[*]} into $dir/"
cmake -S . -B "$dir" "${opts[@]}" >/dev/null
cmake --build "$dir" --parallel 2 --target "${harnesses[@]}"
nn_log "fuzz: built in $(nn_duration $((SECONDS - start)))"
[ "$build_only" = 0 ] || exit 0

work=$(mktemp -d /tmp/nomnom-fuzz.XXXXXX)
keep_work=0
cleanup() {
  if [ "$keep_work" = 0 ]; then rm -rf "$work"; fi
}
nn_on_exit cleanup

summary=()
for h in "${harnesses[@]}"; do
  bin="$NN_ROOT/$dir/tests/fuzz/$h"
  seeds="$NN_ROOT/tests/fuzz/corpus/$h"
  corpus="$work/$h/corpus" artifacts="$work/$h/artifacts/" log="$work/$h/log"
  mkdir -p "$corpus" "$artifacts"
  [ -d "$seeds" ] && cp -R "$seeds/." "$corpus/"
  args=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts")
  [ "$jobs" -gt 1 ] && args+=(-fork="$jobs")
  [ -f "$NN_ROOT/tests/fuzz/$h.dict" ] && args+=(-dict="$NN_ROOT/tests/fuzz/$h.dict")
  nn_log "fuzz: $h for ${seconds}s ($(find "$corpus" -type f | wc -l) seed inputs; known bugs stepped over: ${NOMNOM_FUZZ_KNOWN_BUGS:-none})"
  rc=0
  (cd "$work/$h" && "$bin" "${args[@]}" "$corpus") >"$log" 2>&1 || rc=$?
  crashes=$(find "$artifacts" -type f | sort)
  if [ "$rc" != 0 ] || [ -n "$crashes" ]; then
    keep_work=1
    tail -n 60 "$log" >&2
    nn_log "fuzz: $h FAILED (exit $rc); full log: $log"
    for c in $crashes; do nn_log "fuzz: crashing input: $c (reproduce: $bin $c)"; done
    exit 1
  fi
  # -print_final_stats: "stat::number_of_executed_units: N"; with -fork the
  # parent prints "#N ... DONE" lines instead.
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' \
            | awk '{ s += $1 } END { print s + 0 }')
  if [ "$execs" = 0 ]; then
    execs=$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
  fi
  inputs=$(find "$corpus" -type f | wc -l)
  summary+=("$h: ${execs:-?} executions in ${seconds}s, corpus $inputs inputs, no crash")
  if [ "$merge" = 1 ]; then
    mkdir -p "$seeds"
    "$bin" -merge=1 -artifact_prefix="$artifacts" "$seeds" "$corpus" >>"$log" 2>&1
    nn_log "fuzz: merged into tests/fuzz/corpus/$h/ ($(find "$seeds" -type f | wc -l) inputs)"
  fi
done
for s in "${summary[@]}"; do nn_log "fuzz: $s"; done
