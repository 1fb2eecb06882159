"""The front door's own code on sys.path, laid out as the redirector role deploys it.

``multijhub_core`` is plugins/module_utils through a symlink (in ``core_dir``),
``multijhub_frontdoor`` comes from roles/redirector/files and ``multijhub_hub.proof`` from
roles/jupyterhub/files. Nothing is copied.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def add_paths(core_dir: str) -> None:
    """Make ``multijhub_core``, ``multijhub_frontdoor`` and ``multijhub_hub`` importable."""
    for path in (
        str(REPO / "roles" / "jupyterhub" / "files"),
        str(REPO / "roles" / "redirector" / "files"),
        core_dir,
    ):
        if path not in sys.path:
            sys.path.insert(0, path)


def ssh_config_runner(ssh_config: str) -> Callable[[Sequence[str], float], Any]:
    """The probe's own runner with ``-F ssh_config`` added (the emulated nodes' aliases).

    The front door's ssh reads ~/.ssh/config; the bench must not touch it, so the same
    argument vector gets ``-F`` right after the binary and runs through ``run_command``.
    """
    from multijhub_frontdoor.probe import run_command  # noqa: PLC0415 - after add_paths

    def run(argv: Sequence[str], timeout: float) -> Any:  # noqa: ANN401 - the probe's RunResult
        return run_command([argv[0], "-F", ssh_config, *argv[1:]], timeout)

    return run
