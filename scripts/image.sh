#!/usr/bin/env bash
# Builds the nomnom image (Containerfile) with podman, and with --run smoke
# tests it: `nomnom load` and `nomnomd` from the image against the PostgreSQL
# and nats-server named by DATABASE_URL / NATS_URL (host networking).
# Usage: scripts/image.sh [--run] [--tag NAME]   (default tag localhost/nomnom:latest)
# Installs podman, runc, debootstrap when missing (apt-get). The containers.conf
# this host needs (runc, cgroupfs, no default ulimits) is written under
# $XDG_CACHE_HOME/nomnom-image and passed through CONTAINERS_CONF: the user's
# /etc files are never touched. When debian:bookworm cannot be pulled, a base
# is made with debootstrap --variant=minbase and cached as localhost/bookworm-base.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tag=localhost/nomnom:latest
run=0
while (($#)); do
  case "$1" in
    --run) run=1 ;;
    --tag) tag=$2; shift ;;
    *) echo "usage: $0 [--run] [--tag NAME]" >&2; exit 2 ;;
  esac
  shift
done

missing=()
for p in podman runc debootstrap; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; ((EUID == 0)) || sudo=sudo
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/nomnom-image
mkdir -p "$cache"
cat >"$cache/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$cache/containers.conf

base=debian:bookworm
if ! podman image exists "$base" && ! timeout 60 podman pull -q "$base" >/dev/null 2>&1; then
  base=localhost/bookworm-base:latest
  if ! podman image exists "$base"; then
    echo "debian:bookworm cannot be pulled: debootstrapping $base" >&2
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$base" >/dev/null
  fi
fi

start=$(date +%s)
nice -n 19 podman build --format docker --jobs 1 --build-arg "BASE=$base" \
  -f "$root/Containerfile" -t "$tag" "$root"
echo "image $tag built in $(( $(date +%s) - start )) s," \
  "size $(podman image inspect "$tag" --format '{{.Size}}') bytes"

((run)) || exit 0
: "${DATABASE_URL:?set DATABASE_URL (source /tmp/nn-services.env)}"
: "${NATS_URL:?set NATS_URL}"
exec bash "$root/tests/e2e/container_image.sh" "$tag"
