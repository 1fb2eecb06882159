"""Placement of a new server: the most effective free memory, sticky to the previous node.

Learned sizes: a server is counted at what its user really uses. ``learned_size`` is the
estimator (see ``SizeRule``); ``reserved`` is the memory a node's running servers are still
expected to take (each one's learned size minus what it uses now, never negative), which
``choose_node`` subtracts from the node's free memory beside the pending placements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .cgroupmem import UnitMemory

__all__ = ["MiB", "NodeLoad", "SizeRule", "choose_node", "learned_size", "promised", "reserved"]

MiB = 1024**2


@dataclass(frozen=True)
class NodeLoad:
    """A node's memory as seen now."""

    name: str
    mem_available: int
    mem_total: int
    healthy: bool = True
    drained: bool = False
    pending: int = 0  # bytes reserved by placements that do not show yet
    reserved: int = 0  # bytes running servers are expected to grow by (learned sizes)
    units: tuple[UnitMemory, ...] = ()  # the node's servers' memory (cgroups), when reported


@dataclass(frozen=True)
class SizeRule:
    """How a user's server size is learned from the peaks of their past sessions (bytes).

    The size is the ``quantile`` (nearest rank) of the user's last ``history`` session peaks,
    raised to ``floor`` and lowered to ``cap`` (the servers' memory limit; 0 = no cap).
    A user with no recorded session counts at ``default`` (the front door's mem_per_server).
    With the defaults (0.9 of at most 10 sessions) it is the largest peak of the last 9
    sessions, or the second largest of 10: a server that once needed more is expected to
    need it again, and one freak session is forgotten after ten.
    """

    default: int = 0
    quantile: float = 0.9
    floor: int = 128 * MiB
    cap: int = 0
    history: int = 10


def learned_size(peaks: Sequence[int], rule: SizeRule) -> int:
    """The size (bytes) a server of a user with these session ``peaks`` (bytes, any order) counts at."""
    recent = sorted(peaks)
    if not recent:
        return rule.default
    rank = max(1, math.ceil(rule.quantile * len(recent)))
    size = max(rule.floor, recent[rank - 1])
    return min(size, rule.cap) if rule.cap > 0 else size


def promised(units: Iterable[UnitMemory], sizes: Mapping[str, int]) -> int:
    """Memory (bytes) promised to running servers: each at the larger of its use now and its size."""
    return sum(max(u.current, sizes.get(u.user, u.current)) for u in units)


def reserved(units: Iterable[UnitMemory], sizes: Mapping[str, int]) -> int:
    """How much more (bytes) running servers are expected to take than they use now."""
    return sum(max(0, sizes.get(u.user, u.current) - u.current) for u in units)


def choose_node(
    nodes: Sequence[NodeLoad],
    *,
    previous: str | None = None,
    need: int = 0,
    sticky_headroom: float = 0.2,
) -> str | None:
    """The node for a new server, or None when no node is healthy and not drained.

    Keeps ``previous`` when it is eligible and its effective free memory
    (mem_available - pending - reserved) is at least ``need + sticky_headroom * mem_total``;
    otherwise the node with the most effective free memory, ties broken by name.
    """
    eligible = [n for n in nodes if n.healthy and not n.drained]
    if not eligible:
        return None
    for node in eligible:
        if node.name == previous:
            if _free(node) >= need + sticky_headroom * node.mem_total:
                return node.name
            break
    best = min(eligible, key=lambda n: (-_free(n), n.name))
    return best.name


def _free(node: NodeLoad) -> int:
    return node.mem_available - node.pending - node.reserved
