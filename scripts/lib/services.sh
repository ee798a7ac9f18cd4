# shellcheck shell=bash
# Throwaway PostgreSQL and nats-server instances for tests, demos and benchmarks.
#
# Source this file, then call nn_start_postgres / nn_start_nats. Each server
# listens on a free loopback port, keeps its data in a fresh temp directory and
# is stopped (and its directory removed) by nn_stop_services, which the caller
# should run from an EXIT trap:   trap nn_stop_services EXIT
#
# Exports after nn_start_postgres: DATABASE_URL, NN_PG_PORT, NN_PG_DIR
# Exports after nn_start_nats:     NATS_URL, NN_NATS_PORT, NN_NATS_MONITOR_PORT, NN_NATS_DIR

NN_SERVICE_DIRS=()
NN_NATS_PID=""

nn_log() { printf '[nomnom] %s\n' "$*" >&2; }

# Prints a TCP port on 127.0.0.1 that nothing listens on now.
# Ports are picked below the kernel's ephemeral range (ip_local_port_range),
# where outgoing connections of other processes (tests running in parallel)
# cannot take them between the pick and the bind, and never twice in one
# shell (a file lists those handed out, since callers run this in $(...)).
NN_PORTS_GIVEN="${NN_PORTS_GIVEN:-$(mktemp -t nomnom-ports.XXXXXX)}"
export NN_PORTS_GIVEN
nn_free_port() {
  local port low=10000 high=32767 eph
  if read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && [ "$eph" -gt 11000 ]; then
    high=$((eph - 1))
  fi
  for _ in $(seq 1 400); do
    port=$((low + (RANDOM * 32768 + RANDOM) % (high - low + 1)))
    grep -qx "$port" "$NN_PORTS_GIVEN" 2>/dev/null && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port" >>"$NN_PORTS_GIVEN"
      echo "$port"
      return 0
    fi
  done
  nn_log "no free port found"
  return 1
}

nn_pg_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { nn_log "PostgreSQL server binaries not found (apt-get install postgresql)"; return 1; }
  echo "$d"
}

# Runs a command as the postgres user when we are root (initdb refuses root).
nn_as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# nn_start_postgres [extra postgres -c settings...]
# Default settings favour test speed (fsync off); pass NN_PG_DURABLE=1 for a
# server with PostgreSQL's default durability (benchmarks).
nn_start_postgres() {
  local bindir dir port opts
  bindir=$(nn_pg_bindir) || return 1
  dir=$(mktemp -d /tmp/nomnom-pg.XXXXXX)
  NN_SERVICE_DIRS+=("$dir")
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  nn_as_pg "$bindir/initdb" -D "$dir/data" -U nomnom --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=200"
  opts+=" -c shared_buffers=256MB -c max_wal_size=4GB -c checkpoint_timeout=30min"
  if [ "${NN_PG_DURABLE:-0}" != 1 ]; then
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  for extra in "$@"; do opts+=" -c $extra"; done
  for _ in 1 2 3 4 5; do
    port=$(nn_free_port) || return 1
    if nn_as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port $opts" start >/dev/null 2>&1; then
      export NN_PG_PORT=$port NN_PG_DIR=$dir NN_PG_BINDIR=$bindir NN_PG_OPTS="$opts"
      nn_as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U nomnom nomnom
      export DATABASE_URL="postgresql://nomnom@127.0.0.1:$port/nomnom"
      nn_log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
      return 0
    fi
  done
  nn_log "PostgreSQL failed to start; log follows"
  cat "$dir/server.log" >&2
  return 1
}

# Stops the throwaway PostgreSQL (fast mode) without removing its data.
nn_pg_stop() {
  [ -n "${NN_PG_DIR:-}" ] || return 0
  nn_as_pg "$NN_PG_BINDIR/pg_ctl" -D "$NN_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}

# Starts it again on the same port after nn_pg_stop.
nn_pg_start_again() {
  nn_as_pg "$NN_PG_BINDIR/pg_ctl" -D "$NN_PG_DIR/data" -l "$NN_PG_DIR/server.log" -w -t 60 \
    -o "-p $NN_PG_PORT $NN_PG_OPTS" start >/dev/null
}

nn_start_nats() {
  local dir port mport
  command -v nats-server >/dev/null || { nn_log "nats-server not found (apt-get install nats-server)"; return 1; }
  dir=$(mktemp -d /tmp/nomnom-nats.XXXXXX)
  NN_SERVICE_DIRS+=("$dir")
  for _ in 1 2 3 4 5; do
    port=$(nn_free_port) || return 1
    mport=$(nn_free_port) || return 1
    nats-server -a 127.0.0.1 -p "$port" -m "$mport" -js -sd "$dir/js" >"$dir/server.log" 2>&1 &
    NN_NATS_PID=$!
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        export NATS_URL="nats://127.0.0.1:$port" NN_NATS_PORT=$port NN_NATS_MONITOR_PORT=$mport NN_NATS_DIR=$dir
        nn_log "nats-server $(nats-server --version 2>/dev/null | awk '{print $NF}') on 127.0.0.1:$port (JetStream in $dir)"
        return 0
      fi
      kill -0 "$NN_NATS_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$NN_NATS_PID" 2>/dev/null || true; wait "$NN_NATS_PID" 2>/dev/null || true  # it may have died (port taken); set -e callers
  done
  nn_log "nats-server failed to start; log follows"
  cat "$dir/server.log" >&2
  return 1
}

nn_stop_services() {
  if [ -n "$NN_NATS_PID" ]; then
    # wait returns the server's exit status (143 after SIGTERM): not an error here.
    kill "$NN_NATS_PID" 2>/dev/null && { wait "$NN_NATS_PID" 2>/dev/null || true; }
    NN_NATS_PID=""
  fi
  nn_pg_stop
  local d
  for d in "${NN_SERVICE_DIRS[@]}"; do rm -rf "$d"; done
  NN_SERVICE_DIRS=()
}
