#!/usr/bin/env bash
# Runs all tests on a fresh machine: installs packages (deps.sh), builds
# Release (build.sh), starts a throwaway PostgreSQL and nats-server, runs
# ctest in build/ (unit, integration and e2e tests), then builds with ASan+UBSan
# (clang) and runs the unit and integration tests in build-asan/, then runs
# each libFuzzer harness for 15 s (scripts/fuzz.sh, build-fuzz/), then builds
# the container image (scripts/image.sh, podman) and runs the container tests:
# the image against its own PostgreSQL and nats-server, `podman kube play` of
# the dev overlay, the compose file with podman-compose, and the Debian package
# (scripts/package.sh) installed in a clean container.
# Services are stopped on exit. Exits non-zero if anything failed.
# Usage: scripts/test.sh [--no-asan] [--no-fuzz] [--no-container]
set -euo pipefail
# shellcheck source=lib/common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

asan=1 fuzz=1 container=1
for arg in "$@"; do
  case "$arg" in
    --no-asan) asan=0 ;;
    --no-fuzz) fuzz=0 ;;
    --no-container) container=0 ;;
    -h|--help) nn_usage ;;
    *) nn_die "unknown argument: $arg" ;;
  esac
done

passed=0 failed=0 # test cases, summed over the ctest runs
failures=()       # what failed: ctest runs and steps
results=()        # one line per ctest run
step=""           # the step running now, blamed if the script exits early
logdir=$(mktemp -d /tmp/nomnom-ctest-logs.XXXXXX)

finish() {
  local rc=$?
  set +e
  nn_stop_services
  rm -rf "$logdir"
  if [ "$rc" != 0 ] && [ -n "$step" ]; then
    failures+=("$step: exit $rc")
    failed=$((failed + 1))
  fi
  local r
  for r in "${results[@]}"; do nn_log "$r"; done
  if [ "${#failures[@]}" -eq 0 ]; then
    nn_log "test.sh: PASSED in $(nn_duration "$SECONDS")"
  else
    nn_log "test.sh: FAILED ($(IFS=,; echo "${failures[*]}")) in $(nn_duration "$SECONDS")"
    [ "$rc" != 0 ] || rc=1
  fi
  echo "tests: $passed passed, $failed failed"
  exit "$rc"
}
nn_on_exit finish

# run_ctest NAME BUILD_DIR: runs the tests there, adds up the results.
run_ctest() {
  local name=$1 dir=$2 log="$logdir/$1.log" rc=0 summary
  shift 2
  nn_log "ctest ($name) in $dir/ $*"
  ctest --test-dir "$dir" --output-on-failure --no-tests=error --timeout 300 -j2 "$@" 2>&1 \
    | tee "$log" || rc=$?
  # ctest ends with e.g. "100% tests passed, 0 tests failed out of 42".
  summary=$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [ -n "$summary" ]; then
    local f n
    read -r f _ _ _ _ n <<<"$summary"
    passed=$((passed + n - f))
    failed=$((failed + f))
    results+=("$name: $((n - f)) passed, $f failed (ctest exit $rc)")
  else
    failed=$((failed + 1))
    results+=("$name: ctest printed no summary (exit $rc)")
  fi
  [ "$rc" = 0 ] || failures+=("$name tests")
}

# run_e2e_script NAME SCRIPT: an e2e script run outside ctest (it needs the
# image); its last line is "e2e NAME: N passed, M failed (T s)".
run_e2e_script() {
  local name=$1 script=$2 log="$logdir/$1.log" rc=0 line
  shift 2
  nn_log "e2e ($name): $script"
  bash "$script" "$@" 2>&1 | grep -v 'unable to get systemd connection' | tee "$log" || rc=$?
  line=$(grep -E "^e2e $name: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1 || true)
  if [ -n "$line" ] && [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    results+=("$line")
  else
    failed=$((failed + 1))
    results+=("${line:-e2e $name: no summary} (exit $rc)")
    failures+=("$name")
  fi
}

step=deps; "$NN_ROOT/scripts/deps.sh"
step=format; "$NN_ROOT/scripts/format.sh" --check
# The scripts the docs tell users to run must be executable in a clone.
step="script modes"
if git -C "$NN_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  not_exec=$(git -C "$NN_ROOT" ls-files -s -- 'scripts/*.sh' '.ci/*' |
    awk '$1 != "100755" && $4 !~ /^scripts\/lib\// { printf "%s ", $4 }')
  [ -z "$not_exec" ] || nn_die "not executable in git (git update-index --chmod=+x): $not_exec"
fi
step="release build"; "$NN_ROOT/scripts/build.sh"
# Every --flag on a command line in the docs and manifests is one the program has.
step="docs flags"
mapfile -t doc_files < <(git -C "$NN_ROOT" ls-files -- README.md 'docs/*.md' 'deploy/*.md' 'core/*README.md' \
  'core/*/README.md' 'bench/README.md' 'tests/README.md' 'deploy/systemd/*' 'deploy/k8s/*.yaml' 'deploy/compose.yaml')
python3 "$NN_ROOT/scripts/check-docs.py" "$NN_ROOT/build/cli/nomnom" "$NN_ROOT/build/daemon/nomnomd" "${doc_files[@]}"
# ... and it finds the three made-up flags of its fixture.
misses=$(python3 "$NN_ROOT/scripts/check-docs.py" "$NN_ROOT/build/cli/nomnom" "$NN_ROOT/build/daemon/nomnomd" \
  "$NN_ROOT/tests/fixtures/docs-bad.md" | grep -c ' has no --' || true)
[ "$misses" = 3 ] || nn_die "check-docs.py found $misses of the 3 unknown flags in tests/fixtures/docs-bad.md"
# Every header of a core/ layer has its line in that folder's README.md.
undocumented=""
for header in $(git -C "$NN_ROOT" ls-files -- 'core/*/*.h'); do
  grep -qF "\`$(basename "$header")\`" "$NN_ROOT/$(dirname "$header")/README.md" 2>/dev/null || undocumented+=" $header"
done
[ -z "$undocumented" ] || nn_die "headers missing from their folder's README.md:$undocumented"
# Includes point down the layers (scripts/check-layers.sh), and the check
# fails on a tree that breaks each rule once.
step="include layers"; "$NN_ROOT/scripts/check-layers.sh"
violations=$("$NN_ROOT/scripts/check-layers.sh" "$NN_ROOT/tests/fixtures/layers-bad" 2>/dev/null | grep -c '' || true)
[ "$violations" = 4 ] || nn_die "check-layers.sh found $violations of the 4 violations in tests/fixtures/layers-bad"
step=services; nn_start_postgres; nn_start_nats
step="release tests"; run_ctest release build
if [ "$asan" = 1 ]; then
  step="asan build"; "$NN_ROOT/scripts/build.sh" --asan
  step="asan tests"
  # Unit and integration tests under the sanitizers; the e2e scripts (whole
  # processes, already run above) are left out to keep CI well under 20 minutes.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest asan build-asan -LE e2e
fi
if [ "$fuzz" = 1 ]; then
  # A short bounded run (6 harnesses x 15 s, plus the clang build): it catches
  # regressions on the seed corpora and finds shallow bugs; the long run is
  # scripts/fuzz.sh --seconds 3600 (tests/README.md, "Fuzzing").
  step=fuzz; "$NN_ROOT/scripts/fuzz.sh" --seconds 15
  results+=("fuzz: every harness ran 15 s without a crash")
fi
if [ "$container" = 1 ]; then
  step="container image"; "$NN_ROOT/scripts/image.sh"
  for t in container_image kube_play compose_up; do
    step="container test $t"
    run_e2e_script "$t" "$NN_ROOT/tests/e2e/$t.sh"
  done
  # The Debian package of the release build (configured for /usr, so only what
  # the prefix changes is compiled again), installed in a clean container.
  step="package"; "$NN_ROOT/scripts/package.sh" --build-dir build
  step="container test package_install"
  run_e2e_script package_install "$NN_ROOT/tests/e2e/package_install.sh" "$(ls "$NN_ROOT"/build/nomnom_*.deb)"
fi
step=""
[ "${#failures[@]}" -eq 0 ]
