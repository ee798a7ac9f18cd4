# shellcheck shell=bash
# Helpers shared by the benchmark scripts (scripts/bench-*.sh). Source it
# after common.sh.
#
#   bench_prepare BUILD [TOOL...]
#                          deps --bench + build (BUILD=1), checks the TOOLs are
#                          there (default: psql curl jq nats-server), copies the binaries
#                          into $BENCH_TMP (a fresh temp dir) so that other builds
#                          replacing build/ cannot change what is measured
#   bench_spawn VAR CMD... starts CMD in the background, records its pid for
#                          bench_cleanup and stores it in VAR
#   bench_cleanup          stops every process bench_spawn started, then the
#                          throwaway services; run from the EXIT trap
#   bench_fresh_nats       stops the nats-server this script started (if any)
#                          and starts a new one with an empty JetStream store
#   bench_options COMMON OWN_VALUED ARGS...
#                          the options every script shares (see below); the
#                          rest is left in BENCH_ARGS for the script's own loop

BENCH_PIDS=()
BENCH_TMP=""
BENCH_KEEP=0

# ---- options every bench script shares
#
#   rounds=3 sf=1                      # the script's defaults, before the call
#   bench_options "--rounds --sf --no-build --keep" "--workers --loaders" "$@"
#   set -- "${BENCH_ARGS[@]}"
#   while [ $# -gt 0 ]; do
#     case "$1" in
#       --workers) workers=$2; shift ;;   # bench_options checked the value is there
#       --memory) memory=1 ;;
#       *) bench_unknown_option "$1" ;;
#     esac
#     shift
#   done
#
# COMMON names the shared options the script takes, of:
#   --rounds N   sets rounds (checked: a positive integer)
#   --sf X       sets sf (checked: a positive number)
#   --jobs N     sets jobs (checked: a positive integer; unset: nomnom's own)
#   --no-build   sets build=0 (build is 1 unless the script set it): skip
#                scripts/deps.sh --bench and scripts/build.sh
#   --keep       sets BENCH_KEEP=1: keep the temp dir at exit
# -h/--help (the comment block at the top of the script) is always taken; a
# shared option the script does not name is an unknown argument for it.
# OWN_VALUED lists the script's own options that take a value: each must be
# followed by one (else "--x needs a value"), which passes through untouched
# even when it starts with "--" (--nomnomd-args "--workers 2"). Everything
# else is left, in order, in BENCH_ARGS. Also sets BENCH_COMMAND, the command
# line as the report prints it.
BENCH_ARGS=()
# rounds, sf, jobs and build are the calling script's variables.
# shellcheck disable=SC2034
bench_options() {
  local common=" $1 " valued=" $2 " opt
  shift 2
  BENCH_COMMAND=$(printf '%q ' "scripts/$(basename "$0")" "$@")
  BENCH_COMMAND=${BENCH_COMMAND% }
  BENCH_ARGS=()
  build=${build:-1}
  while [ $# -gt 0 ]; do
    opt=$1
    case "$opt" in
      -h|--help) nn_usage ;;
    esac
    if [[ $opt == --* && $common == *" $opt "* ]]; then
      case "$opt" in
        --rounds|--sf|--jobs)
          [ $# -ge 2 ] || nn_die "$opt needs a value (see --help)"
          case "$opt" in
            --rounds) nn_need_int --rounds 1 "$2"; rounds=$2 ;;
            --sf) nn_need_number --sf "$2"; sf=$2 ;;
            --jobs) nn_need_int --jobs 1 "$2"; jobs=$2 ;;
          esac
          shift ;;
        --no-build) build=0 ;;
        --keep) BENCH_KEEP=1 ;;
        *) nn_die "bench_options: $opt is not a shared option (scripts/lib/bench.sh)" ;;
      esac
    elif [[ $opt == -* && $valued == *" $opt "* ]]; then
      [ $# -ge 2 ] || nn_die "$opt needs a value (see --help)"
      BENCH_ARGS+=("$opt" "$2")
      shift
    else
      BENCH_ARGS+=("$opt")
    fi
    shift
  done
  # The defaults the script set are checked too (a typo there fails at once).
  [[ $common != *" --rounds "* ]] || nn_need_int --rounds 1 "$rounds"
  [[ $common != *" --sf "* ]] || nn_need_number --sf "$sf"
}

# bench_unknown_option ARG: the last branch of a script's own option loop.
bench_unknown_option() { nn_die "unknown argument: $1 (see --help)"; }
CLK_TCK=$(getconf CLK_TCK)

bench_now() { date +%s.%N; }

# bench_time_of FILE: "wall user+sys rss_kb" from GNU time -f '%e %U %S %M' output.
bench_time_of() { tail -n 1 "$1" | awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }'; }

# bench_dump_logs DIR: the last lines of every file in DIR, on stderr (after a failure).
bench_dump_logs() {
  local f
  for f in "$1"/*; do
    [ -f "$f" ] || continue
    echo "---- $f" >&2
    tail -n 20 "$f" >&2
  done
}

# bench_fsub A B: A - B with millisecond precision.
bench_fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# Reads numbers, one a line, on stdin; prints "median min max".
bench_stats() {
  sort -g | awk '{ v[NR] = $1 }
    END {
      if (NR == 0) { print "- - -"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.3f %.3f %.3f\n", m, v[1], v[NR]
    }'
}

# Median of the numbers on stdin ("-" when none).
bench_median() { bench_stats | cut -d' ' -f1; }

bench_load_average() { cut -d' ' -f1-3 /proc/loadavg; }

readonly BENCH_PSQL_OPTS=(-X -q -v ON_ERROR_STOP=1)
bench_sql() { psql "${BENCH_PSQL_OPTS[@]}" -At "$DATABASE_URL" -c "$1"; }

bench_spawn() {
  local -n _pid_var=$1
  shift
  "$@" &
  _pid_var=$!
  BENCH_PIDS+=("$_pid_var")
}

# bench_stop PID [SIGNAL]: stops one spawned process (if still running) and reaps it.
bench_stop() {
  local pid=$1 sig=${2:-TERM} child
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    for child in $(pgrep -P "$pid"); do kill "-$sig" "$child" 2>/dev/null || true; done
    kill "-$sig" "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  # Run to the end whatever fails: errexit would stop at the first failing
  # command and leave servers running.
  set +e
  local pid p alive
  local -a procs=()
  # The spawned processes and, for those run under /usr/bin/time (which dies
  # at once on TERM), the measured child as well.
  for pid in "${BENCH_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    procs+=("$pid")
    for p in $(pgrep -P "$pid"); do procs+=("$p"); done
  done
  for p in "${procs[@]}"; do kill -TERM "$p" 2>/dev/null; done
  # What still runs after 10 s is killed (a worker stopping while NATS is
  # gone can take minutes: each pending ack waits for its timeout).
  for _ in $(seq 1 100); do
    alive=0
    for p in "${procs[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.1
  done
  for p in "${procs[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  BENCH_PIDS=()
  # Stop nats-server here: nn_stop_services' `kill && wait` returns the
  # server's exit status (143), which aborts it under set -e before it stops
  # PostgreSQL; called as `|| true`, errexit is off inside it as well.
  if [ -n "${NN_NATS_PID:-}" ]; then
    kill "$NN_NATS_PID" 2>/dev/null
    wait "$NN_NATS_PID" 2>/dev/null
    NN_NATS_PID=""
  fi
  nn_stop_services || true
  if [ -n "$BENCH_TMP" ]; then
    if [ "$BENCH_KEEP" = 1 ]; then nn_log "kept $BENCH_TMP"; else rm -rf "$BENCH_TMP"; fi
  fi
}

bench_fresh_nats() {
  if [ -n "${NN_NATS_PID:-}" ]; then
    kill "$NN_NATS_PID" 2>/dev/null || true
    wait "$NN_NATS_PID" 2>/dev/null || true
    NN_NATS_PID=""
    rm -rf "${NN_NATS_DIR:?}"
  fi
  nn_start_nats 2>/dev/null
}

# "messages last_seq" of a JetStream stream, from nats-server's monitoring
# endpoint. In a fresh stream last_seq counts every message ever stored
# (whatever the retention policy later removed); messages is what it holds now.
bench_stream_state() {
  curl -sf "http://127.0.0.1:$NN_NATS_MONITOR_PORT/jsz?streams=true" |
    jq -r --arg s "${1:-MESSAGES}" \
      '[.account_details[]?.stream_detail[]? | select(.name == $s) | .state] | first // {} | "\(.messages // 0) \(.last_seq // 0)"'
}

# bench_commit_poller TARGET TIMEOUT_S OUTFILE: one PostgreSQL session that
# checks every 20 ms how many rows the workers have committed (the sum of
# rows_committed in the ledger, which commits in the same transaction as the
# rows) and, once it reaches TARGET, writes "committed_at EPOCH" (the server's
# clock_timestamp(), the same clock as date +%s.%N) to OUTFILE. Fails after
# TIMEOUT_S. Waits for the ledger table to exist (the worker creates it). Each
# statement of the DO block sees the latest commits (READ COMMITTED); the
# table is looked up by the EXECUTE (which takes a lock and so sees catalog
# changes), not by to_regclass(), which would keep its first answer.
bench_commit_poller() {
  local target=$1 timeout=$2 out=$3
  psql "${BENCH_PSQL_OPTS[@]}" "$DATABASE_URL" -c "
DO \$\$
DECLARE
  n bigint := 0;
  deadline timestamptz := clock_timestamp() + interval '$timeout seconds';
BEGIN
  LOOP
    BEGIN
      EXECUTE 'SELECT coalesce(sum(rows_committed), 0) FROM public.nomnom_ledger' INTO n;
    EXCEPTION WHEN undefined_table THEN
      n := 0;
    END;
    EXIT WHEN n >= $target;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'timeout: % of % rows committed after $timeout s', n, $target;
    END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
  RAISE NOTICE 'committed_at %', extract(epoch FROM clock_timestamp());
END
\$\$" >"$out" 2>&1
}

# bench_wait_commit POLLER_PID WORKER_PID: waits for the poller; fails when it
# failed, or when the worker exited and the poller did not finish within 5 s
# (the rows it still had to commit will not come).
# The worker's exit status, if it was reaped here, is kept for bench_wait_worker.
BENCH_REAPED_PID="" BENCH_REAPED_STATUS=0
bench_wait_commit() {
  local poller=$1 worker=$2 first="" status=0
  wait -n -p first "$poller" "$worker" || status=$?
  if [ "$first" = "$poller" ]; then
    return "$status"
  fi
  BENCH_REAPED_PID=$worker BENCH_REAPED_STATUS=$status
  for _ in $(seq 1 100); do
    kill -0 "$poller" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$poller" 2>/dev/null; then
    bench_stop "$poller"
    nn_log "the worker exited (status $status) before every row was committed"
    return 1
  fi
  wait "$poller"
}

# bench_wait_worker PID: waits for the worker, returns its exit status.
bench_wait_worker() {
  if [ "$1" = "$BENCH_REAPED_PID" ]; then
    BENCH_REAPED_PID=""
    return "$BENCH_REAPED_STATUS"
  fi
  wait "$1"
}

# Prints the epoch the poller saw the target reached, or fails.
bench_poller_result() {
  local t
  t=$(sed -n 's/.*committed_at \([0-9.]*\).*/\1/p' "$1")
  [ -n "$t" ] || return 1
  echo "$t"
}

# Drops the target table and the workers' bookkeeping tables, recreates the
# target from `nomnom schema`, and checkpoints (outside any timed part).
bench_reset_tables() {
  local table=$1
  bench_sql "SET client_min_messages = warning;
    DROP TABLE IF EXISTS $table, nomnom_ledger, nomnom_dead_letters" >/dev/null
  "$NOMNOM" schema --table "$table" | psql "${BENCH_PSQL_OPTS[@]}" "$DATABASE_URL" >/dev/null
  bench_sql CHECKPOINT >/dev/null
}

# "rows fingerprint" of a table; the fingerprint is order-independent.
bench_fingerprint() {
  bench_sql "SELECT count(*) || ' ' || coalesce(sum(hashtextextended(t::text, 0)), 0) FROM $1 t"
}

# ---- CPU accounting (clock ticks from /proc; bench_ticks_to_s converts)

# bench_proc_ticks PID [1]: utime+stime of a live process (plus its reaped
# children's with 1); 0 when it is gone.
bench_proc_ticks() {
  local stat f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) }  # fields from 3 (state) on; the comm may hold spaces
  read -r -a f <<<"$stat"
  if [ "${2:-0}" = 1 ]; then
    echo $((f[11] + f[12] + f[13] + f[14]))
  else
    echo $((f[11] + f[12]))
  fi
}

# CPU ticks of the whole throwaway PostgreSQL: the postmaster with its reaped
# backends, plus every live child (backends, walwriter, checkpointer, ...).
bench_pg_ticks() {
  local pm total child
  pm=$(head -n 1 "$NN_PG_DIR/data/postmaster.pid" 2>/dev/null) || { echo 0; return; }
  total=$(bench_proc_ticks "$pm" 1)
  for child in $(pgrep -P "$pm"); do
    total=$((total + $(bench_proc_ticks "$child")))
  done
  echo "$total"
}

# bench_pg_ticks after a 0.3 s pause, so that backends whose client just
# disconnected have exited and been reaped (moved into the postmaster's
# children times); read while exiting, their CPU could be missed.
bench_pg_ticks_settled() {
  sleep 0.3
  bench_pg_ticks
}

bench_ticks_to_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'; }

# ---- preparation and report

bench_prepare() {
  local build=$1
  shift
  local -a tools=("$@")
  [ ${#tools[@]} -gt 0 ] || tools=(psql curl jq nats-server)
  if [ "$build" = 1 ]; then
    "$NN_ROOT/scripts/deps.sh" --bench >&2
    "$NN_ROOT/scripts/build.sh" >&2
  fi
  local tool
  for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || nn_die "$tool missing (scripts/deps.sh --bench installs it)"
  done
  [ -x /usr/bin/time ] || nn_die "/usr/bin/time missing (scripts/deps.sh --bench installs package time)"
  BENCH_REV=$(git -C "$NN_ROOT" describe --always --dirty 2>/dev/null || echo unknown)
  BENCH_REV_NOTE=", Release build"
  [ "$build" = 1 ] || BENCH_REV_NOTE=" (the work tree's; --no-build: the binaries may be older)"
  case "$BENCH_REV" in
    *-dirty) BENCH_REV_NOTE+="; -dirty: the work tree had uncommitted changes" ;;
  esac
  BENCH_TMP=$(mktemp -d /tmp/nomnom-bench.XXXXXX)
  mkdir -p "$BENCH_TMP/logs"
  local bin
  for bin in cli/nomnom daemon/nomnomd; do
    [ -x "$NN_ROOT/build/$bin" ] || nn_die "build/$bin not found (run scripts/build.sh, or drop --no-build)"
    cp "$NN_ROOT/build/$bin" "$BENCH_TMP/"
  done
  # Used by the scripts that source this file.
  # shellcheck disable=SC2034
  NOMNOM="$BENCH_TMP/nomnom" NOMNOMD="$BENCH_TMP/nomnomd"
}

# bench_machine_facts nats|no-nats: Markdown bullet list of the machine and
# software facts (no-nats: a run without nats-server or the daemon).
bench_machine_facts() {
  local with_nats=1
  [ "$1" = no-nats ] && with_nats=0
  local cpu mem pgver
  cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  pgver=$(bench_sql 'SHOW server_version')
  echo "- command: \`$BENCH_COMMAND\`"
  echo "- started: $BENCH_STARTED"
  echo "- nomnom: $("$NOMNOM" --version 2>/dev/null | head -n 1), git $BENCH_REV$BENCH_REV_NOTE"
  echo "- machine: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr)"
  echo "- PostgreSQL $pgver on 127.0.0.1, default durability (fsync on), shared_buffers=256MB, max_wal_size=4GB"
  if [ "$with_nats" = 1 ]; then
    echo "- nats-server $(nats-server --version 2>/dev/null | awk '{print $NF}'), JetStream file storage" \
      "(server defaults: no fsync per message), a fresh server with an empty store for every run"
    echo "- every process (clients, nomnomd, nats-server, PostgreSQL) shares the same $(nproc) CPUs"
  else
    echo "- the clients and PostgreSQL share the same $(nproc) CPUs"
  fi
  echo "- load average before: $BENCH_LOAD_BEFORE; after: $(bench_load_average)"
}
