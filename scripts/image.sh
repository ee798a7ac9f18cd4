#!/usr/bin/env bash
# Builds the nomnom image (Containerfile) with podman, and with --run tests it
# (tests/e2e/container_image.sh: `nomnom load`, nomnomd and `nomnom worker`
# from the image against a throwaway PostgreSQL and nats-server).
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

# shellcheck source=lib/podman.sh source-path=SCRIPTDIR
source "$root/scripts/lib/podman.sh"
nn_podman_setup
base=$(nn_podman_base)

start=$(date +%s)
nice -n 19 podman build --format docker --jobs 1 --build-arg "BASE=$base" \
  -f "$root/Containerfile" -t "$tag" "$root"
echo "image $tag built in $(( $(date +%s) - start )) s," \
  "size $(podman image inspect "$tag" --format '{{.Size}}') bytes"

((run)) || exit 0
exec bash "$root/tests/e2e/container_image.sh" "$tag"
