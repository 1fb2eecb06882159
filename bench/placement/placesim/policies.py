"""Placement policies: random (the proof of concept), round-robin, and multijhub's.

A policy is asked once per new server with the user's name, the time and the
memory each node reports now; it answers a node index. multijhub's policy is
the front door itself: ``multijhub_frontdoor.placing.place_user`` over a real
``SqliteStore`` (previous node, recent placements as pending reservations),
which calls the core's ``multijhub_core.placement.choose_node``.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .frontdoor import ensure_importable

ensure_importable()

from multijhub_core.placement import NodeLoad  # noqa: E402
from multijhub_frontdoor import placing  # noqa: E402
from multijhub_frontdoor.config import LimitsConfig  # noqa: E402
from multijhub_frontdoor.store import SqliteStore  # noqa: E402

GiB = 1024**3
EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC: the trace's minute 0 for the store's clock
DEFAULTS = LimitsConfig()  # the front door's own defaults for pending_seconds and sticky_headroom


@dataclass(frozen=True)
class NodeView:
    """What the front door learns from a node's probe: memory available and total (bytes).

    ``projected_gib`` is what no front door can know: the memory the node's
    running servers will have grown to (their footprints). Only the oracle
    reference uses it. ``learned_gib`` is what a front door could learn by
    watching servers' memory (``engine.Learner``); only the learned-sizes
    reference uses it.
    """

    name: str
    mem_available: int
    mem_total: int
    projected_gib: float = 0.0
    learned_gib: float = 0.0


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


class LearnedSizesPolicy:
    """Reference: the least memory when each running server counts at its user's last peak.

    What placement could reach if the front door learned every user's size from their
    previous session (watching servers' memory), a realistic bound between multijhub's
    policy and the oracle; no stickiness.
    """

    name = "learned sizes (reference)"
    learns = True

    def choose(self, user: str, minute: float, nodes: Sequence[NodeView]) -> int:
        return min(range(len(nodes)), key=lambda i: (nodes[i].learned_gib, i))

    def close(self) -> None:
        pass


class MultijhubPolicy:
    """The front door's placement: place_user -> choose_node, with a real assignment store."""

    def __init__(
        self,
        *,
        mem_per_server: int,
        pending_seconds: float = DEFAULTS.pending_seconds,
        sticky_headroom: float = DEFAULTS.sticky_headroom,
        label: str | None = None,
    ) -> None:
        self.limits = LimitsConfig(
            mem_per_server=mem_per_server,
            pending_seconds=pending_seconds,
            sticky_headroom=sticky_headroom,
        )
        self.name = "multijhub" if label is None else label
        # SQLite is about 3x faster in RAM; mkdtemp makes a private directory either way.
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
        self._dir = tempfile.TemporaryDirectory(prefix="multijhub-placesim-", dir=shm)
        self.store = SqliteStore(str(Path(self._dir.name) / "assignments.sqlite3"))

    def choose(self, user: str, minute: float, nodes: Sequence[NodeView]) -> int:
        loads = [NodeLoad(n.name, n.mem_available, n.mem_total) for n in nodes]
        placement = placing.place_user(
            self.store, user, loads, drained=(), limits=self.limits, now=EPOCH + 60.0 * minute
        )
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
    headroom_sweep: Sequence[float] = (),
) -> list[Policy]:
    """Fresh policies for one seed, in the order they are reported.

    ``headroom_sweep`` adds multijhub's policy again with other values of
    ``sticky_headroom`` (a sensitivity study, reported apart).
    """
    policies: list[Policy] = [
        RandomPolicy(seed),
        RoundRobinPolicy(),
        MultijhubPolicy(
            mem_per_server=mem_per_server, pending_seconds=pending_seconds, sticky_headroom=sticky_headroom
        ),
        OraclePolicy(),
        LearnedSizesPolicy(),
    ]
    for headroom in headroom_sweep:
        policies.append(
            MultijhubPolicy(
                mem_per_server=mem_per_server,
                pending_seconds=pending_seconds,
                sticky_headroom=headroom,
                label=sweep_label(headroom),
            )
        )
    return policies


def sweep_label(headroom: float) -> str:
    """The row name of multijhub's policy with another ``sticky_headroom``."""
    return f"multijhub, sticky_headroom={headroom:g}"
