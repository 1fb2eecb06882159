"""Spawners whose single-user servers bind only to ports inside ``Spawner.port_range``."""

from __future__ import annotations

from typing import Any, ClassVar

from jupyterhub.spawner import LocalProcessSpawner
from systemdspawner import SystemdSpawner
from traitlets import Unicode, validate
from traitlets.config import LoggingConfigurable

from .ports import choose_port, parse_port_range, port_is_free


class PortRangeMixin(LoggingConfigurable):
    """Pick the server's port inside ``port_range`` right before the environment is built.

    Both SystemdSpawner and LocalProcessSpawner set ``self.port`` and then call ``get_env()``, which
    puts the port into ``JUPYTERHUB_SERVICE_URL``; choosing it there covers both spawners.
    Mixed in before a Spawner class, whose ``port``, ``ip``, ``user`` and ``stop`` it uses.
    """

    port: int
    ip: str

    port_range = Unicode(
        "8100-8999",
        config=True,
        help="Ports single-user servers may bind to, as LOW-HIGH.",
    )

    # Ports handed out by this hub process whose servers may not be listening yet.
    _reserved: ClassVar[dict[int, str]] = {}

    @validate("port_range")
    def _check_port_range(self, proposal: dict[str, Any]) -> str:
        parse_port_range(proposal["value"])
        return proposal["value"]

    def allocate_port(self) -> int:
        low, high = parse_port_range(self.port_range)
        self.release_port()
        port = choose_port(
            low,
            high,
            reserved=set(self._reserved),
            is_free=lambda p: port_is_free(p, self.ip or ""),
        )
        self._reserved[port] = self.user.name if getattr(self, "user", None) else ""
        self.log.info("multijhub: port %s (range %s) for %s", port, self.port_range, self._log_name)
        return port

    def release_port(self) -> None:
        if self.port and self._reserved.get(self.port) is not None:
            self._reserved.pop(self.port, None)

    def get_env(self) -> dict[str, str]:
        self.port = self.allocate_port()
        return super().get_env()  # type: ignore[misc,no-any-return]

    async def stop(self, now: bool = False) -> None:
        try:
            await super().stop(now=now)  # type: ignore[misc]
        finally:
            self.release_port()


class RangeSystemdSpawner(PortRangeMixin, SystemdSpawner):
    """SystemdSpawner (per-user MemoryMax/CPUQuota) with ports inside ``port_range``."""


class RangeLocalProcessSpawner(PortRangeMixin, LocalProcessSpawner):
    """LocalProcessSpawner with ports inside ``port_range`` (no resource limits)."""
