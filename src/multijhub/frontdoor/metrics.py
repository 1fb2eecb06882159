"""Prometheus metrics of one front door app (prometheus_client).

Each app has its own registry. Under gunicorn with several workers, set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, cleaned at service start) before the
workers start: the values then live in files there and ``/metrics`` adds up every
worker's (gauges: the most recent value). Without it, a plain in-process registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from multijhub.core.placement import NodeLoad

PREFIX = "multijhub_frontdoor"
FAILURE_KINDS = (
    "login_refused",
    "throttled",
    "account_refused",
    "account_unchecked",
    "unknown",
    "several",
    "no_node",
    "node_unanswered",
    "internal",
)
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


def multiprocess_dir() -> str | None:
    """The multiprocess directory from the environment, if any."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The front door's counters, gauges and the resolution latency histogram."""

    def __init__(self, nodes: Iterable[str] = (), *, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        # In multiprocess mode the values go to files; nothing registers in-process.
        self.registry: CollectorRegistry | None = None if multiproc_dir else CollectorRegistry()
        reg = self.registry
        self.resolution_seconds = Histogram(
            f"{PREFIX}_resolution_seconds",
            "Time to find where a user's server runs (all nodes asked in parallel).",
            buckets=_BUCKETS,
            registry=reg,
        )
        self.logins = Counter(f"{PREFIX}_logins", "Successful password logins.", registry=reg)
        self.placements = Counter(
            f"{PREFIX}_placements", "New servers placed, per node.", ["node"], registry=reg
        )
        self.sent = Counter(
            f"{PREFIX}_handoffs",
            "Users sent to a hub (redirect or login proof), per node.",
            ["node"],
            registry=reg,
        )
        self.failures = Counter(f"{PREFIX}_failures", "Failures, by kind.", ["kind"], registry=reg)
        self.nodes_up = Gauge(
            f"{PREFIX}_nodes_up",
            "Nodes whose hub API and probe both answered in the last resolution.",
            registry=reg,
            multiprocess_mode="mostrecent",
        )
        self.node_up = Gauge(
            f"{PREFIX}_node_up",
            "1 if the node answered in the last resolution.",
            ["node"],
            registry=reg,
            multiprocess_mode="mostrecent",
        )
        self.mem_available = Gauge(
            f"{PREFIX}_node_mem_available_bytes",
            "MemAvailable of the node at the last resolution.",
            ["node"],
            registry=reg,
            multiprocess_mode="mostrecent",
        )
        self.mem_total = Gauge(
            f"{PREFIX}_node_mem_total_bytes",
            "MemTotal of the node.",
            ["node"],
            registry=reg,
            multiprocess_mode="mostrecent",
        )
        self.oom_kills = Counter(
            f"{PREFIX}_oom_kills",
            "Processes of users' servers killed by the kernel for their memory limit (cgroup), per node.",
            ["node"],
            registry=reg,
        )
        for kind in FAILURE_KINDS:  # every kind shows, at 0, from the start
            self.failures.labels(kind=kind)
        for node in nodes:
            self.placements.labels(node=node)
            self.sent.labels(node=node)
            self.oom_kills.labels(node=node)

    def failure(self, kind: str) -> None:
        """Count a failure of a known kind."""
        self.failures.labels(kind=kind if kind in FAILURE_KINDS else "internal").inc()

    def observe_loads(self, loads: Iterable[NodeLoad]) -> None:
        """Record node health and memory as just seen."""
        up = 0
        for load in loads:
            self.node_up.labels(node=load.name).set(1 if load.healthy else 0)
            if load.healthy:
                up += 1
                self.mem_available.labels(node=load.name).set(load.mem_available)
                self.mem_total.labels(node=load.name).set(load.mem_total)
            else:
                self.failure("node_unanswered")
        self.nodes_up.set(up)

    def collect_registry(self) -> CollectorRegistry:
        """What ``/metrics`` renders."""
        if self.registry is not None:
            return self.registry
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
        return registry

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.collect_registry()), CONTENT_TYPE_LATEST
