"""One node's report on a user (or on every Jupyter server of the node)."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import time
from dataclasses import asdict
from typing import Any

from .cgroupmem import node_bound, scan_units
from .procs import Evidence, check_file, is_singleuser_server, list_jupyter_processes, redact_cmdline
from .runtime import (
    RuntimeDirError,
    RuntimeFile,
    list_runtime_files,
    list_runtime_files_as,
    runtime_dir_for,
)
from .usernames import lookup_user, validate_username
from .versions import installed_packages, outdated, server_prefix

__all__ = [
    "evidence_to_dict",
    "meminfo",
    "missing_user_report",
    "node_memory",
    "node_report",
    "node_servers_report",
]


def meminfo(proc_root: str = "/proc") -> tuple[int, int]:
    """(MemAvailable, MemTotal) in bytes from ``<proc_root>/meminfo``."""
    values: dict[str, int] = {}
    with open(os.path.join(proc_root, "meminfo"), encoding="ascii", errors="replace") as handle:
        for line in handle:
            key, _sep, rest = line.partition(":")
            parts = rest.split()
            if key in ("MemAvailable", "MemTotal") and parts:
                factor = 1024 if parts[1:2] == ["kB"] else 1
                values[key] = int(parts[0]) * factor
    return values.get("MemAvailable", 0), values.get("MemTotal", 0)


def node_memory(proc_root: str = "/proc", cgroup_root: str = "/sys/fs/cgroup") -> tuple[int, int]:
    """(available, total) bytes of this node: ``meminfo``, bounded by its own cgroup's limit.

    A node that is a container with its own cgroup namespace sees the host's /proc/meminfo; its
    real memory is its cgroup's limit (``cgroupmem.node_bound``): total is the smaller of MemTotal
    and the limit, available the smaller of MemAvailable and what is left under the limit.
    """
    available, total = meminfo(proc_root)
    bound = node_bound(cgroup_root)
    if bound is None or bound.limit >= total:
        return available, total
    return min(available, bound.available), bound.limit


def evidence_to_dict(ev: Evidence) -> dict[str, Any]:
    """Evidence as a JSON-serialisable dict (command lines redacted)."""
    data = asdict(ev)
    if ev.process is not None:
        data["process"]["cmdline"] = redact_cmdline(ev.process.cmdline)
    return data


def _list_files(runtime_dir: str, uid: int, gid: int) -> list[RuntimeFile]:
    try:
        return list_runtime_files(runtime_dir)
    except RuntimeDirError as exc:
        # root squashed over NFS cannot enter a 0700 home: list it as the user instead.
        if os.geteuid() != 0 or uid == 0 or exc.errno == errno.E2BIG:
            raise
        return list_runtime_files_as(runtime_dir, uid, gid)


def grant_error(runtime_dir: str, service_group: str) -> str | None:
    """Why a member of ``service_group`` cannot list ``runtime_dir`` (the probe's grant), or None.

    Tried, not computed: a child process with the uid of ``nobody`` and ``service_group`` as its
    only group lists the directory (root only), so the answer is the kernel's (or the NFS
    server's) over every ACL and mode on the way, e.g. a home made 0700 whose ACL mask then hides
    the grant. None when it can, when the directory does not exist, when not run as root, or
    when the group does not exist here.
    """
    if os.geteuid() != 0:
        return None
    try:
        gid = grp.getgrnam(service_group).gr_gid
    except KeyError:
        return None
    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        uid = 65534
    try:
        list_runtime_files_as(runtime_dir, uid, gid)
    except RuntimeDirError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM):
            return None
        return f"the service group {service_group} cannot list {runtime_dir}: permission denied"
    return None


def node_report(
    username: str,
    *,
    node: str | None = None,
    runtime_template: str | None = None,
    proc_root: str = "/proc",
    singleuser_servers: int | None = None,
    user_processes: bool = False,
    cgroup_root: str = "/sys/fs/cgroup",
    service_group: str | None = None,
) -> dict[str, Any]:
    """This node's evidence on ``username``'s Jupyter servers, plus its memory and load.

    ``singleuser_servers`` is the node's count of Jupyter server processes when the
    caller keeps one (the probe's serve mode counts at most every few seconds); by
    default the whole process table is scanned.

    Two sources, so that one fault does not hide a live server:
    - the runtime directory's file names, checked against /proc (``evidence``);
    - with ``user_processes`` true, or whenever the runtime directory cannot be listed (its ACL
      grant broken, e.g. by ``chmod 700 ~``), the user's JupyterHub single-user servers on this
      node, found by UID in /proc (``processes``: pid, start_time, redacted cmdline). A runtime
      directory that cannot be listed is reported in ``runtime_error`` instead of failing.

    ``grant_error`` says that the service group's listing grant is broken: the listing was
    refused to this (non-root) process, i.e. the front door's probe; or, with ``service_group``
    (where.yml, run as root: its own listing succeeds where the probe's fails), a member of that
    group was refused when tried (see grant_error). A flooded directory is a ``runtime_error``
    only.

    ``units`` lists the memory of every ``jupyter-<user>-singleuser.service`` unit of the
    node as the kernel accounts it (``cgroupmem.scan_units``: user, current and peak bytes,
    OOM kills, session id, cgroup version) and ``memory`` is ``username``'s entry or None:
    keys a front door of an older release ignores.

    Raises InvalidUsername, UnknownUser, RuntimeDirError (a runtime path that is no directory)
    or ValueError (bad template).
    """
    pw = lookup_user(username)
    runtime_dir = runtime_dir_for(pw.pw_dir, runtime_template, user=pw.pw_name)
    runtime_error = None
    denied = False
    try:
        files = _list_files(runtime_dir, pw.pw_uid, pw.pw_gid)
    except RuntimeDirError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.E2BIG):  # else: not a directory
            raise
        files, runtime_error = [], str(exc.strerror or exc)
        denied = exc.errno in (errno.EACCES, errno.EPERM)
    evidence = [evidence_to_dict(check_file(f, pw.pw_uid, proc_root)) for f in files]
    mem_available, mem_total = node_memory(proc_root, cgroup_root)
    units = [u.to_dict() for u in scan_units(cgroup_root)]
    report: dict[str, Any] = {
        "node": node or socket.gethostname(),
        "user": pw.pw_name,
        "user_exists": True,
        "uid": pw.pw_uid,
        "runtime_dir": runtime_dir,
        "evidence": evidence,
        "servers": [ev for ev in evidence if ev["verdict"] == "running"],
        "mem_available": mem_available,
        "mem_total": mem_total,
        "singleuser_servers": (
            len(list_jupyter_processes(proc_root)) if singleuser_servers is None else singleuser_servers
        ),
        "units": units,
        "memory": next((u for u in units if u["user"] == pw.pw_name), None),
        "collected_at": time.time(),
    }
    if runtime_error is not None:
        report["runtime_error"] = runtime_error
        if denied and os.geteuid() != 0:
            # The probe account (a member of the service group) was refused: its grant is broken.
            report["grant_error"] = runtime_error
    elif service_group:
        broken = grant_error(runtime_dir, service_group)
        if broken is not None:
            report["grant_error"] = broken
    if user_processes or runtime_error is not None:
        report["processes"] = [
            {"pid": p.pid, "start_time": p.start_time, "cmdline": redact_cmdline(p.cmdline)}
            for p in list_jupyter_processes(proc_root)
            if p.uid == pw.pw_uid and is_singleuser_server(p.cmdline)
        ]
    return report


def missing_user_report(
    username: str, *, node: str | None = None, proc_root: str = "/proc", cgroup_root: str = "/sys/fs/cgroup"
) -> dict[str, Any]:
    """This node's answer for a valid name that has no account here (``user_exists`` false).

    An answer, not a failure: the node was asked and answered (a typo at ``where.yml``, or an
    account missing on this node only). No server of that user can run here: no evidence, no
    runtime directory. Raises InvalidUsername for a malformed name.
    """
    mem_available, mem_total = node_memory(proc_root, cgroup_root)
    return {
        "node": node or socket.gethostname(),
        "user": validate_username(username, pattern=None),
        "user_exists": False,
        "uid": None,
        "runtime_dir": None,
        "evidence": [],
        "servers": [],
        "mem_available": mem_available,
        "mem_total": mem_total,
        "singleuser_servers": len(list_jupyter_processes(proc_root)),
        "collected_at": time.time(),
    }


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def node_servers_report(
    *, node: str | None = None, proc_root: str = "/proc", cgroup_root: str = "/sys/fs/cgroup"
) -> dict[str, Any]:
    """Every Jupyter server process on this node with its owner (the reverse question).

    Processes are per node, so this is correct on a shared home where runtime files are not.
    Each process also has ``installed`` (``{package: version}`` in its environment now) and
    ``outdated`` (``["jupyterlab 4.6.7"]``: installed after it started, so it still runs older code).
    """
    procs = list_jupyter_processes(proc_root)
    mem_available, mem_total = node_memory(proc_root, cgroup_root)
    now = time.time()
    installed: dict[str, dict[str, dict[str, Any]]] = {}
    for p in procs:
        prefix = server_prefix(p.cmdline)
        if prefix is not None and prefix not in installed:
            installed[prefix] = installed_packages(prefix)
    processes = []
    for p in procs:
        packages = installed.get(server_prefix(p.cmdline) or "", {})
        processes.append(
            {
                "user": _user_name(p.uid),
                "uid": p.uid,
                "pid": p.pid,
                "start_time": p.start_time,
                "uptime": max(0.0, now - p.start_time),
                "cmdline": redact_cmdline(p.cmdline),
                # What its environment has installed now, and what of it came after the server started.
                "installed": {name: info["version"] for name, info in packages.items()},
                "outdated": outdated(p.start_time, packages),
            }
        )
    return {
        "node": node or socket.gethostname(),
        "processes": processes,
        "users": sorted({_user_name(p.uid) for p in procs}),
        "mem_available": mem_available,
        "mem_total": mem_total,
        "singleuser_servers": len(procs),
        "collected_at": now,
    }
