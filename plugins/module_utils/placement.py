"""Placement of a new server: the most effective free memory, sticky to the previous node."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["NodeLoad", "choose_node"]


@dataclass(frozen=True)
class NodeLoad:
    """A node's memory as seen now."""

    name: str
    mem_available: int
    mem_total: int
    healthy: bool = True
    drained: bool = False
    pending: int = 0  # bytes reserved by placements that do not show yet


def choose_node(
    nodes: Sequence[NodeLoad],
    *,
    previous: str | None = None,
    need: int = 0,
    sticky_headroom: float = 0.2,
) -> str | None:
    """The node for a new server, or None when no node is healthy and not drained.

    Keeps ``previous`` when it is eligible and its effective free memory
    (mem_available - pending) is at least ``need + sticky_headroom * mem_total``;
    otherwise the node with the most effective free memory, ties broken by name.
    """
    eligible = [n for n in nodes if n.healthy and not n.drained]
    if not eligible:
        return None
    for node in eligible:
        if node.name == previous:
            if node.mem_available - node.pending >= need + sticky_headroom * node.mem_total:
                return node.name
            break
    best = min(eligible, key=lambda n: (-(n.mem_available - n.pending), n.name))
    return best.name
