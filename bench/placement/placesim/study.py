"""Run every policy on every seed's trace and summarise over seeds (medians)."""

from __future__ import annotations

import math
import multiprocessing
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from .engine import Cluster, Run, replay
from .policies import BEFORE, DEFAULTS, MULTIJHUB, GiB, make_policies, running_label, sweep_label
from .workload import WorkloadParams, calibrate_peak_rate, make_trace, working_day_load

TARGET_RATIO = 1.15
TARGET_KEPT = 0.90
MAIN = ("random", "round-robin", BEFORE, MULTIJHUB, "oracle (reference)")


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study depends on; a study is a function of this."""

    seeds: tuple[int, ...] = tuple(range(11))
    cluster: Cluster = field(default_factory=Cluster)
    target_load: float = 0.55
    mem_per_server_gib: float = 2.0  # the role's default jupyterhub_mem_limit
    pending_seconds: float = DEFAULTS.pending_seconds
    sticky_headroom: float = DEFAULTS.sticky_headroom
    running_quantile: float = DEFAULTS.learned_running_quantile
    headroom_sweep: tuple[float, ...] = (0.05, 0.1, 0.2, 1.0)
    running_sweep: tuple[float, ...] = (0.5, 0.6, 0.8, 0.9)
    workload: WorkloadParams = field(default_factory=WorkloadParams)


@dataclass(frozen=True)
class SeedResult:
    """One seed: its trace's load and every policy's replay."""

    seed: int
    users: int
    sessions: int
    load: float  # working-day mean fraction of memory in use
    peak_load: float  # the ideal's peak as a fraction of memory (the same under every policy)
    runs: tuple[Run, ...]


def run_seed(config: StudyConfig, peak_rate: float, seed: int) -> SeedResult:
    """Every policy on the trace of ``seed``."""
    trace = make_trace(seed, peak_rate, config.workload)
    policies = make_policies(
        seed,
        mem_per_server=int(config.mem_per_server_gib * GiB),
        pending_seconds=config.pending_seconds,
        sticky_headroom=config.sticky_headroom,
        running_quantile=config.running_quantile,
        headroom_sweep=config.headroom_sweep,
        running_sweep=config.running_sweep,
    )
    runs = []
    for policy in policies:
        try:
            runs.append(replay(trace, policy, config.cluster))
        finally:
            policy.close()
    c = config.cluster
    return SeedResult(
        seed=seed,
        users=trace.users,
        sessions=len(trace.sessions),
        load=working_day_load(trace, c.nodes, c.node_mem_gib, c.base_gib),
        peak_load=runs[0].metrics.peak_ideal / c.node_mem_gib,
        runs=tuple(runs),
    )


@dataclass(frozen=True)
class Study:
    """All seeds of one configuration."""

    config: StudyConfig
    peak_rate: float  # calibrated arrivals per minute at the peak of the curve
    results: tuple[SeedResult, ...]

    def policies(self) -> list[str]:
        return [r.policy for r in self.results[0].runs]

    def metrics(self, policy: str) -> list[Any]:
        return [next(r.metrics for r in s.runs if r.policy == policy) for s in self.results]


def run_study(config: StudyConfig, jobs: int = 1) -> Study:
    """Calibrate the arrival rate, then replay every seed (in ``jobs`` processes)."""
    c = config.cluster
    rate = calibrate_peak_rate(c.nodes, c.node_mem_gib, c.base_gib, config.target_load, config.workload)
    if jobs > 1 and len(config.seeds) > 1:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            n = len(config.seeds)
            results = list(pool.map(run_seed, [config] * n, [rate] * n, config.seeds))
    else:
        results = [run_seed(config, rate, s) for s in config.seeds]
    return Study(config, rate, tuple(results))


def _median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else float("nan")


def summarize(study: Study) -> dict[str, Any]:
    """Per policy: medians over seeds (and ranges), per-seed values, and the target check."""
    policies: dict[str, Any] = {}
    for name in study.policies():
        ms = study.metrics(name)
        policies[name] = {
            "peak_ratio": _median([m.peak_ratio for m in ms]),
            "peak_ratio_range": [min(m.peak_ratio for m in ms), max(m.peak_ratio for m in ms)],
            "max_imbalance": _median([m.max_imbalance for m in ms]),
            "oom_moments": _median([m.oom_moments for m in ms]),
            "oom_moments_total": sum(m.oom_moments for m in ms),
            "seeds_with_oom": sum(m.oom_moments > 0 for m in ms),
            "kept_fraction": _median([m.kept_fraction for m in ms]),
            "per_seed": [{"seed": s.seed, **asdict(m)} for s, m in zip(study.results, ms)],
        }
    loads = [s.load for s in study.results]
    return {
        "peak_rate_per_min": study.peak_rate,
        "users": study.results[0].users,
        "load": {
            "target": study.config.target_load,
            "mean": statistics.fmean(loads),
            "per_seed": {str(s.seed): s.load for s in study.results},
            "peak_ideal_fraction": {str(s.seed): s.peak_load for s in study.results},
        },
        "policies": policies,
        "target": target_check(policies),
        "representative_seed": representative_seed(study),
    }


def target_check(policies: dict[str, Any]) -> dict[str, Any]:
    """The issue's target for multijhub's policy, each part on its own."""
    ours, rnd = policies[MULTIJHUB], policies["random"]
    check = {
        "peak_within_target": ours["peak_ratio"] <= TARGET_RATIO,
        "no_oom_on_any_seed": ours["seeds_with_oom"] == 0,
        "random_overloads": rnd["seeds_with_oom"] > 0,
        "returning_kept": ours["kept_fraction"] >= TARGET_KEPT,
    }
    check["met"] = all(check.values())
    return check


def representative_seed(study: Study) -> int:
    """The seed whose multijhub peak ratio is nearest the median (the smaller seed on a tie)."""
    ms = study.metrics("multijhub")
    mid = _median([m.peak_ratio for m in ms])
    return min(zip(study.results, ms), key=lambda p: (abs(p[1].peak_ratio - mid), p[0].seed))[0].seed


def sweep_rows(study: Study) -> list[str]:
    """Names of the sensitivity rows, in order: over sticky_headroom, then learned_running_quantile."""
    config = study.config
    return [sweep_label(h) for h in config.headroom_sweep] + [running_label(q) for q in config.running_sweep]
