#!/usr/bin/env bash
# Prepare this machine to run multijhub's local test cluster (podman containers that boot
# systemd), build the Debian 12 base image when it does not exist yet, and prove that the
# machine can run the cluster (the smoke test at the end).
#
#   molecule/host/prepare-host.sh            # install what is missing, build the image, smoke test
#   molecule/host/prepare-host.sh --check    # install and build nothing: check the programs, smoke test
#   MULTIJHUB_IMAGE=registry/x:tag ...       # use a prebuilt systemd image instead (pulled or present)
#   MULTIJHUB_REBUILD_IMAGE=1 ...            # build the image again
#
# Runs as root on Debian or Ubuntu. Podman is configured through CONTAINERS_CONF, pointing at
# molecule/host/containers.conf: /etc/containers is never edited.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=host-apt.sh
. "$here/host-apt.sh"
image=${MULTIJHUB_IMAGE:-localhost/multijhub-debian12:latest}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

die() { echo "prepare-host: $*" >&2; exit 1; }
say() { echo "prepare-host: $*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (rootful podman boots systemd containers); try: sudo $0"
[ -r /etc/os-release ] || die "cannot read /etc/os-release: this script supports Debian and Ubuntu hosts only"
# shellcheck disable=SC1091
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "*|*" ubuntu "*) ;;
  *) die "unsupported host '${PRETTY_NAME:-unknown}': needs Debian or Ubuntu (apt, debootstrap); install podman and runc yourself and set MULTIJHUB_IMAGE to a systemd image" ;;
esac

# Every program that the set-up scripts, the Makefile and the test scenarios call, and nothing
# else: "program|Debian package|what needs it". A program is looked up on PATH; podman's helpers
# where podman looks for them.
requirements=(
  "podman|podman|runs the test cluster's containers"
  "runc|runc|the container runtime that containers.conf selects; crun fails on cgroup v1 hybrid hosts"
  "@netavark|netavark|podman's network stack: the cluster's own network"
  "@aardvark-dns|aardvark-dns|name resolution between the cluster's containers"
  "iptables|iptables|netavark sets up every podman network's NAT and firewall rules with it"
  "debootstrap|debootstrap|builds the Debian 12 image of the cluster's hosts"
  "ssh|openssh-client|Ansible reaches the cluster's hosts over ssh"
  "ssh-keygen|openssh-client|the test key Ansible uses (make ssh-key)"
  "setfacl|acl|the unit tests of the ACL grants"
  "git|git|ansible-test sanity (tests/sanity.sh)"
  "chromium|chromium|the browser tests, driven by Playwright"
  "@initdb|postgresql|the tests of the front door's PostgreSQL assignment store"
)

# Prints the path of a requirement's program, or nothing when it is missing.
locate() {
  case "$1" in
    @initdb) compgen -G '/usr/lib/postgresql/*/bin/initdb' | head -n1 ;;
    @*) for d in /usr/libexec/podman /usr/lib/podman; do
          [ -x "$d/${1#@}" ] && { echo "$d/${1#@}"; return 0; }
        done ;;
    *) command -v "$1" || true ;;
  esac
}

# The Debian packages of the requirements whose program is missing, one per line.
missing_packages() {
  local entry prog pkg
  for entry in "${requirements[@]}"; do
    IFS='|' read -r prog pkg _ <<<"$entry"
    [ -n "$(locate "$prog")" ] || echo "$pkg"
  done | sort -u
}

# Fails, naming each missing program, the package that has it and what needs it.
check_programs() {
  local entry prog pkg why bad=0
  for entry in "${requirements[@]}"; do
    IFS='|' read -r prog pkg why <<<"$entry"
    if [ -z "$(locate "$prog")" ]; then
      echo "prepare-host: missing program '${prog#@}' ($why); install it with: apt-get install $pkg" >&2
      bad=1
    fi
  done
  [ "$bad" -eq 0 ] || die "the machine lacks what the test cluster needs (run molecule/host/prepare-host.sh without --check to install it)"
}

# Proves what the cluster needs, with two throwaway containers: systemd as PID 1, a private cgroup
# namespace in which systemd enforces MemoryMax=, and a container on a user-defined podman network
# reaching another by name. Stops with the missing piece and how to get it.
smoke_net=multijhub-smoke
smoke_a=multijhub-smoke-a
smoke_b=multijhub-smoke-b
smoke_cleanup() {
  podman rm -f -t 0 "$smoke_a" "$smoke_b" >/dev/null 2>&1 || true
  podman network rm -f "$smoke_net" >/dev/null 2>&1 || true
}
smoke_test() {
  local out state
  say "smoke test: two containers of $image on a network of their own"
  smoke_cleanup
  trap smoke_cleanup EXIT
  out=$(podman network create "$smoke_net" 2>&1) \
    || die "smoke test: podman cannot create a network: $out"
  for c in "$smoke_a" "$smoke_b"; do
    if ! out=$(podman run -d --name "$c" --hostname "$c" --network "$smoke_net" --systemd=always \
        --privileged --cgroupns=private "$image" /sbin/init 2>&1); then
      case "$out" in
        *netavark*|*iptables*|*nftables*)
          die "smoke test: a container on a podman network does not start: $out
  netavark (podman's network stack) needs iptables: apt-get install iptables" ;;
        *)
          die "smoke test: a container does not start: $out
  check that podman is rootful and uses runc (CONTAINERS_CONF=$CONTAINERS_CONF)" ;;
      esac
    fi
  done
  for c in "$smoke_a" "$smoke_b"; do
    # Right after the start systemd may not listen yet: ask again until it gives a state.
    state=
    for _ in $(seq 60); do
      state=$(podman exec "$c" systemctl is-system-running --wait 2>/dev/null || true)
      [ -n "$state" ] && break
      sleep 1
    done
    case "$state" in
      running|degraded) ;;
      *) die "smoke test: systemd did not boot as PID 1 in container $c (state '${state:-none}'):
  the image must have /sbin/init (systemd), and podman must run it with --systemd=always" ;;
    esac
  done
  # A private cgroup namespace is another namespace than this machine's.
  out=$(podman exec "$smoke_a" readlink /proc/1/ns/cgroup 2>&1)
  if [ "$out" = "$(readlink /proc/self/ns/cgroup)" ]; then
    die "smoke test: the container shares this machine's cgroup namespace ($out):
  systemd in the hubs would ignore MemoryMax=; podman needs --cgroupns=private (podman >= 3)"
  fi
  out=$(podman exec "$smoke_a" systemd-run --wait -p MemoryMax=50M -p MemorySwapMax=0 \
      python3 -c "b = b'x' * (300 << 20)" 2>&1 || true)
  case "$out" in
    *"Finished with result: success"*)
      die "smoke test: a process allocating 300 MiB under MemoryMax=50M was not stopped:
  systemd in a container does not enforce memory limits on this machine (cgroup memory controller?)" ;;
    *"Finished with result:"*) ;;
    *) die "smoke test: systemd-run cannot start a transient unit in the container: $out
  SystemdSpawner needs it: the image needs dbus (apt-get install dbus in the image)" ;;
  esac
  out=$(podman exec "$smoke_a" python3 -c \
      "import socket; socket.create_connection(('$smoke_b', 22), timeout=10).close()" 2>&1) \
    || die "smoke test: container $smoke_a cannot reach $smoke_b by name on port 22: $out
  podman's network needs netavark and aardvark-dns (apt-get install netavark aardvark-dns iptables)"
  smoke_cleanup
  trap - EXIT
  say "smoke test passed: systemd boots, memory limits hold, containers reach each other by name"
}

if [ "$check_only" -eq 1 ]; then
  check_programs
  podman image exists "$image" || die "image $image is missing: run molecule/host/prepare-host.sh without --check"
  smoke_test
  exit 0
fi

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" ca-certificates >/dev/null
fi
check_programs

build_image() {
  host_apt_mirror || die "cannot choose a mirror for debootstrap"

  root=$(mktemp -d /var/tmp/multijhub-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  say "debootstrap bookworm (from the host's apt mirror) into $root"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,python3,openssh-server,sudo,acl,iproute2,procps,ca-certificates \
    bookworm "$root" "$host_apt_mirror" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
  rm -f "$root.log"

  # Same apt sources as the host; trust the host's local CA certificates (TLS-inspecting proxies).
  host_apt_into "$root"

  # Packages every test host needs in any case, installed once into the image so that each
  # cluster start does not download them again (the roles still declare them).
  chroot "$root" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3-venv python3-apt nftables nfs-ganesha nfs-ganesha-vfs libnfs-utils \
      node-configurable-http-proxy locales >/dev/null && apt-get clean' \
    || die "installing the base packages in the image failed"

  # Services come up only where a role enables them (the packages enable theirs on install).
  chroot "$root" systemctl disable nfs-ganesha.service rpcbind.service rpcbind.socket nftables.service >/dev/null 2>&1 || true
  # The test kernel has no sunrpc/nfs: its pipe file system cannot mount.
  chroot "$root" systemctl mask run-rpc_pipefs.mount >/dev/null 2>&1 || true

  # A container boots systemd: no getty on consoles, no machine-id baked in, ssh host keys made at boot.
  chroot "$root" systemctl mask getty@tty1.service serial-getty@console.service console-getty.service >/dev/null 2>&1 || true
  rm -f "$root"/etc/ssh/ssh_host_*
  cat >"$root/etc/systemd/system/ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate ssh host keys when missing
Before=ssh.service
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
EOF
  chroot "$root" systemctl enable ssh-hostkeys.service ssh.service >/dev/null 2>&1
  : >"$root/etc/machine-id"

  say "importing the root file system as $image"
  tar -C "$root" -c . | podman import --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
  rm -rf "$root"
  trap - EXIT
  say "image $image is ready"
}

if [ "${MULTIJHUB_REBUILD_IMAGE:-0}" != 1 ] && podman image exists "$image"; then
  say "image $image is present"
elif [ "$image" != localhost/multijhub-debian12:latest ]; then
  say "pulling $image"
  podman pull "$image"
else
  build_image
fi
smoke_test
