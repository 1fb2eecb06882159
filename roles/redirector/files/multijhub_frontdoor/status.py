"""The cluster as the admin page shows it: per node state, memory and users."""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import wait
from dataclasses import dataclass

from .hubapi import HubApiError
from .resolver import Resolution, Resolver


@dataclass(frozen=True)
class NodeStatus:
    """One node for the admin page."""

    name: str
    base_url: str
    state: str  # "up" | "unknown" | "drained"
    drained_by: str  # "" | "page" | "inventory"
    healthy: bool  # hub API and probe both answered
    mem_available: int
    mem_total: int
    users: tuple[str, ...]
    users_error: str

    @property
    def mem_used(self) -> int:
        return max(0, self.mem_total - self.mem_available)

    def share(self, value: int) -> float:
        """``value`` as a percentage of the node's memory (0 without a total)."""
        return round(100.0 * value / self.mem_total, 1) if self.mem_total else 0.0


def cluster_status(
    resolver: Resolver,
    resolution: Resolution,
    *,
    config_drained: Collection[str],
    store_drained: Collection[str],
) -> list[NodeStatus]:
    """Combine a resolution's node loads with each hub's list of ready users.

    The user lists are fetched in parallel under the resolver's deadline; a hub
    that does not answer (or whose token lacks ``list:users``) shows the reason.
    """
    futures = {
        node.name: resolver.executor.submit(resolver.apis[node.name].ready_users, resolver.deadline)
        for node in resolver.nodes
    }
    wait(futures.values(), timeout=resolver.deadline)
    loads = {load.name: load for load in resolution.loads}
    result: list[NodeStatus] = []
    for node in resolver.nodes:
        fut = futures[node.name]
        users: tuple[str, ...] = ()
        error = ""
        if not fut.done():
            fut.cancel()
            error = "no answer in time"
        elif isinstance(fut.exception(), HubApiError):
            error = str(fut.exception())
        elif fut.exception() is not None:
            error = type(fut.exception()).__name__
        else:
            users = tuple(fut.result())
        load = loads.get(node.name)
        drained_by = (
            "inventory" if node.name in config_drained else "page" if node.name in store_drained else ""
        )
        healthy = bool(load and load.healthy)
        result.append(
            NodeStatus(
                name=node.name,
                base_url=node.base_url,
                state="drained" if drained_by else "up" if healthy else "unknown",
                drained_by=drained_by,
                healthy=healthy,
                mem_available=load.mem_available if load else 0,
                mem_total=load.mem_total if load else 0,
                users=users,
                users_error=error,
            )
        )
    return result
