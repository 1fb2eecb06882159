# shellcheck shell=bash
# Sourced by prepare-host.sh (the container image) and nfs-vm-image.sh (the VM image): a Debian
# root built by debootstrap gets its packages from where this machine gets its own. The host's
# apt sources decide: never a hard-coded mirror (and none is written into the repository).

# Sets host_apt_files (the host's source files) and host_apt_mirror (its first non-security
# Debian mirror). Returns 1, with the reason on stderr, when there is none.
host_apt_mirror() {
  local f
  host_apt_files=()
  [ -f /etc/apt/sources.list ] && grep -qE '^\s*deb\s' /etc/apt/sources.list && host_apt_files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && host_apt_files+=("$f")
  done
  if [ "${#host_apt_files[@]}" -eq 0 ]; then
    echo "no apt sources found in /etc/apt: cannot choose a mirror for debootstrap" >&2
    return 1
  fi
  host_apt_mirror=$(
    { grep -hE '^\s*URIs:' "${host_apt_files[@]}" 2>/dev/null | awk '{print $2}'
      grep -hE '^\s*deb\s' "${host_apt_files[@]}" 2>/dev/null | sed -E 's/\[[^]]*\]//' | awk '{print $2}' || true
    } | grep -v -- '-security' | head -n1 || true
  )
  if [ -z "$host_apt_mirror" ]; then
    echo "could not read a Debian mirror from ${host_apt_files[*]}" >&2
    return 1
  fi
}

# The host's apt sources and local CA certificates (TLS-inspecting proxies) inside ROOT.
# Needs host_apt_mirror to have run.
host_apt_into() {
  local root=$1 f
  rm -f "$root/etc/apt/sources.list"
  for f in "${host_apt_files[@]}"; do
    case "$f" in
      /etc/apt/sources.list) cp "$f" "$root/etc/apt/sources.list" ;;
      *) cp "$f" "$root/etc/apt/sources.list.d/" ;;
    esac
  done
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
}
