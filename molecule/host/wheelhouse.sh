#!/usr/bin/env bash
# Download, once per machine, the wheels the hubs and the front door install, into a directory
# that the test cluster mounts read-only (multijhub_pip_wheelhouse): each container then installs
# offline instead of downloading the same packages again.
#   molecule/host/wheelhouse.sh DIR [PYTHON_VERSION]   # e.g. 3.11.2, the hosts' Python (Debian 12)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dest=${1:?usage: wheelhouse.sh DIR [PYTHON_VERSION]}
target=${2:-}
python=${PYTHON:-$repo/.venv/bin/python}
mkdir -p "$dest"

reqs=$(mktemp)
trap 'rm -f "$reqs"' EXIT
# The hub's pins come from the jupyterhub role's defaults, the front door's from its requirements file.
# The demo's notebook packages come from the demo scenario's settings (molecule/demo/molecule.yml).
"$python" - "$repo/roles/jupyterhub/defaults/main.yml" "$repo/molecule/demo/molecule.yml" >"$reqs" <<'PY'
import sys

import yaml

d = yaml.safe_load(open(sys.argv[1]))
demo = yaml.safe_load(open(sys.argv[2]))
print("\n".join(demo["provisioner"]["inventory"]["group_vars"]["hubs"]["jupyterhub_extra_pip_packages"]))
for name, key in [
    ("jupyterhub", "jupyterhub_version"),
    ("jupyterlab", "jupyterhub_jupyterlab_version"),
    ("jupyterhub-systemdspawner", "jupyterhub_systemdspawner_version"),
    ("jupyterhub-idle-culler", "jupyterhub_idle_culler_version"),
    ("itsdangerous", "jupyterhub_itsdangerous_version"),
]:
    print(f"{name}=={d[key]}")
PY
stamp="$dest/.stamp"
want=$( (cat "$reqs" "$repo/roles/redirector/files/requirements.txt"; echo "$target") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "wheelhouse: $dest is up to date"
  exit 0
fi
echo "wheelhouse: downloading the hubs' and the front door's packages into $dest"
# Wheels for the hosts' Python, which may be older than this machine's.
opts=()
[ -n "$target" ] && opts=(--python-version "$target" --only-binary=:all:)
"$python" -m pip download -q "${opts[@]}" -d "$dest" -r "$reqs"
"$python" -m pip download -q "${opts[@]}" -d "$dest" -r "$repo/roles/redirector/files/requirements.txt"
echo "$want" >"$stamp"
