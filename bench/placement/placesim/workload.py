"""The workload: a daily arrival curve, session lengths and heavy-tailed memory footprints.

Everything is drawn from ``random.Random(seed)`` only, so a seed gives the same
trace to every policy and on every run. Times are minutes since the start of the
trace; the trace covers ``days`` days (the first ones warm users' previous nodes up).
"""

from __future__ import annotations

import functools
import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MINUTES_PER_DAY = 24 * 60

# Relative arrival rate (1.0 = peak) at these hours; linear in between, the same every day.
ARRIVAL_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.02),
    (6.0, 0.02),
    (7.0, 0.15),  # morning ramp
    (8.0, 0.60),
    (9.0, 1.00),
    (11.5, 1.00),
    (12.0, 0.55),  # lunch dip
    (13.0, 0.45),
    (14.0, 0.85),  # afternoon
    (16.0, 0.80),
    (17.0, 0.50),  # evening tail
    (19.0, 0.25),
    (22.0, 0.10),
    (24.0, 0.02),
)


def arrival_shape(minute: float) -> float:
    """Relative arrival rate (0..1) at ``minute`` of the trace."""
    hour = (minute % MINUTES_PER_DAY) / 60.0
    for (h0, r0), (h1, r1) in zip(ARRIVAL_CURVE, ARRIVAL_CURVE[1:]):
        if h0 <= hour <= h1:
            return r0 + (r1 - r0) * (hour - h0) / (h1 - h0)
    return ARRIVAL_CURVE[-1][1]


def mean_shape() -> float:
    """Mean of ``arrival_shape`` over a day (exact for the piecewise-linear curve)."""
    area = sum((h1 - h0) * (r0 + r1) / 2 for (h0, r0), (h1, r1) in zip(ARRIVAL_CURVE, ARRIVAL_CURVE[1:]))
    return area / 24.0


@dataclass(frozen=True)
class WorkloadParams:
    """The documented distributions (see bench/README.md)."""

    days: int = 2  # day 0 is warm-up, the last day is measured
    # session length: lognormal, median and sigma of ln, clipped (minutes)
    session_median_min: float = 75.0
    session_sigma: float = 0.8
    session_min_min: float = 5.0
    session_max_min: float = 600.0
    # memory footprint (GiB) = user scale x session factor, both lognormal, clipped
    user_median_gib: float = 1.0
    user_sigma: float = 0.9
    session_factor_sigma: float = 0.3
    footprint_min_gib: float = 0.2
    footprint_max_gib: float = 32.0
    # memory grows linearly from initial to the footprint over the ramp (minutes)
    initial_gib: float = 0.15
    ramp_min_min: float = 10.0
    ramp_max_min: float = 90.0
    # how many users: expected sessions per day / sessions_per_user
    sessions_per_user: float = 2.5


@dataclass(frozen=True)
class Session:
    """One server's life: placed at ``arrival``, counted in memory from minute ``start``."""

    user: str
    arrival: float  # minutes since the start of the trace
    start: int  # first minute its memory counts (the minute after the arrival)
    minutes: int  # how long it runs
    footprint: float  # GiB reached at the end of the ramp
    ramp: float  # minutes
    initial: float  # GiB right after the start

    def curve(self, limit: int) -> np.ndarray:
        """Memory (GiB) per minute from ``start``, cut at minute ``limit`` of the trace."""
        count = max(0, min(self.minutes, limit - self.start))
        k = np.arange(1, count + 1, dtype=float)
        grown = np.minimum(1.0, k / self.ramp)
        return self.initial + (self.footprint - self.initial) * grown


@dataclass(frozen=True)
class Trace:
    """Sessions in arrival order over ``minutes`` minutes."""

    seed: int
    peak_rate: float  # arrivals per minute at the peak of the curve
    users: int
    minutes: int
    sessions: tuple[Session, ...] = field(repr=False)

    def total_usage(self) -> np.ndarray:
        """Memory of all sessions (GiB) per minute; the same under every policy."""
        total = np.zeros(self.minutes)
        for s in self.sessions:
            curve = s.curve(self.minutes)
            total[s.start : s.start + len(curve)] += curve
        return total


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def user_count(peak_rate: float, params: WorkloadParams) -> int:
    """Users in the population: expected sessions per day / sessions per user."""
    per_day = peak_rate * mean_shape() * MINUTES_PER_DAY
    return max(1, round(per_day / params.sessions_per_user))


@functools.lru_cache(maxsize=8)
def _cumulative_shape(minutes: int) -> np.ndarray:
    """Integral of ``arrival_shape`` from 0 to each whole minute (trapezoids)."""
    shape = np.array([arrival_shape(m) for m in range(minutes + 1)])
    return np.concatenate(([0.0], np.cumsum((shape[1:] + shape[:-1]) / 2)))


def arrival_times(rng: random.Random, peak_rate: float, minutes: int) -> list[float]:
    """A non-homogeneous Poisson process with rate ``peak_rate * arrival_shape``.

    Drawn by time rescaling: unit-rate points mapped through the inverse of the
    cumulative rate, so the same seed at a higher rate gives the same arrivals
    closer together (which keeps the load calibration smooth).
    """
    cumulative = _cumulative_shape(minutes)
    grid = np.arange(minutes + 1, dtype=float)
    end = cumulative[-1] * peak_rate
    points: list[float] = []
    e = rng.expovariate(1.0)
    while e < end:
        points.append(e / peak_rate)
        e += rng.expovariate(1.0)
    return np.interp(points, cumulative, grid).tolist()


def make_trace(
    seed: int, peak_rate: float, params: WorkloadParams | None = None, users: int | None = None
) -> Trace:
    """Draw a trace: who arrives when, for how long, with how much memory.

    Separate random streams for arrivals, users' scales, sessions' sizes and
    the choice of user keep the k-th draw of each the same whatever the rate.
    """
    params = params or WorkloadParams()
    streams = {k: random.Random(f"placesim:{seed}:{k}") for k in ("arrivals", "users", "sessions", "who")}
    minutes = params.days * MINUTES_PER_DAY
    n_users = users or user_count(peak_rate, params)
    names = [f"user{i:04d}" for i in range(n_users)]
    scale = {u: _lognormal(streams["users"], params.user_median_gib, params.user_sigma) for u in names}
    idle = list(names)
    busy: list[tuple[float, str]] = []  # heap of (end, user)
    sessions: list[Session] = []
    draw = streams["sessions"]
    for t in arrival_times(streams["arrivals"], peak_rate, minutes):
        length = _clip(
            _lognormal(draw, params.session_median_min, params.session_sigma),
            params.session_min_min,
            params.session_max_min,
        )
        factor = _lognormal(draw, 1.0, params.session_factor_sigma)
        ramp = draw.uniform(params.ramp_min_min, params.ramp_max_min)
        while busy and busy[0][0] <= t:
            idle.append(heapq.heappop(busy)[1])
        if not idle:
            continue  # everybody is working already
        pick = streams["who"].randrange(len(idle))
        user = idle[pick]
        idle[pick] = idle[-1]
        idle.pop()
        heapq.heappush(busy, (t + length, user))
        footprint = _clip(scale[user] * factor, params.footprint_min_gib, params.footprint_max_gib)
        sessions.append(
            Session(
                user=user,
                arrival=t,
                start=math.floor(t) + 1,
                minutes=max(1, round(length)),
                footprint=footprint,
                ramp=ramp,
                initial=min(params.initial_gib, footprint),
            )
        )
    return Trace(seed=seed, peak_rate=peak_rate, users=n_users, minutes=minutes, sessions=tuple(sessions))


def working_day(minutes: int) -> slice:
    """09:00-17:00 of the last day of a trace of ``minutes`` minutes."""
    day0 = minutes - MINUTES_PER_DAY
    return slice(day0 + 9 * 60, day0 + 17 * 60)


def working_day_load(trace: Trace, nodes: int, node_mem_gib: float, base_gib: float) -> float:
    """Mean fraction of all nodes' memory in use (base included) over the working day."""
    total = trace.total_usage()[working_day(trace.minutes)]
    return float(np.mean(total + nodes * base_gib)) / (nodes * node_mem_gib)


def first_guess(
    nodes: int, node_mem_gib: float, base_gib: float, target: float, params: WorkloadParams
) -> float:
    """Peak arrival rate from the distributions' means (Little's law), before calibration."""
    mean_mem = params.user_median_gib * math.exp((params.user_sigma**2 + params.session_factor_sigma**2) / 2)
    mean_len = params.session_median_min * math.exp(params.session_sigma**2 / 2)
    user_target = max(0.0, target * nodes * node_mem_gib - nodes * base_gib)
    day_shape = float(np.mean([arrival_shape(m) for m in range(8 * 60, 17 * 60)]))
    return user_target / (mean_mem * mean_len * day_shape)


CALIBRATION_SEEDS = tuple(range(1_000_000, 1_000_016))  # apart from any study seed


def calibrate_peak_rate(
    nodes: int,
    node_mem_gib: float,
    base_gib: float,
    target: float,
    params: WorkloadParams | None = None,
    *,
    seeds: Sequence[int] = CALIBRATION_SEEDS,
    rounds: int = 4,
) -> float:
    """The peak arrival rate whose working-day load is ``target`` on average over ``seeds``.

    The mean over many traces is calibrated, not each trace: with heavy-tailed
    users a single trace's load is not a smooth function of the rate (a few
    big users more or less move it by 10 %), so each seed keeps its own
    load, reported beside the results. Load is close to proportional to the
    rate (Little's law): a few fixed-point rounds ``rate *= target / load``;
    the rate measured nearest the target is kept.
    """
    params = params or WorkloadParams()
    base = base_gib / node_mem_gib
    rate = first_guess(nodes, node_mem_gib, base_gib, target, params)
    best = (math.inf, rate)
    for _ in range(rounds):
        loads = [working_day_load(make_trace(s, rate, params), nodes, node_mem_gib, base_gib) for s in seeds]
        load = float(np.mean(loads))
        best = min(best, (abs(load - target), rate))
        if load <= base:
            break
        rate *= (target - base) / (load - base)
    return best[1]
