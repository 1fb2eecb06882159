# Copyright (c) multijhub developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Lookup plugin: the multijhub wheel of this collection, built once per source tree on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: wheel
version_added: "0.1.0"
author:
  - multijhub developers (@multijhub)
short_description: The multijhub wheel (core, front door, hub extensions), built on the controller
description:
  - Builds the one wheel of multijhub's Python code from this collection's own files (the root
    C(pyproject.toml), C(plugins/module_utils) as C(multijhub.core), C(src/multijhub)) with
    setuptools, in the controller's Python, from a checkout or from the collection installed by
    C(ansible-galaxy collection install) alike.
  - The wheel's version is the project's version with the sources' sha256 as local label
    (C(0.1.0+s1a2b3c4d5e6f)), so that a changed source is a new version and an unchanged one is
    the same wheel, byte for byte (fixed timestamps), found again in the cache without a build.
  - The roles C(redirector) and C(jupyterhub) install it with pip, pinned by that version and the
    wheel's sha256.
  - Needs setuptools 70.1 or newer in the controller's Python (the one running ansible-playbook);
    no network.
options:
  cache_dir:
    description:
      - Where built wheels are kept on the controller, one directory per source hash.
    type: path
    default: ~/.cache/multijhub/wheels
    env:
      - name: MULTIJHUB_WHEEL_CACHE
"""

EXAMPLES = r"""
- name: Install multijhub into a virtualenv
  vars:
    wheel: "{{ query('multijhub.cluster.wheel') | first }}"
  ansible.builtin.debug:
    msg: "{{ wheel.filename }} sha256 {{ wheel.sha256 }}"
"""

RETURN = r"""
_raw:
  description: One dictionary.
  type: list
  elements: dict
  contains:
    path:
      description: The wheel on the controller (absolute path).
      type: str
    filename:
      description: Its file name (pip checks it against the wheel's metadata).
      type: str
    version:
      description: The wheel's version, C(<project version>+s<12 hex digits of the sources' sha256>).
      type: str
    sha256:
      description: The wheel's sha256 (hex), what pip verifies before installing.
      type: str
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

# The collection's root: plugins/lookup/wheel.py -> ../../
ROOT = Path(__file__).resolve().parents[2]
# Everything that goes into the wheel (setuptools reads the mapping from pyproject.toml).
SOURCES = ("pyproject.toml", "LICENSE", "plugins/module_utils", "src/multijhub")
# Zip entries dated 1980-01-01: the same sources give the same bytes (wheel honours it).
SOURCE_DATE_EPOCH = "315532800"
# In a fresh interpreter: setuptools' PEP 517 hook, the one pip itself calls.
BUILD = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"


# Left out of the wheel and of its version label: editors' and patch tools' leftovers.
JUNK_SUFFIXES = ("~", ".swp", ".swo", ".orig", ".rej", ".pyc", ".pyo")


def source_files(root: Path) -> list[Path]:
    """The wheel's source files below ``root`` (relative paths, sorted; compiled files left out).

    Raises AnsibleError for a directory that cannot be read or a symbolic link in the
    sources: either would silently leave files out of the wheel.
    """
    files: list[Path] = []
    for name in SOURCES:
        top = root / name
        if top.is_file() and not top.is_symlink():
            files.append(Path(name))
            continue
        if not top.is_dir() or top.is_symlink():
            raise AnsibleError(f"multijhub.cluster.wheel: {top} is missing (an incomplete collection?)")

        def unreadable(error: OSError) -> None:
            raise AnsibleError(f"multijhub.cluster.wheel: cannot read {error.filename}: {error.strerror}")

        for dirpath, dirnames, filenames in os.walk(top, onerror=unreadable):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for entry in sorted(dirnames + filenames):
                path = Path(dirpath) / entry
                if path.is_symlink():
                    raise AnsibleError(
                        f"multijhub.cluster.wheel: {path} is a symbolic link; the sources may hold none"
                    )
            for entry in filenames:
                path = Path(dirpath) / entry
                if path.is_file() and not entry.endswith(JUNK_SUFFIXES):
                    files.append(path.relative_to(root))
    return sorted(files)


def source_hash(root: Path, files: list[Path]) -> str:
    """sha256 (hex) over the files' relative paths and contents."""
    digest = hashlib.sha256()
    for rel in files:
        data = (root / rel).read_bytes()
        digest.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def build(root: Path, files: list[Path], label: str, out: Path) -> Path:
    """Build the wheel from a copy of ``files`` (the tree stays untouched) into ``out``.

    Raises AnsibleError with setuptools' output when the build fails.
    """
    with tempfile.TemporaryDirectory(prefix="multijhub-wheel-") as tmp:
        work = Path(tmp)
        for rel in files:
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, work / rel)
        pyproject = work / "pyproject.toml"
        text, count = re.subn(
            r'^version = "([^"+]+)"', rf'version = "\1+{label}"', pyproject.read_text(), count=1, flags=re.M
        )
        if count != 1:
            raise AnsibleError(f"multijhub.cluster.wheel: no version line in {root / 'pyproject.toml'}")
        pyproject.write_text(text)
        dist = work / "dist"
        dist.mkdir()
        env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(
            [sys.executable, "-c", BUILD, str(dist)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise AnsibleError(
                "multijhub.cluster.wheel: building the wheel failed (it needs setuptools 70.1 or newer in "
                f"{sys.executable}: pip install 'setuptools>=70.1'):\n{proc.stderr[-3000:]}"
            )
        name = proc.stdout.strip().splitlines()[-1]
        out.mkdir(parents=True, exist_ok=True)
        final = out / name
        # Copied under a temporary name and renamed into place: a full disk or a crash never
        # leaves a partial wheel under the final name.
        part = out / f".{name}.{os.getpid()}.part"
        try:
            shutil.copyfile(dist / name, part)
            os.replace(part, final)
        finally:
            part.unlink(missing_ok=True)
        return final


def wheel_info(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {
        "path": str(path),
        "filename": path.name,
        "version": path.name.split("-")[1],
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def usable(path: Path) -> bool:
    """Whether ``path`` is a complete wheel of multijhub (a zip whose members all check out)."""
    try:
        with zipfile.ZipFile(path) as wheel:
            return wheel.testzip() is None and "multijhub/__init__.py" in wheel.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def find_or_build(root: Path, cache: Path) -> dict[str, str]:
    """The wheel for the sources below ``root``: from ``cache`` or built into it (under a lock).

    Only the wheel named for this label counts; a cached one that is not a complete wheel
    (a truncated copy, say) is built again. Raises AnsibleError when the cache cannot be
    written or the build fails.
    """
    files = source_files(root)
    label = "s" + source_hash(root, files)[:12]
    out = cache / label
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".lock", "w") as lock:  # forks evaluating the lookup at once build once
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = [p for p in sorted(out.glob(f"multijhub-*+{label}-*.whl")) if p.is_file() and usable(p)]
            path = found[0] if found else build(root, files, label, out)
            if not usable(path):
                raise AnsibleError(
                    f"multijhub.cluster.wheel: the wheel built at {path} is not a complete wheel"
                )
            return wheel_info(path)
    except OSError as exc:
        raise AnsibleError(
            f"multijhub.cluster.wheel: cannot use the wheel cache {cache} ({exc.strerror}: {exc.filename}); "
            "set MULTIJHUB_WHEEL_CACHE to a writable directory"
        ) from exc


class LookupModule(LookupBase):
    def run(
        self, terms: list[object], variables: dict[str, object] | None = None, **kwargs: object
    ) -> list[dict[str, str]]:
        self.set_options(var_options=variables, direct=kwargs)
        if terms:
            raise AnsibleError("multijhub.cluster.wheel takes no terms")
        cache = Path(os.path.expanduser(self.get_option("cache_dir")))
        return [find_or_build(ROOT, cache)]
