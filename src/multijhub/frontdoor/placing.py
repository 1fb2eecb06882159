"""Turn a resolution into a placement: the core's choose_node under the store's lock.

Learned sizes (issue 19): ``observe`` records every answering node's servers' memory (the
probe's ``units``, from their cgroups) in the store; ``place_user`` then counts each server at
its user's learned size (``multijhub.core.placement.learned_size`` over the store's session
peaks): the new server as its ``need``, a running one by what it is still expected to grow
(``reserved``), a placed one not visible yet as pending.

Two quantiles (placement study, bench/placement): the new server counts at
``learned_quantile`` (0.9: room for this user's high sessions), the node's other servers at
``learned_running_quantile`` (0.7): they do not all reach their highs at once, and a node
counted at the sum of everyone's 0.9 quantile looks full at the morning peak, which sent
returning users off their node without a better peak.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from multijhub.core.cgroupmem import UnitMemory
from multijhub.core.placement import NodeLoad, SizeRule, choose_node, learned_size, reserved

from .config import LimitsConfig
from .store import AssignmentStore, OomKill, Placement, PlacementContext


def drained_nodes(config_drained: Collection[str], store: AssignmentStore) -> frozenset[str]:
    """The nodes no new server goes to: drained in the inventory (configuration) or on the admin
    page / by drain.yml (the store), or marked down (drain.yml -e down=true). The one place this
    set is assembled."""
    return frozenset(config_drained) | frozenset(store.drained_nodes()) | frozenset(store.down_nodes())


def size_rule(limits: LimitsConfig, *, running: bool = False) -> SizeRule:
    """The estimator's settings from the front door's limits: for a new server, or (``running``)
    for the servers already on a node or placed there."""
    return SizeRule(
        default=limits.mem_per_server,
        quantile=limits.learned_running_quantile if running else limits.learned_quantile,
        floor=limits.learned_floor,
        cap=limits.learned_cap,
        history=limits.memory_history,
    )


def learned_sizes(
    store: AssignmentStore,
    users: Collection[str],
    rule: SizeRule,
    running: Mapping[str, UnitMemory] | None = None,
) -> dict[str, int]:
    """The size (bytes) each of ``users``' servers counts at.

    A user's size is ``learned_size`` of the peaks of their recorded sessions other than the
    one running now (``running``: the user's unit as reported), ``rule.default`` with none;
    a running server counts at least at its own peak so far.
    """
    running = running or {}
    peaks = store.session_peaks(users)
    sizes = {}
    for user in users:
        live = running.get(user)
        done = [s.peak for s in peaks.get(user, []) if live is None or s.session != live.session]
        size = learned_size(done[: rule.history], rule)
        sizes[user] = max(size, live.peak) if live is not None else size
    return sizes


def observe(
    store: AssignmentStore, loads: Sequence[NodeLoad], *, limits: LimitsConfig, now: float | None = None
) -> list[OomKill]:
    """Record the memory of the servers of every node that answered; the new OOM kills."""
    units = {load.name: load.units for load in loads if load.healthy and load.units}
    if not units:
        return []
    return store.record_memory(
        units, now=now, history=limits.memory_history, forget=limits.forget_after_days * 86400.0
    )


def observe_listings(
    store: AssignmentStore,
    listings: Mapping[str, Collection[str]],
    *,
    limits: LimitsConfig,
    now: float | None = None,
) -> None:
    """Record who has a server on each node that listed all its servers (the recent nodes).

    A placement younger than ``limits.pending_seconds`` is kept although its server does not
    show yet; a silent node's entries are kept for ``limits.node_history_days``.
    """
    if listings:
        store.record_listing(
            listings,
            grace=limits.pending_seconds,
            retention=limits.node_history_days * 86400.0,
            now=now,
        )


def effective_loads(
    loads: Sequence[NodeLoad],
    *,
    drained: Collection[str],
    pending: dict[str, int] | None = None,
    mem_per_server: int = 0,
    pending_users: Mapping[str, Sequence[str]] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> list[NodeLoad]:
    """Loads with drained flags, pending reservations and reserved growth (bytes) filled in.

    Without ``pending_users``, each pending placement counts ``mem_per_server``. With them,
    each user placed recently counts at their learned size from ``sizes`` (``mem_per_server``
    for a user without one) unless their server already shows among the units of any node
    (there it is counted; a server started elsewhere is not also pending here).
    """
    pending = pending or {}
    sizes = sizes or {}
    visible = {u.user for load in loads for u in load.units}  # on any node: placed, or found elsewhere
    out = []
    for load in loads:
        if pending_users is None:
            waiting = pending.get(load.name, 0) * mem_per_server
        else:
            names = [user for user in pending_users.get(load.name, ()) if user not in visible]
            waiting = sum(sizes.get(user, mem_per_server) for user in names)
        out.append(
            replace(
                load,
                drained=load.name in drained,
                pending=waiting,
                reserved=reserved(load.units, sizes),
            )
        )
    return out


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
    otherwise the core's choose_node decides, counting the user's new server
    at its learned size (``learned_quantile``), running servers at what they are expected
    to grow by and other users' recent placements as pending memory (both at
    ``learned_running_quantile``), and sticking to the previous node.
    """
    rule, others = size_rule(limits), size_rule(limits, running=True)

    def choose(ctx: PlacementContext) -> str | None:
        waiting = {name for names in ctx.pending_users.values() for name in names}
        running = {u.user: u for load in loads for u in load.units}
        sizes = learned_sizes(store, set(running) | waiting, others, running)
        need = learned_sizes(store, {user}, rule, running)[user]
        current = effective_loads(
            loads,
            drained=drained,
            pending=dict(ctx.pending),
            mem_per_server=limits.mem_per_server,
            pending_users=ctx.pending_users,
            sizes=sizes,
        )
        eligible = {n.name for n in current if n.healthy and not n.drained}
        if ctx.recent in eligible:
            return ctx.recent
        return choose_node(
            current,
            previous=ctx.previous,
            need=need,
            sticky_headroom=limits.sticky_headroom,
        )

    return store.place(user, choose, window=limits.pending_seconds, now=now)
