#!/usr/bin/env bash
# Build, once per machine, the Debian 12 disk image of the NFS scenario's virtual machines
# (molecule/nfs): one debootstrap root with the cloud kernel (nfsd, NFSv4.2, virtio), booted by
# qemu under TCG (this machine's /dev/kvm does not boot a stock kernel) from qcow2 overlays.
#
#   molecule/host/nfs-vm-image.sh          # install qemu/debootstrap if missing, build when needed
#   MULTIJHUB_REBUILD_IMAGE=1 ...          # build again
#   MULTIJHUB_VM_CACHE=/dir ...            # where the image lives (default /var/cache/multijhub/nfs-vm)
#
# The image is rebuilt when this script (its recipe) changes: the cache keeps the recipe's hash.
# It contains the packages the roles install (nfs-kernel-server, nfs-common, acl, python3-venv ...)
# so that a converge installs nothing, a minimal jupyter_server virtualenv (/opt/jupyter-test) for
# the tests, every VM's network set-up (systemd-networkd files matched by MAC, see
# molecule/nfs/vms.yml) and the root key of the scenario (ssh/id_ed25519 next to the image).
# Services stay as the packages leave them, except nfs-server (enabled where the role says so),
# the apt timers and systemd-networkd-wait-online. /etc/nfs.conf is the distribution's.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=host-apt.sh
. "$here/host-apt.sh"
cache=${MULTIJHUB_VM_CACHE:-/var/cache/multijhub/nfs-vm}
recipe=$(cat "$0" | sha256sum | cut -c1-16)

die() { echo "nfs-vm-image: $*" >&2; exit 1; }
say() { echo "nfs-vm-image: $*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot); try: sudo $0"
# shellcheck disable=SC1091
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "*|*" ubuntu "*) ;;
  *) die "unsupported host '${PRETTY_NAME:-unknown}': needs Debian or Ubuntu (apt, debootstrap, qemu)" ;;
esac

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$cache/ssh"
chmod 0700 "$cache" "$cache/ssh"
[ -f "$cache/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C multijhub-nfs-vm-tests -f "$cache/ssh/id_ed25519"

if [ "${MULTIJHUB_REBUILD_IMAGE:-0}" != 1 ] && [ -f "$cache/base.raw" ] && [ -f "$cache/vmlinuz" ] \
   && [ -f "$cache/initrd.img" ] && [ "$(cat "$cache/recipe" 2>/dev/null)" = "$recipe" ]; then
  say "image $cache/base.raw is present (recipe $recipe)"
  exit 0
fi
start=$(date +%s)

host_apt_mirror || die "cannot choose a mirror for debootstrap"

root=$(mktemp -d /var/tmp/multijhub-vmroot.XXXXXX)
trap 'rm -rf "$root" "$root.log" "$cache/base.raw.new"' EXIT
say "debootstrap bookworm with the cloud kernel (from the host's apt mirror) into $root"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,udev,kmod,dbus,linux-image-cloud-amd64,initramfs-tools,openssh-server,nfs-kernel-server,nfs-common,nfs4-acl-tools,acl,python3,python3-venv,python3-packaging,python3-apt,iproute2,procps,sudo,ca-certificates \
  bookworm "$root" "$host_apt_mirror" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; die "debootstrap failed"; }

# Same apt sources as the host (a role may still install something); the host's local CA
# certificates (TLS-inspecting proxies) for pip below.
host_apt_into "$root"

# A minimal Jupyter server for the tests (a user's server writing its runtime file on a client).
say "installing jupyter_server into /opt/jupyter-test"
chroot "$root" python3 -m venv /opt/jupyter-test
chroot "$root" env PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
  /opt/jupyter-test/bin/pip install -q 'jupyter_server==2.21.1' >"$root.log" 2>&1 \
  || { tail -n 30 "$root.log" >&2; die "pip install jupyter_server failed"; }
chroot "$root" apt-get clean

# Root logs in with the scenario's key only.
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$cache/ssh/id_ed25519.pub" "$root/root/.ssh/authorized_keys"

# Networks: a NAT interface (ssh from this machine only, through qemu's hostfwd) and the
# private VM-to-VM links; every VM's interfaces are matched by their MAC (molecule/nfs/vms.yml).
# The private link carries the default route: the roles read a host's address from
# ansible_default_ipv4, as on a real site.
net="$root/etc/systemd/network"
while read -r mac addr gw; do
  {
    printf '[Match]\nMACAddress=%s\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$mac" "$addr"
    [ "$gw" = - ] || printf 'Gateway=%s\n' "$gw"
  } >"$net/50-${mac//:/}.network"
done <<'EOF'
52:54:00:77:00:0a 10.0.2.15/24 -
52:54:00:77:01:0a 10.77.1.1/24 -
52:54:00:77:02:0a 10.77.2.1/24 -
52:54:00:77:00:0b 10.0.2.15/24 -
52:54:00:77:01:0b 10.77.1.2/24 10.77.1.1
52:54:00:77:00:0c 10.0.2.15/24 -
52:54:00:77:02:0c 10.77.2.2/24 10.77.2.1
EOF
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
chroot "$root" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
# The nfs_server role enables the server on the home host; the clients do not run one.
chroot "$root" systemctl disable nfs-server.service >/dev/null 2>&1 || true
printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$root/etc/fstab"
# A valid machine-id (not first boot: no presets re-enabling units); each VM gets its own on
# the kernel command line (systemd.machine_id=).
echo 77777777777777777777777777777777 >"$root/etc/machine-id"
rm -f "$root/etc/hostname"

cp "$root"/boot/vmlinuz-* "$cache/vmlinuz.new"
cp "$root"/boot/initrd.img-* "$cache/initrd.img.new"
say "making the ext4 image"
rm -f "$cache/base.raw.new"
mkfs.ext4 -q -F -L multijhub -d "$root" "$cache/base.raw.new" 3G
mv -f "$cache/base.raw.new" "$cache/base.raw"
mv -f "$cache/vmlinuz.new" "$cache/vmlinuz"
mv -f "$cache/initrd.img.new" "$cache/initrd.img"
echo "$recipe" >"$cache/recipe"
say "image $cache/base.raw is ready (recipe $recipe, $(($(date +%s) - start)) s)"
