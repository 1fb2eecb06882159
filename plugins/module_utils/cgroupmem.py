"""Each Jupyter server's memory as the kernel accounts it: its systemd unit's cgroup.

SystemdSpawner runs a user's server as the unit ``jupyter-<user>-singleuser.service``; systemd
gives the unit its own cgroup, found under the cgroup root at ``<slice>/<unit>`` (any slice,
nested at most twice: ``system.slice/<unit>`` by default). What is read there:

- cgroup v2 (the unified hierarchy, ``memory.current`` present): ``memory.current`` (bytes in
  use now), ``memory.peak`` (the largest value since the cgroup was made; kernel 5.19+, else
  the current value stands in) and ``oom_kill`` of ``memory.events`` (processes the kernel
  killed because the unit reached its ``MemoryMax``);
- cgroup v1 (``<root>/memory/...``): ``memory.usage_in_bytes``, ``memory.max_usage_in_bytes``
  and ``oom_kill`` of ``memory.oom_control`` (kernel 4.13+).

``session`` is the cgroup directory's inode number: a new server (a new cgroup) gets a new one,
so the front door can tell one session's peak from the next. A unit that stopped has no cgroup
left: what it used is only known from earlier reports.

``node_bound`` reads the node's own limit: the root of the cgroup hierarchy as the node sees it.
On a host that root has no limit; in a container with its own cgroup namespace (podman's
``--cgroupns=private``, LXC) it is the container's cgroup, whose ``memory.max`` /
``memory.limit_in_bytes`` bounds what the node's servers can get, while ``/proc/meminfo`` still
shows the whole host's memory.
"""

from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "UNIT_PREFIX",
    "UNIT_SUFFIX",
    "NodeBound",
    "UnitMemory",
    "node_bound",
    "read_unit",
    "scan_units",
    "unit_name",
]

UNIT_PREFIX = "jupyter-"
UNIT_SUFFIX = "-singleuser.service"
_SLICE_PATTERNS = ("*.slice/{unit}", "*.slice/*.slice/{unit}")
_UNLIMITED = 2**62  # cgroup v1 writes "no limit" as 2**63 - 1 rounded down to a page


@dataclass(frozen=True)
class UnitMemory:
    """One unit's memory: bytes now and at its peak, OOM kills, and its cgroup's identity."""

    user: str
    current: int  # bytes
    peak: int  # bytes, >= current
    oom_kills: int  # processes killed by the kernel for the unit's memory limit
    session: str  # the cgroup directory's inode number
    cgroup: int  # 1 or 2

    def to_dict(self) -> dict[str, Any]:
        """The JSON form in the probe's answer."""
        return asdict(self)


def unit_name(user: str) -> str:
    """SystemdSpawner's default unit name for ``user`` (``jupyter-<user>-singleuser.service``)."""
    return f"{UNIT_PREFIX}{user}{UNIT_SUFFIX}"


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_key(path: str, key: str) -> int:
    """The value of ``key`` in a flat keyed file (``memory.events``, ``memory.oom_control``); 0 if absent."""
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                name, _sep, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def read_unit(path: str, user: str) -> UnitMemory | None:
    """The memory of the unit whose cgroup directory is ``path``; None when it is gone or unreadable."""
    try:
        session = str(os.stat(path).st_ino)
    except OSError:
        return None
    current = _read_int(os.path.join(path, "memory.current"))
    if current is not None:
        peak = _read_int(os.path.join(path, "memory.peak"))
        oom = _read_key(os.path.join(path, "memory.events"), "oom_kill")
        version = 2
    else:
        current = _read_int(os.path.join(path, "memory.usage_in_bytes"))
        if current is None:
            return None
        peak = _read_int(os.path.join(path, "memory.max_usage_in_bytes"))
        oom = _read_key(os.path.join(path, "memory.oom_control"), "oom_kill")
        version = 1
    return UnitMemory(user, current, max(current, peak or 0), oom, session, version)


def _roots(cgroup_root: str) -> list[str]:
    """Where memory cgroups live: the unified root (v2) or the memory controller's (v1)."""
    if os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")):
        return [cgroup_root]
    v1 = os.path.join(cgroup_root, "memory")
    return [v1] if os.path.isdir(v1) else [cgroup_root]


def scan_units(cgroup_root: str = "/sys/fs/cgroup") -> list[UnitMemory]:
    """Every running ``jupyter-*-singleuser.service`` unit's memory on this node, by user name."""
    found: dict[str, UnitMemory] = {}
    for root in _roots(cgroup_root):
        for pattern in _SLICE_PATTERNS:
            wildcard = pattern.format(unit=f"{UNIT_PREFIX}*{UNIT_SUFFIX}")
            for path in sorted(glob.glob(os.path.join(root, wildcard))):
                name = os.path.basename(path)
                user = name[len(UNIT_PREFIX) : -len(UNIT_SUFFIX)]
                if not user or user in found:
                    continue
                unit = read_unit(path, user)
                if unit is not None:
                    found[user] = unit
    return [found[u] for u in sorted(found)]


@dataclass(frozen=True)
class NodeBound:
    """The node's own cgroup limit and what it counts as used there (bytes)."""

    limit: int
    used: int  # usage minus inactive file cache (the kernel reclaims that first): the working set

    @property
    def available(self) -> int:
        """Bytes left under the limit (never negative)."""
        return max(0, self.limit - self.used)


def node_bound(cgroup_root: str = "/sys/fs/cgroup") -> NodeBound | None:
    """The memory limit of the root of this node's cgroup hierarchy; None when it has none.

    cgroup v2: ``memory.max`` ("max" or absent: no limit), ``memory.current`` and
    ``inactive_file`` of ``memory.stat`` at ``cgroup_root``; v1: ``memory.limit_in_bytes``
    (2**63 - 1 rounded to a page: no limit), ``memory.usage_in_bytes`` and ``total_inactive_file``
    of ``memory.stat`` under ``<cgroup_root>/memory``. Unreadable files mean no known limit.
    """
    if os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")):
        limit = _read_int(os.path.join(cgroup_root, "memory.max"))  # "max" does not parse: None
        usage = _read_int(os.path.join(cgroup_root, "memory.current"))
        inactive = _read_key(os.path.join(cgroup_root, "memory.stat"), "inactive_file")
    else:
        root = os.path.join(cgroup_root, "memory")
        limit = _read_int(os.path.join(root, "memory.limit_in_bytes"))
        usage = _read_int(os.path.join(root, "memory.usage_in_bytes"))
        inactive = _read_key(os.path.join(root, "memory.stat"), "total_inactive_file")
    if limit is None or usage is None or limit >= _UNLIMITED:
        return None
    return NodeBound(limit, max(0, usage - inactive))
