"""Who still runs old code: a Jupyter server started before its environment's packages were installed.

An upgrade (or a forced reinstall, or a rebuilt virtualenv) of JupyterLab or jupyter_server on a
hub leaves the running servers on the code they loaded when they started; they run the new code
only after the user restarts them. The evidence, from the node alone and never a user's file:
the server's command line names its environment (``<prefix>/bin/jupyterhub-singleuser`` or
``<prefix>/bin/python3``), the installed distribution's metadata directory
(``<prefix>/lib/python3.X/site-packages/<name>-<version>.dist-info``) gives the version and when
it was installed (its modification time), and ``/proc`` gives when the server started. A server
that started before the installation runs older code than the installed one.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["WATCHED", "installed_packages", "outdated", "server_prefix"]

# The packages whose code a single-user server runs (JupyterLab's UI and the server itself).
WATCHED = ("jupyterlab", "jupyter_server")
# btime and a process's start time have a resolution of a clock tick; installation times of a second.
TOLERANCE = 1.0
_DIST_INFO = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)\.dist-info$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def server_prefix(cmdline: Sequence[str]) -> str | None:
    """The environment prefix a Jupyter server runs from, from its command line, or None.

    ``["/opt/venv/bin/python3", "/opt/venv/bin/jupyterhub-singleuser"]`` -> ``"/opt/venv"``; the
    script is preferred to the interpreter; only absolute paths in a ``bin`` directory count.
    """
    for arg in list(cmdline[1:2]) + list(cmdline[:1]):
        if os.path.isabs(arg) and os.path.basename(os.path.dirname(arg)) == "bin":
            return os.path.dirname(os.path.dirname(arg))
    return None


def installed_packages(prefix: str, names: Iterable[str] = WATCHED) -> dict[str, dict[str, Any]]:
    """``{name: {"version": str, "installed_at": epoch seconds}}`` of the watched packages in ``prefix``.

    Looks in ``<prefix>/lib/python*/site-packages``; a package not installed there is left out.
    """
    wanted = {_normal(n): n for n in names}
    found: dict[str, dict[str, Any]] = {}
    pattern = os.path.join(glob.escape(prefix), "lib", "python*", "site-packages", "*.dist-info")
    for path in sorted(glob.glob(pattern)):
        match = _DIST_INFO.match(os.path.basename(path))
        if not match or _normal(match.group("name")) not in wanted:
            continue
        try:
            installed_at = max(os.stat(path).st_mtime, os.stat(os.path.join(path, "RECORD")).st_mtime)
        except FileNotFoundError:
            try:
                installed_at = os.stat(path).st_mtime
            except OSError:
                continue
        except OSError:
            continue
        found[wanted[_normal(match.group("name"))]] = {
            "version": match.group("version"),
            "installed_at": installed_at,
        }
    return found


def outdated(start_time: float, installed: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``["jupyterlab 4.6.7", ...]``: the packages installed after a server started at ``start_time``."""
    return [
        f"{name} {info['version']}"
        for name, info in sorted(installed.items())
        if float(info["installed_at"]) > start_time + TOLERANCE
    ]
