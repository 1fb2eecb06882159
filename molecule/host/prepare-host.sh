#!/usr/bin/env bash
# Prepare this machine to run multijhub's local test cluster (podman containers that boot
# systemd), and build the Debian 12 base image when it does not exist yet.
#
#   molecule/host/prepare-host.sh            # install podman/runc/debootstrap if missing, build the image
#   MULTIJHUB_IMAGE=registry/x:tag ...       # use a prebuilt systemd image instead (pulled or present)
#   MULTIJHUB_REBUILD_IMAGE=1 ...            # build the image again
#
# Runs as root on Debian or Ubuntu. Podman is configured through CONTAINERS_CONF, pointing at
# molecule/host/containers.conf: /etc/containers is never edited.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${MULTIJHUB_IMAGE:-localhost/multijhub-debian12:latest}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

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

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v setfacl >/dev/null || missing+=(acl)
[ -e /usr/lib/podman/netavark ] || [ -e /usr/libexec/podman/netavark ] || missing+=(netavark aardvark-dns)
# For the tests that run on this machine: a real browser (Debian's, driven by Playwright) and a
# real PostgreSQL server (the front door's shared assignment store).
command -v chromium >/dev/null || missing+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" uidmap slirp4netns fuse-overlayfs ca-certificates >/dev/null
fi

if [ "${MULTIJHUB_REBUILD_IMAGE:-0}" != 1 ] && podman image exists "$image"; then
  say "image $image is present"
  exit 0
fi
if [ "$image" != localhost/multijhub-debian12:latest ]; then
  say "pulling $image"
  podman pull "$image"
  exit 0
fi

# The host's own apt sources decide where packages come from: never a hard-coded mirror.
sources=()
[ -f /etc/apt/sources.list ] && grep -qE '^\s*deb\s' /etc/apt/sources.list && sources+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] && sources+=("$f")
done
[ "${#sources[@]}" -gt 0 ] || die "no apt sources found in /etc/apt: cannot choose a mirror for debootstrap"
mirror=$(
  { grep -hE '^\s*URIs:' "${sources[@]}" 2>/dev/null | awk '{print $2}'
    grep -hE '^\s*deb\s' "${sources[@]}" 2>/dev/null | sed -E 's/\[[^]]*\]//' | awk '{print $2}' || true
  } | grep -v -- '-security' | head -n1 || true
)
[ -n "$mirror" ] || die "could not read a Debian mirror from ${sources[*]}"

root=$(mktemp -d /var/tmp/multijhub-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
say "debootstrap bookworm (from the host's apt mirror) into $root"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,openssh-server,sudo,acl,iproute2,procps,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
rm -f "$root.log"

# Same apt sources as the host; trust the host's local CA certificates (TLS-inspecting proxies).
rm -f "$root/etc/apt/sources.list"
for f in "${sources[@]}"; do
  case "$f" in
    /etc/apt/sources.list) cp "$f" "$root/etc/apt/sources.list" ;;
    *) cp "$f" "$root/etc/apt/sources.list.d/" ;;
  esac
done
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi

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
say "image $image is ready"
