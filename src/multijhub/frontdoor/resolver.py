"""Ask every hub in parallel under one deadline and decide where the user is."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from multijhub.core.cgroupmem import UnitMemory
from multijhub.core.decision import Decision, NodeAnswer, combine, decide
from multijhub.core.placement import NodeLoad

from .config import NodeConfig
from .hubapi import HubApi, HubApiError
from .probe import ProbeError, SshProbe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    """The decision, each node's memory as seen now, and how long it took."""

    decision: Decision
    loads: tuple[NodeLoad, ...]  # healthy = both the hub API and the probe answered
    answers: tuple[NodeAnswer, ...]
    elapsed: float


def _outcome(fut: Future[Any] | None, what: str, deadline: float) -> tuple[bool, Any, str]:
    """(ok, value, error) of one finished or unfinished query."""
    if fut is None or not fut.done():
        if fut is not None:
            fut.cancel()
        return False, None, f"{what}: no answer within {deadline:g} s"
    exc = fut.exception()
    if exc is None:
        return True, fut.result(), ""
    if isinstance(exc, (HubApiError, ProbeError)):
        return False, None, f"{what}: {exc}"
    log.error("%s failed unexpectedly: %r", what, exc)
    return False, None, f"{what}: {type(exc).__name__}"


def parse_units(report: Mapping[str, Any]) -> tuple[UnitMemory, ...]:
    """The node's servers' memory from a probe answer's ``units`` (absent in older probes: none).

    An entry that is not a well-formed unit is skipped (and logged): a bad entry must not
    stop a login.
    """
    raw = report.get("units")
    if not isinstance(raw, list):
        return ()
    units = []
    for item in raw:
        try:
            unit = UnitMemory(
                user=str(item["user"]),
                current=int(item["current"]),
                peak=int(item["peak"]),
                oom_kills=int(item.get("oom_kills", 0)),
                session=str(item["session"]),
                cgroup=int(item.get("cgroup", 0)),
            )
        except (TypeError, KeyError, ValueError, AttributeError):
            log.warning("probe answer with a malformed unit entry skipped: %.200r", item)
            continue
        if min(unit.current, unit.peak, unit.oom_kills) < 0:
            log.warning("probe answer with a negative unit value skipped: %.200r", item)
            continue
        units.append(unit)
    return tuple(units)


class Resolver:
    """Queries all nodes through a shared thread pool; one overall deadline."""

    def __init__(
        self,
        nodes: Sequence[NodeConfig],
        apis: Mapping[str, HubApi],
        probe: SshProbe,
        *,
        deadline: float = 2.0,
        executor: ThreadPoolExecutor | None = None,
        workers: int = 0,
    ) -> None:
        self.nodes = tuple(nodes)
        self.apis = dict(apis)
        self.probe = probe
        self.deadline = deadline
        self.executor = executor or ThreadPoolExecutor(
            max_workers=workers or max(8, 8 * len(self.nodes)),
            thread_name_prefix="multijhub-query",
        )

    def warm_up(self) -> None:
        """Start setting up every node's shared ssh connection; does not wait."""
        self.probe.warm_up(node.ssh_host for node in self.nodes)

    def resolve(self, username: str) -> Resolution:
        """Where ``username``'s server runs; ``username`` must be validated."""
        start = time.monotonic()
        end = start + self.deadline
        futures: dict[str, tuple[Future[Any], Future[Any]]] = {}
        for node in self.nodes:
            api = self.apis[node.name]
            futures[node.name] = (
                self.executor.submit(api.user_server, username, self.deadline),
                self.executor.submit(self.probe.report, node.ssh_host, username, self.deadline),
            )
        pending = [f for pair in futures.values() for f in pair]
        wait(pending, timeout=max(0.0, end - time.monotonic()))
        answers: list[NodeAnswer] = []
        loads: list[NodeLoad] = []
        for node in self.nodes:
            hub_fut, probe_fut = futures[node.name]
            hub = _outcome(hub_fut, "hub API", self.deadline)
            probe = _outcome(probe_fut, "probe", self.deadline)
            answer, both = combine(node.name, hub, probe)
            answers.append(answer)
            report = answer.report or {}
            loads.append(
                NodeLoad(
                    name=node.name,
                    mem_available=int(report.get("mem_available", 0)),
                    mem_total=int(report.get("mem_total", 0)),
                    healthy=both,
                    units=parse_units(report),
                )
            )
        decision = decide(username, answers)
        for node, problem in sorted(decision.problems.items()):
            if problem.get("runtime_error"):
                # The node still answered (its /proc and hub API), but the service group's listing
                # grant on this user's runtime directory is broken (e.g. chmod 700 on the home).
                log.warning(
                    "%s on %s: %s; the service group's grant is broken: "
                    "ansible-playbook site.yml --limit home restores it",
                    username,
                    node,
                    problem["runtime_error"],
                )
        return Resolution(
            decision=decision,
            loads=tuple(loads),
            answers=tuple(answers),
            elapsed=time.monotonic() - start,
        )

    def close(self) -> None:
        """Stop the pool and close the HTTP sessions."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.probe.close()
        for api in self.apis.values():
            api.close()
