#!/usr/bin/env bash
# Run ansible-test sanity on the collection's plugins (module, lookup, module_utils).
# ansible-test needs the collection at .../ansible_collections/multijhub/cluster and resolves the
# real path of the working directory, so the checkout's symlink is not enough: the plugins, meta
# and galaxy.yml are copied into a temporary ansible_collections tree (a git repo, which
# ansible-test uses to list files), and sanity runs there with --local (no containers).
# Usage: tests/sanity.sh [extra ansible-test args]   (TESTS="--test compile ..." to choose)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd -P)"
venv="${VENV:-$root/.venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/multijhub/cluster"
mkdir -p "$dest"
cp -a "$root/galaxy.yml" "$dest/"
[ -d "$root/meta" ] && cp -a "$root/meta" "$dest/"
mkdir -p "$dest/plugins"
for d in modules lookup module_utils callback filter; do
  [ -d "$root/plugins/$d" ] && cp -a "$root/plugins/$d" "$dest/plugins/"
done
# The collection is Apache-2.0: the GPLv3 header check is ignored (tests/sanity/ignore-*.txt).
[ -d "$root/tests/sanity" ] && mkdir -p "$dest/tests" && cp -a "$root/tests/sanity" "$dest/tests/"
find "$dest" -name __pycache__ -prune -exec rm -rf {} +
(cd "$dest" && git init -q && git add -A && git -c user.name=sanity -c user.email=sanity@localhost commit -qm sanity)
# Offline and without docker these work; see the report for the others.
TESTS="${TESTS:---test compile --test import --test validate-modules --test pylint --test yamllint --test action-plugin-docs --test ansible-doc --test empty-init --test line-endings --test no-assert --test no-get-exception --test no-illegal-filenames --test no-smart-quotes --test pep8 --test runtime-metadata --test shebang --test symlinks --test use-compat-six --test replace-urlopen --test use-argspec-type-path}"
# ansible-test bootstraps pip in each sanity venv with a get-pip script it downloads from a host
# outside the package registries, and runs pip with a filtered environment (no PIP_* variables).
# Offline, stand in for get-pip with ensurepip + pip, giving each venv this machine's pip settings
# (index, find-links, CA bundle) as its own pip.conf.
pip_version="$("$venv/bin/python" -c 'from ansible_test._internal.python_requirements import PIP_VERSION as v; print(v)' 2>/dev/null || echo 24.2)"
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
pip_conf="$("$venv/bin/pip" config list 2>/dev/null | sed -nE "s/^(global|:env:)\.([a-z-]+)='(.*)'$/\2 = \3/p" | sort -u)"
mkdir -p "$(dirname "$cache")"
cat > "$cache" <<PY
"""Offline stand-in for get-pip.py (written by multijhub tests/sanity.sh): ensurepip, then pip."""
import ensurepip
import os
import subprocess
import sys

with open(os.path.join(sys.prefix, "pip.conf"), "w") as conf:
    conf.write("""[global]
${pip_conf}
""")
ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
env = dict(os.environ, PIP_CONFIG_FILE=os.path.join(sys.prefix, "pip.conf"))
subprocess.check_call([sys.executable, "-m", "pip", "install", *args], env=env)
PY
cd "$dest"
export PATH="$venv/bin:$PATH"
# shellcheck disable=SC2086
"$venv/bin/ansible-test" sanity --python 3.11 --local --color no $TESTS "$@" plugins/
