"""Replay a trace under a policy, one step per minute, and measure the last day.

The front door sees each node's memory as of the start of the minute in which a
user arrives (servers placed earlier in that minute do not show yet; recent
placements count as pending inside the front door). A policy that ``learns`` is also told
each running server's memory as the hubs' probes report it (``Observer``). Nothing is killed when a
node is over its memory: an OOM moment is counted and the day goes on, so every
policy replays exactly the same sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .policies import GiB, NodeView, Policy, UnitMemory
from .workload import MINUTES_PER_DAY, Session, Trace

FLOOR = 0.25  # instantaneous imbalance counts only while the ideal is >= 25 % of a node


@dataclass(frozen=True)
class Cluster:
    """N nodes of equal memory; ``base_gib`` per node is the OS and the hub itself."""

    nodes: int = 4
    node_mem_gib: float = 64.0
    base_gib: float = 1.0

    def names(self) -> list[str]:
        return [f"hub{i + 1}" for i in range(self.nodes)]


@dataclass(frozen=True)
class Metrics:
    """One policy on one seed, over the measured (last) day. Memory in GiB."""

    peak_ratio: float  # max over t of the fullest node / max over t of the ideal
    max_imbalance: float  # max over t (ideal >= FLOOR of a node) of fullest / ideal
    oom_moments: int  # node-minutes with a node's use above its memory
    oom_minutes: int  # minutes with at least one node above its memory
    returning: int  # placements of users who had a previous node
    kept: int  # ... of which on that previous node
    peak_fullest: float
    peak_ideal: float

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.returning if self.returning else float("nan")


@dataclass(frozen=True)
class Run:
    """A policy's replay: node memory per minute of the measured day, and its metrics."""

    policy: str
    used: np.ndarray  # shape (nodes, 1440), GiB, base included
    metrics: Metrics


def measure(used: np.ndarray, node_mem_gib: float, returning: int, kept: int) -> Metrics:
    """Metrics of node memory ``used`` (nodes x minutes, GiB, base included)."""
    fullest = used.max(axis=0)
    ideal = used.mean(axis=0)
    busy = ideal >= FLOOR * node_mem_gib
    over = used > node_mem_gib
    return Metrics(
        peak_ratio=float(fullest.max() / ideal.max()),
        max_imbalance=float((fullest[busy] / ideal[busy]).max()) if busy.any() else float("nan"),
        oom_moments=int(over.sum()),
        oom_minutes=int(over.any(axis=0).sum()),
        returning=returning,
        kept=kept,
        peak_fullest=float(fullest.max()),
        peak_ideal=float(ideal.max()),
    )


class Observer:
    """What the hubs' probes report: each running server's cgroup memory, per node.

    A server counts from its first minute (the minute after it was placed); its ``peak`` is
    the largest memory it has had so far, as the kernel's ``memory.peak`` keeps it, and its
    session id is its index in the trace. A server that ended is no longer reported.
    """

    def __init__(self, nodes: int) -> None:
        self.running: list[list[tuple[int, Session, np.ndarray]]] = [[] for _ in range(nodes)]

    def add(self, node: int, index: int, session: Session, curve: np.ndarray) -> None:
        self.running[node].append((index, session, curve))

    def units(self, minute: int) -> list[tuple[UnitMemory, ...]]:
        """Each node's reported units at ``minute`` (bytes)."""
        out = []
        for node, sessions in enumerate(self.running):
            alive, units = [], []
            for index, s, curve in sessions:
                k = minute - s.start
                if k >= len(curve):
                    continue
                alive.append((index, s, curve))
                if k < 0:
                    continue  # placed this minute: not visible yet
                now, peak = float(curve[k]), float(curve[: k + 1].max())
                units.append(UnitMemory(s.user, int(now * GiB), int(peak * GiB), 0, str(index), 2))
            self.running[node] = alive
            out.append(tuple(units))
        return out


def replay(trace: Trace, policy: Policy, cluster: Cluster) -> Run:
    """Place every session of ``trace`` with ``policy`` and measure the last day."""
    names = cluster.names()
    total = int(cluster.node_mem_gib * GiB)
    usage = np.zeros((cluster.nodes, trace.minutes))
    projected = np.zeros((cluster.nodes, trace.minutes))  # footprints of running servers (oracle)
    observer = Observer(cluster.nodes) if getattr(policy, "learns", False) else None
    last: dict[str, int] = {}
    day0 = trace.minutes - MINUTES_PER_DAY
    returning = kept = 0
    for index, s in enumerate(trace.sessions):
        minute = min(int(s.arrival), trace.minutes - 1)
        seen = usage[:, minute] + cluster.base_gib
        units = observer.units(minute) if observer is not None else [()] * cluster.nodes
        views = [
            NodeView(name, max(0, total - int(gib * GiB)), total, float(p), u)
            for name, gib, p, u in zip(names, seen.tolist(), projected[:, minute].tolist(), units)
        ]
        node = policy.choose(s.user, s.arrival, views)
        previous = last.get(s.user)
        if s.arrival >= day0 and previous is not None:
            returning += 1
            kept += node == previous
        last[s.user] = node
        curve = s.curve(trace.minutes)
        usage[node, s.start : s.start + len(curve)] += curve
        if observer is not None:
            observer.add(node, index, s, curve)
        projected[node, minute : s.start + len(curve)] += s.footprint
    used = usage[:, day0:] + cluster.base_gib
    return Run(policy.name, used, measure(used, cluster.node_mem_gib, returning, kept))
