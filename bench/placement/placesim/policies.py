"""Placement policies: random (the proof of concept), round-robin, and multijhub's.

A policy is asked once per new server with the user's name, the time and the
memory each node reports now; it answers a node index. multijhub's policy is
the front door itself: ``multijhub.frontdoor.placing.observe`` (record the servers'
memory the probes report) and ``place_user`` over a real ``SqliteStore`` (previous
node, recent placements as pending reservations, learned sizes), which calls the
core's ``multijhub.core.placement`` (``learned_size``, ``choose_node``). The same
code without the servers' memory is the policy before learned sizes (every server
counted at ``mem_per_server``).
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from multijhub.core.cgroupmem import UnitMemory
from multijhub.core.placement import NodeLoad

from multijhub.frontdoor import placing
from multijhub.frontdoor.config import LimitsConfig
from multijhub.frontdoor.store import SqliteStore

GiB = 1024**3
EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC: the trace's minute 0 for the store's clock
DEFAULTS = LimitsConfig()  # the front door's own defaults for pending_seconds and sticky_headroom
DEFAULTS_BEFORE_HEADROOM = 0.2  # sticky_headroom of the front door before learned sizes
MULTIJHUB = "multijhub"
BEFORE = "multijhub before (fixed sizes)"


@dataclass(frozen=True)
class NodeView:
    """What the front door learns from a node's probe: memory available and total (bytes).

    ``projected_gib`` is what no front door can know: the memory the node's
    running servers will have grown to (their footprints). Only the oracle
    reference uses it. ``units`` is each running server's memory as the hubs'
    probes report it (``engine.Observer``), given to policies that learn.
    """

    name: str
    mem_available: int
    mem_total: int
    projected_gib: float = 0.0
    units: tuple[UnitMemory, ...] = ()


class Policy(Protocol):
    """Chooses a node for a new server."""

    name: str

    def choose(self, user: str, minute: float, nodes: Sequence[NodeView]) -> int:
        """Index into ``nodes`` of the node for ``user``'s new server."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


class RandomPolicy:
    """Any node, uniformly: what the proof of concept does."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed * 7919 + 1)  # its own stream: the trace stays the same

    def choose(self, user: str, minute: float, nodes: Sequence[NodeView]) -> int:
        return self.rng.randrange(len(nodes))

    def close(self) -> None:
        pass


class RoundRobinPolicy:
    """The next node in turn, whoever the user is."""

    name = "round-robin"

    def __init__(self) -> None:
        self.turn = 0

    def choose(self, user: str, minute: float, nodes: Sequence[NodeView]) -> int:
        index = self.turn % len(nodes)
        self.turn += 1
        return index

    def close(self) -> None:
        pass


class OraclePolicy:
    """Reference, not a contender: the least projected memory, knowing every footprint.

    A bound on what memory-based placement could reach if the front door knew
    how big each server will grow; no stickiness.
    """

    name = "oracle (reference)"

    def choose(self, user: str, minute: float, nodes: Sequence[NodeView]) -> int:
        return min(range(len(nodes)), key=lambda i: (nodes[i].projected_gib, i))

    def close(self) -> None:
        pass


class MultijhubPolicy:
    """The front door's placement: observe + place_user -> choose_node, with a real assignment store.

    ``learns``: the probes report the servers' memory (learned sizes, the front door today);
    without it every server counts at ``mem_per_server`` (the front door before learned sizes).
    """

    def __init__(
        self,
        *,
        mem_per_server: int,
        pending_seconds: float = DEFAULTS.pending_seconds,
        sticky_headroom: float = DEFAULTS.sticky_headroom,
        running_quantile: float = DEFAULTS.learned_running_quantile,
        learns: bool = True,
        label: str | None = None,
    ) -> None:
        self.limits = LimitsConfig(
            mem_per_server=mem_per_server,
            pending_seconds=pending_seconds,
            sticky_headroom=sticky_headroom,
            learned_quantile=DEFAULTS.learned_quantile,
            learned_running_quantile=running_quantile,
            learned_floor=DEFAULTS.learned_floor,
            learned_cap=0,  # the study's servers have no memory limit
            memory_history=DEFAULTS.memory_history,
        )
        self.learns = learns
        self.name = label or (MULTIJHUB if learns else BEFORE)
        # SQLite is about 3x faster in RAM; mkdtemp makes a private directory either way.
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
        self._dir = tempfile.TemporaryDirectory(prefix="multijhub-placesim-", dir=shm)
        self.store = SqliteStore(str(Path(self._dir.name) / "assignments.sqlite3"))

    def choose(self, user: str, minute: float, nodes: Sequence[NodeView]) -> int:
        now = EPOCH + 60.0 * minute
        loads = [NodeLoad(n.name, n.mem_available, n.mem_total, units=n.units) for n in nodes]
        placing.observe(self.store, loads, limits=self.limits, now=now)  # as views._resolve does
        placement = placing.place_user(self.store, user, loads, drained=(), limits=self.limits, now=now)
        if placement is None:
            raise RuntimeError("the front door found no node: every node is healthy and undrained here")
        return [n.name for n in nodes].index(placement.node)

    def close(self) -> None:
        self.store.close()
        self._dir.cleanup()


def make_policies(
    seed: int,
    *,
    mem_per_server: int,
    pending_seconds: float = DEFAULTS.pending_seconds,
    sticky_headroom: float = DEFAULTS.sticky_headroom,
    running_quantile: float = DEFAULTS.learned_running_quantile,
    headroom_sweep: Sequence[float] = (),
    running_sweep: Sequence[float] = (),
) -> list[Policy]:
    """Fresh policies for one seed, in the order they are reported.

    ``headroom_sweep`` and ``running_sweep`` add multijhub's policy (learned sizes) again with
    other values of ``sticky_headroom`` or ``learned_running_quantile`` (the trade-off study,
    reported apart).
    """
    policies: list[Policy] = [
        RandomPolicy(seed),
        RoundRobinPolicy(),
        MultijhubPolicy(
            mem_per_server=mem_per_server,
            pending_seconds=pending_seconds,
            sticky_headroom=DEFAULTS_BEFORE_HEADROOM,
            learns=False,
        ),
        MultijhubPolicy(
            mem_per_server=mem_per_server,
            pending_seconds=pending_seconds,
            sticky_headroom=sticky_headroom,
            running_quantile=running_quantile,
        ),
        OraclePolicy(),
    ]
    for headroom in headroom_sweep:
        policies.append(
            MultijhubPolicy(
                mem_per_server=mem_per_server,
                pending_seconds=pending_seconds,
                sticky_headroom=headroom,
                running_quantile=running_quantile,
                label=sweep_label(headroom),
            )
        )
    for quantile in running_sweep:
        policies.append(
            MultijhubPolicy(
                mem_per_server=mem_per_server,
                pending_seconds=pending_seconds,
                sticky_headroom=sticky_headroom,
                running_quantile=quantile,
                label=running_label(quantile),
            )
        )
    return policies


def sweep_label(headroom: float) -> str:
    """The row name of multijhub's policy with another ``sticky_headroom``."""
    return f"multijhub, sticky_headroom={headroom:g}"


def running_label(quantile: float) -> str:
    """The row name of multijhub's policy with another ``learned_running_quantile``."""
    return f"multijhub, learned_running_quantile={quantile:g}"
