"""Process evidence from /proc: is a runtime file's PID this user's Jupyter server here?"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .runtime import RuntimeFile

__all__ = [
    "CLOCK_SKEW_MAX",
    "START_TOLERANCE",
    "Evidence",
    "ProcessInfo",
    "check_file",
    "is_jupyter_server",
    "is_singleuser_server",
    "list_jupyter_processes",
    "read_process",
    "redact_cmdline",
]

SERVER_COMMANDS = frozenset(
    {"jupyterhub-singleuser", "jupyter-lab", "jupyter-server", "jupyter-notebook", "jupyter-labhub"}
)
SERVER_MODULES = frozenset(
    {"jupyterlab", "jupyter_server", "notebook", "jupyterhub.singleuser", "jupyterlab.labhubapp"}
)
# JupyterHub's single-user server: what the hubs' spawners run for a user.
SINGLEUSER_COMMANDS = frozenset({"jupyterhub-singleuser"})
SINGLEUSER_MODULES = frozenset({"jupyterhub.singleuser"})
# A process may start up to this many seconds after its file was written and still count
# (btime has a resolution of one second).
START_TOLERANCE = 1.0
# The file's mtime is stamped by the clock of the host that holds /home (the NFS server), the
# process start time by this node's clock: a node ahead of the file server by up to this many
# seconds still counts its server as running (clock skew of minutes must never make a live server
# stale and pruned). Beyond it the PID is taken as reused by a later process. A server started
# again with the same PID rewrites its file, so a later Jupyter server of the same user holding
# an old file's PID is rare; a live server declared stale is what must never happen.
CLOCK_SKEW_MAX = 900.0

_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")
_SECRET_ARG = re.compile(r"(--[^=]*(token|password|secret)[^=]*=).*", re.IGNORECASE)
# Interpreter options that take a separate argument.
_OPTS_WITH_ARG = frozenset({"-W", "-X", "-Q"})


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc says about one process."""

    pid: int
    uid: int  # real uid
    start_time: float  # epoch seconds
    cmdline: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """The verdict on one runtime file on this node."""

    file: str
    pid: int
    kind: str
    mtime: float
    verdict: str  # "running" | "not-here"
    reason: str
    process: ProcessInfo | None
    # Seconds the process started after its file was written, beyond START_TOLERANCE (0.0 when
    # not): a sign that this node's clock is ahead of the file server's.
    started_after_file: float = 0.0


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _boot_time(proc_root: str) -> float:
    for line in _read(os.path.join(proc_root, "stat")).decode().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError(f"no btime in {proc_root}/stat")


def read_process(pid: int, proc_root: str = "/proc") -> ProcessInfo | None:
    """The process ``pid`` as seen in ``proc_root``, or None when there is none (or hidden)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    base = os.path.join(proc_root, str(pid))
    try:
        status = _read(os.path.join(base, "status")).decode(errors="replace")
        raw_cmdline = _read(os.path.join(base, "cmdline"))
        raw_stat = _read(os.path.join(base, "stat")).decode(errors="replace")
        btime = _boot_time(proc_root)
    except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
        return None
    uid = None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
            break
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw_stat[raw_stat.rfind(")") + 2 :].split()
    if uid is None or len(fields) < 20:
        return None
    start_ticks = int(fields[19])  # field 22 of stat; field 3 is fields[0]
    start_time = btime + start_ticks / os.sysconf("SC_CLK_TCK")
    argv = raw_cmdline.split(b"\0")
    if argv and argv[-1] == b"":
        argv.pop()
    cmdline = tuple(arg.decode(errors="replace") for arg in argv)
    return ProcessInfo(pid=pid, uid=uid, start_time=start_time, cmdline=cmdline)


def _python_target(args: Sequence[str]) -> tuple[str, str] | None:
    """("module", name) or ("script", basename) that a python command line runs."""
    rest = iter(args)
    for arg in rest:
        if arg == "-m":
            return "module", next(rest, "")
        if arg.startswith("-m"):
            return "module", arg[2:]
        if arg in _OPTS_WITH_ARG:
            next(rest, None)
        elif arg in {"-c", "-"}:
            return None
        elif not arg.startswith("-"):
            return "script", os.path.basename(arg)
    return None


def _runs(cmdline: Sequence[str], commands: frozenset[str], modules: frozenset[str]) -> bool:
    """True if the command line runs one of ``commands`` (also as a python interpreter's script
    argument) or one of the python ``modules`` (``python -m``)."""
    if not cmdline:
        return False
    first = os.path.basename(cmdline[0])
    if first in commands:
        return True
    target = _python_target(cmdline[1:]) if _PYTHON.fullmatch(first) else None
    if target is None:
        return False
    kind, name = target
    return name in (modules if kind == "module" else commands)


def is_singleuser_server(cmdline: Sequence[str]) -> bool:
    """True if the command line is JupyterHub's single-user server (what a hub's spawner runs)."""
    return _runs(cmdline, SINGLEUSER_COMMANDS, SINGLEUSER_MODULES)


def is_jupyter_server(cmdline: Sequence[str]) -> bool:
    """True if the command line is a Jupyter server (also as a python interpreter's argument)."""
    return _runs(cmdline, SERVER_COMMANDS, SERVER_MODULES)


def redact_cmdline(cmdline: Sequence[str]) -> list[str]:
    """The command line with the values of ``--*token*=``/``password``/``secret`` hidden."""
    return [_SECRET_ARG.sub(r"\1********", arg) for arg in cmdline]


def check_file(f: RuntimeFile, uid: int, proc_root: str = "/proc") -> Evidence:
    """Running when PID f.pid here is uid's Jupyter server, started before the file was written.

    "Before" allows CLOCK_SKEW_MAX seconds of clock skew between this node (the process start
    time, from /proc) and the host holding /home (the file's mtime); a start later than the file
    by more than START_TOLERANCE is reported in ``started_after_file`` (seconds).
    """
    proc = read_process(f.pid, proc_root)

    def verdict(result: str, reason: str, after: float = 0.0) -> Evidence:
        return Evidence(f.name, f.pid, f.kind, f.mtime, result, reason, proc, after)

    if proc is None:
        return verdict("not-here", f"no process {f.pid} on this node")
    if proc.uid != uid:
        return verdict("not-here", f"process {f.pid} belongs to uid {proc.uid}, not {uid}")
    if not is_jupyter_server(proc.cmdline):
        shown = " ".join(redact_cmdline(proc.cmdline))[:120] or "(no command line)"
        return verdict("not-here", f"process {f.pid} is not a Jupyter server: {shown}")
    after = proc.start_time - f.mtime
    if after > CLOCK_SKEW_MAX:
        return verdict(
            "not-here",
            f"process {f.pid} started {after:.1f} s after the file was written (PID reused)",
            after,
        )
    if after > START_TOLERANCE:
        return verdict(
            "running",
            f"process {f.pid} is a Jupyter server of uid {uid}, started {after:.1f} s after its file"
            " was written (clock skew between this node and the file server?)",
            after,
        )
    return verdict("running", f"process {f.pid} is a Jupyter server of uid {uid}")


def list_jupyter_processes(proc_root: str = "/proc") -> list[ProcessInfo]:
    """Every Jupyter server process on this node, any user, sorted by pid."""
    found: list[ProcessInfo] = []
    try:
        names = os.listdir(proc_root)
    except OSError:
        return found
    for name in names:
        if not (name.isascii() and name.isdigit()):
            continue
        try:
            raw = _read(os.path.join(proc_root, name, "cmdline"))
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if not is_jupyter_server(argv):
            continue
        proc = read_process(int(name), proc_root)
        if proc is not None:
            found.append(proc)
    return sorted(found, key=lambda p: p.pid)
