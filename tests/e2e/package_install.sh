#!/usr/bin/env bash
# e2e (container): the Debian package scripts/package.sh builds, installed with
# `apt-get install ./nomnom_*.deb` in a clean Debian bookworm container (its
# Depends pulled from the archive), then used there: --version of both
# programs (version and commit), nomnomd --help, the files it ships (entity
# sets, systemd units not enabled, man pages, docs, monitoring), `nomnom gen`
# and `nomnom load` against this test's PostgreSQL (host network), and the
# bundled full TPC-H entity set.
# Usage: package_install.sh DEB   (default: the newest build*/nomnom_*.deb)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../../scripts/lib/podman.sh
source "$E2E_ROOT/scripts/lib/podman.sh"

deb=${1:-$(ls -t "$E2E_ROOT"/build*/nomnom_*.deb 2>/dev/null | head -n 1)}
[ -f "$deb" ] || e2e_fail "no package (build it with scripts/package.sh)"
nn_podman_setup
base=$(nn_podman_base) || e2e_fail "no Debian bookworm base image"
nn_start_postgres || e2e_fail "PostgreSQL did not start"
cp "$deb" "$E2E_TMP/"
chmod 644 "$E2E_TMP"/*.deb
version=$(dpkg-deb --field "$deb" Version)
commit=$(git -C "$E2E_ROOT" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)

# Everything runs in one container, as a new user would type it.
rc=0
podman run --rm --network host -e DATABASE_URL -v "$E2E_TMP:/pkg" "$base" bash -euo pipefail -c '
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq /pkg/nomnom_*.deb >/pkg/apt.log 2>&1 || { cat /pkg/apt.log; exit 1; }
  echo "version: $(nomnom --version)"
  echo "dversion: $(nomnomd --version)"
  echo "help: $(nomnomd --help | head -n 1)"
  for f in /usr/share/nomnom/entities/order.yaml /usr/share/nomnom/entities/tpch-full/lineitem.yaml \
           /usr/lib/systemd/system/nomnomd.service /usr/lib/systemd/system/nomnom-worker@.service \
           /usr/share/man/man1/nomnom.1.gz /usr/share/man/man1/nomnomd.1.gz \
           /usr/share/doc/nomnom/README.md /usr/share/doc/nomnom/grafana/nomnom.json \
           /usr/share/doc/nomnom/prometheus/nomnom-rules.yaml; do
    [ -f "$f" ] && echo "file: $f"
  done
  echo "execstart: $(grep -h ^ExecStart= /usr/lib/systemd/system/nomnomd.service | cut -d" " -f1)"
  echo "enabled: $(ls /etc/systemd/system/multi-user.target.wants/ 2>/dev/null | grep -c nomnom || true)"
  nomnom gen tpch orders --sf 0.002 -o /tmp/orders.ndjson
  nomnom load /tmp/orders.ndjson --json >/pkg/load.json
  nomnom gen tpch region -o /tmp/region.ndjson
  nomnom load --entities /usr/share/nomnom/entities/tpch-full --entity region /tmp/region.ndjson --json >/pkg/region.json
' >"$E2E_TMP/out.txt" 2>"$E2E_TMP/err.txt" || rc=$?
out=$(cat "$E2E_TMP/out.txt")
[ "$rc" = 0 ] || e2e_fail "the container's commands failed (exit $rc): $(tail -n 20 "$E2E_TMP/err.txt") $out"
e2e_pass "apt-get install ./$(basename "$deb") in a clean bookworm container"
assert_contains "$out" "version: nomnom $version (commit $commit)" "nomnom --version"
assert_contains "$out" "dversion: nomnomd $version (commit $commit)" "nomnomd --version"
assert_contains "$out" "help: nomnomd:" "nomnomd --help"
for f in /usr/share/nomnom/entities/order.yaml /usr/share/nomnom/entities/tpch-full/lineitem.yaml \
  /usr/lib/systemd/system/nomnomd.service /usr/lib/systemd/system/nomnom-worker@.service \
  /usr/share/man/man1/nomnom.1.gz /usr/share/man/man1/nomnomd.1.gz /usr/share/doc/nomnom/README.md \
  /usr/share/doc/nomnom/grafana/nomnom.json /usr/share/doc/nomnom/prometheus/nomnom-rules.yaml; do
  assert_contains "$out" "file: $f" "the package ships $f"
done
assert_contains "$out" "execstart: ExecStart=/usr/bin/nomnomd" "the unit runs the packaged binary"
assert_contains "$out" "enabled: 0" "units enabled by installing"
assert_eq "$(json_get inserted "$(cat "$E2E_TMP/load.json")")" 3000 "orders loaded by the packaged nomnom"
assert_eq "$(sql 'SELECT count(*) FROM orders')" 3000 "rows in orders"
assert_eq "$(json_get inserted "$(cat "$E2E_TMP/region.json")")" 5 "regions loaded with the packaged tpch-full entities"
depends=$(dpkg-deb --field "$deb" Depends)
for lib in libpq5 libnats3.4 libyaml-cpp0.7 libsimdjson; do
  assert_contains "$depends" "$lib" "Depends (computed by dpkg-shlibdeps)"
done
