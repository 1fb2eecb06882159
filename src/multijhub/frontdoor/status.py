"""The cluster as the admin page shows it: per node state, memory and users."""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import wait
from dataclasses import dataclass

from multijhub.core.placement import learned_size, promised

from .config import LimitsConfig
from .hubapi import HubApiError
from .placing import learned_sizes, size_rule
from .resolver import Resolution, Resolver
from .store import AssignmentStore


@dataclass(frozen=True)
class NodeMemory:
    """A node's servers' memory for the admin page (bytes), from the units its probe reported."""

    servers: int  # running servers (units) reported
    in_use: int  # their memory now
    promised: int  # each counted at the larger of its use now and its learned size


@dataclass(frozen=True)
class LearnedRow:
    """A user's learned size for the admin page."""

    user: str
    size: int  # bytes
    sessions: int  # sessions recorded
    last_peak: int  # bytes: the newest session's peak
    last_node: str


def node_memory(
    store: AssignmentStore, resolution: Resolution, limits: LimitsConfig
) -> dict[str, NodeMemory]:
    """Per node that answered: its servers' memory in use and promised by learned sizes."""
    running = {u.user: u for load in resolution.loads for u in load.units}
    sizes = learned_sizes(store, set(running), size_rule(limits, running=True), running)
    return {
        load.name: NodeMemory(
            len(load.units), sum(u.current for u in load.units), promised(load.units, sizes)
        )
        for load in resolution.loads
        if load.healthy
    }


def learned_table(store: AssignmentStore, limits: LimitsConfig, top: int = 10) -> list[LearnedRow]:
    """The ``top`` users with the largest learned sizes (largest first, then by name)."""
    rule = size_rule(limits)
    rows = [
        LearnedRow(
            user,
            learned_size([s.peak for s in done[: rule.history]], rule),
            len(done),
            done[0].peak,
            done[0].node,
        )
        for user, done in store.session_peaks().items()
        if done
    ]
    return sorted(rows, key=lambda r: (-r.size, r.user))[:top]


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
