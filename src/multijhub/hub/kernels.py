"""Kernels die first: a kernel provisioner that makes the out-of-memory killer pick kernels.

When a user's processes reach the unit's memory limit (``MemoryMax``), Linux kills the process of
that memory cgroup with the highest badness: its memory use plus ``oom_score_adj`` thousandths of
the limit. The single-user server and its kernels all start at the same ``oom_score_adj``, so a
server that happens to be the largest process dies and takes every notebook with it. Started
through ``OomFirstProvisioner``, every kernel gets ``oom_score_adj`` 1000: its badness is then
its memory use *plus the whole limit*, higher than any process at 0 whatever the limit's size,
so the killer takes a kernel (the largest one, as usual) and never ``jupyterhub-singleuser``.

An unprivileged process may raise its own ``oom_score_adj`` (never lower it below what it
inherited), so no privilege is needed. It is raised in the child, before the kernel is
executed (``/bin/sh`` writes it and ``exec``\\s the kernel command, keeping the PID), so no
allocation of the kernel can happen before it. jupyter_client does the rest (``LocalProvisioner``:
connection files, ports, signals, restarts); kernel provisioners are found by the entry point
group ``jupyter_client.kernel_provisioners``, under the name ``multijhub-oom-first``.
"""

from __future__ import annotations

import os
import sys

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Integer

ENTRY_POINT_NAME = "multijhub-oom-first"
OOM_SCORE_ADJ_MAX = 1000

# Writes the score for this very process, then becomes the kernel (same PID). A failed write
# (no /proc, a value above the kernel's limit) must not keep the kernel from starting: the
# provisioner checks the result from the parent and logs it.
_WRAPPER = 'echo "$0" > /proc/self/oom_score_adj 2>/dev/null; exec "$@"'


def wrap_command(cmd: list[str], oom_score_adj: int) -> list[str]:
    """``cmd`` run through ``/bin/sh`` that first sets ``oom_score_adj`` (-1000..1000) for itself.

    Raises ValueError for a value outside -1000..1000 or an empty command.
    """
    if isinstance(oom_score_adj, bool) or not -OOM_SCORE_ADJ_MAX <= int(oom_score_adj) <= OOM_SCORE_ADJ_MAX:
        raise ValueError(f"oom_score_adj must be between -1000 and 1000, not {oom_score_adj!r}")
    if not cmd:
        raise ValueError("empty kernel command")
    return ["/bin/sh", "-c", _WRAPPER, str(int(oom_score_adj)), *cmd]


def read_oom_score_adj(pid: int, proc_root: str = "/proc") -> int | None:
    """The process's ``oom_score_adj``, or None when it cannot be read (gone, no /proc)."""
    try:
        with open(os.path.join(proc_root, str(int(pid)), "oom_score_adj"), encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def wrapper_running(pid: int, proc_root: str = "/proc") -> bool:
    """True while ``pid`` still runs the wrapper (before its ``exec``) or cannot be read."""
    try:
        with open(os.path.join(proc_root, str(int(pid)), "cmdline"), "rb") as handle:
            argv = handle.read().split(b"\0")
    except (OSError, ValueError):
        return True
    return argv[:3] == [b"/bin/sh", b"-c", _WRAPPER.encode()]


class OomFirstProvisioner(LocalProvisioner):  # type: ignore[misc]
    """``LocalProvisioner`` whose kernels are the out-of-memory killer's first choice."""

    oom_score_adj = Integer(
        OOM_SCORE_ADJ_MAX,
        min=-OOM_SCORE_ADJ_MAX,
        max=OOM_SCORE_ADJ_MAX,
        config=True,
        help="oom_score_adj given to every kernel (1000: always killed before a process at 0).",
    )

    async def launch_kernel(self, cmd: list[str], **kwargs: object) -> KernelConnectionInfo:
        """Launch ``cmd`` as LocalProvisioner does, through the ``oom_score_adj`` wrapper (Linux)."""
        if not sys.platform.startswith("linux"):
            return await super().launch_kernel(cmd, **kwargs)
        info = await super().launch_kernel(wrap_command(cmd, self.oom_score_adj), **kwargs)
        self.log.debug("multijhub: kernel pid %s started with oom_score_adj %s", self.pid, self.oom_score_adj)
        return info

    async def post_launch(self, **kwargs: object) -> None:
        """Log when the kernel did not get its ``oom_score_adj`` (checked once it is the kernel)."""
        await super().post_launch(**kwargs)
        if not sys.platform.startswith("linux") or self.pid is None:
            return
        if wrapper_running(self.pid):
            return  # not the kernel yet: nothing to tell (the score is written before the exec)
        got = read_oom_score_adj(self.pid)
        if got is not None and got != self.oom_score_adj:
            self.log.warning(
                "multijhub: kernel pid %s has oom_score_adj %s, not %s: the out-of-memory killer may take "
                "the server instead of this kernel",
                self.pid,
                got,
                self.oom_score_adj,
            )
