"""The bench's ssh runner for the front door's probe (multijhub.frontdoor.probe, installed editable)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def ssh_config_runner(ssh_config: str) -> Callable[[Sequence[str], float], Any]:
    """The probe's own runner with ``-F ssh_config`` added (the emulated nodes' aliases).

    The front door's ssh reads ~/.ssh/config; the bench must not touch it, so the same
    argument vector gets ``-F`` right after the binary and runs through ``run_command``.
    """
    from multijhub.frontdoor.probe import run_command  # noqa: PLC0415

    def run(argv: Sequence[str], timeout: float) -> Any:  # noqa: ANN401 - the probe's RunResult
        return run_command([argv[0], "-F", ssh_config, *argv[1:]], timeout)

    return run
