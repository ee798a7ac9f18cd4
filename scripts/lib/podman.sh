# shellcheck shell=bash
# podman settings this kind of host needs, for scripts/image.sh and the
# container tests. Source it, then call nn_podman_setup: it installs podman,
# runc, debootstrap, catatonit and podman-compose when missing (apt-get) and exports CONTAINERS_CONF
# pointing at a containers.conf of the project's own (runc: crun refuses the
# host's hybrid cgroups; cgroupfs: no systemd; no default ulimits: setrlimit is
# refused). The user's /etc/containers files are never touched.

nn_podman_setup() {
  local missing=() p sudo=""
  # catatonit: the pause process of `podman kube play` pods; the CNI plugins
  # and dnsname: a compose network whose containers find each other by name.
  for p in podman runc debootstrap catatonit podman-compose containernetworking-plugins \
    golang-github-containernetworking-plugin-dnsname iptables; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    ((EUID == 0)) || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  NN_PODMAN_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/nomnom-image
  mkdir -p "$NN_PODMAN_CACHE"
  cat >"$NN_PODMAN_CACHE/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  export CONTAINERS_CONF=$NN_PODMAN_CACHE/containers.conf
}

# nn_podman_base: prints a Debian bookworm base image name, debootstrapping
# localhost/bookworm-base when debian:bookworm cannot be pulled (no registry).
nn_podman_base() {
  local base=debian:bookworm rootfs
  if podman image exists "$base" || timeout 60 podman pull -q "$base" >/dev/null 2>&1; then
    echo "$base"
    return 0
  fi
  base=localhost/bookworm-base:latest
  if ! podman image exists "$base"; then
    echo "debian:bookworm cannot be pulled: debootstrapping $base" >&2
    rootfs=$(mktemp -d "$NN_PODMAN_CACHE/rootfs.XXXXXX")
    if ! debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2; then
      rm -rf "$rootfs"
      return 1
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$base" >/dev/null
    rm -rf "$rootfs"
  fi
  echo "$base"
}
