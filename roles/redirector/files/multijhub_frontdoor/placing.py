"""Turn a resolution into a placement: the core's choose_node under the store's lock."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from multijhub_core.placement import NodeLoad, choose_node

from .config import LimitsConfig
from .store import AssignmentStore, Placement, PlacementContext


def effective_loads(
    loads: Sequence[NodeLoad],
    *,
    drained: Collection[str],
    pending: dict[str, int] | None = None,
    mem_per_server: int = 0,
) -> list[NodeLoad]:
    """Loads with drained flags and pending reservations (bytes) filled in."""
    pending = pending or {}
    return [
        replace(
            load,
            drained=load.name in drained,
            pending=pending.get(load.name, 0) * mem_per_server,
        )
        for load in loads
    ]


def place_user(
    store: AssignmentStore,
    user: str,
    loads: Sequence[NodeLoad],
    *,
    drained: Collection[str],
    limits: LimitsConfig,
    now: float | None = None,
) -> Placement | None:
    """Pick and record the node for ``user``'s new server, or None if no node fits.

    Inside the store's per-user lock: a fresh placement of this user on a
    node that is still eligible is kept (the concurrent first login case);
    otherwise the core's choose_node decides, counting other users' recent
    placements as pending memory and sticking to the previous node.
    """

    def choose(ctx: PlacementContext) -> str | None:
        current = effective_loads(
            loads,
            drained=drained,
            pending=dict(ctx.pending),
            mem_per_server=limits.mem_per_server,
        )
        eligible = {n.name for n in current if n.healthy and not n.drained}
        if ctx.recent in eligible:
            return ctx.recent
        return choose_node(
            current,
            previous=ctx.previous,
            need=limits.mem_per_server,
            sticky_headroom=limits.sticky_headroom,
        )

    return store.place(user, choose, window=limits.pending_seconds, now=now)
