"""The placement study: deterministic, drives the real policies, counts what it claims."""

from __future__ import annotations

import json

import multijhub.core.placement as core
import numpy as np
import pytest
import simulate
from placesim import policies as pol
from placesim.engine import Cluster, Observer, measure, replay
from placesim.study import StudyConfig, run_seed
from placesim.workload import (
    MINUTES_PER_DAY,
    Session,
    Trace,
    WorkloadParams,
    calibrate_peak_rate,
    make_trace,
    working_day_load,
)

from multijhub.frontdoor import placing

SMALL = Cluster(nodes=2, node_mem_gib=16.0, base_gib=1.0)


def session(user: str, minute: float, gib: float, minutes: int = 10) -> Session:
    """A server at full size from its first minute."""
    return Session(user, minute, int(minute) + 1, minutes, gib, 1.0, gib)


def one_day(*sessions: Session) -> Trace:
    return Trace(seed=0, peak_rate=0.0, users=0, minutes=MINUTES_PER_DAY, sessions=tuple(sessions))


def test_trace_is_deterministic_per_seed():
    a, b, c = make_trace(3, 0.3), make_trace(3, 0.3), make_trace(4, 0.3)
    assert a.sessions == b.sessions
    assert a.sessions != c.sessions
    assert len(a.sessions) > 100
    assert all(x.arrival <= y.arrival for x, y in zip(a.sessions, a.sessions[1:]))


def test_footprints_are_heavy_tailed():
    sizes = np.array([s.footprint for seed in range(3) for s in make_trace(seed, 1.0).sessions])
    assert 0.4 < np.mean((sizes >= 0.5) & (sizes <= 2.0)) < 0.7  # about half between 0.5 and 2 GiB
    assert 0.005 < np.mean(sizes >= 8.0) < 0.05  # a few 8 GiB or more


def test_every_policy_same_results_for_the_same_seed():
    config = StudyConfig(seeds=(5,), cluster=SMALL, headroom_sweep=(0.5,), running_sweep=(0.9,))
    first, second = run_seed(config, 0.15, 5), run_seed(config, 0.15, 5)
    assert [r.policy for r in first.runs] == [
        "random",
        "round-robin",
        "multijhub before (fixed sizes)",
        "multijhub",
        "oracle (reference)",
        "multijhub, sticky_headroom=0.5",
        "multijhub, learned_running_quantile=0.9",
    ]
    for a, b in zip(first.runs, second.runs):
        assert a.metrics == b.metrics
        assert np.array_equal(a.used, b.used)


class Counting:
    name = "counting"

    def __init__(self, inner: pol.Policy) -> None:
        self.inner, self.calls = inner, []
        self.learns = getattr(inner, "learns", False)

    def choose(self, user, minute, nodes):
        index = self.inner.choose(user, minute, nodes)
        self.calls.append((user, index))
        return index

    def close(self) -> None:
        self.inner.close()


def test_policies_are_called_once_per_server():
    trace = make_trace(1, 0.1, WorkloadParams(days=1))
    counting = Counting(pol.RoundRobinPolicy())
    replay(trace, counting, SMALL)
    assert len(counting.calls) == len(trace.sessions)
    assert [i for _, i in counting.calls[:4]] == [0, 1, 0, 1]


def test_oom_counter_counts_an_overloaded_node():
    # round-robin: 20 GiB on hub1 (16 GiB, 1 GiB base) for 10 minutes, 2 GiB on hub2
    trace = one_day(session("big", 100.0, 20.0), session("small", 100.5, 2.0))
    m = replay(trace, pol.RoundRobinPolicy(), SMALL).metrics
    assert (m.oom_moments, m.oom_minutes) == (10, 10)
    assert m.peak_fullest == pytest.approx(21.0)
    assert m.peak_ratio == pytest.approx(21.0 / ((21.0 + 3.0) / 2))


def test_oom_counter_counts_node_minutes_and_minutes():
    used = np.array([[17.0, 17.0, 1.0], [17.0, 1.0, 1.0]])
    m = measure(used, 16.0, returning=4, kept=3)
    assert (m.oom_moments, m.oom_minutes) == (3, 2)
    assert m.kept_fraction == 0.75


def test_observer_reports_running_servers_with_their_peak():
    observer = Observer(2)
    first = Session("alice", 0.0, 1, 10, 6.0, 4.0, 2.0)  # 2 GiB growing to 6 GiB over 4 minutes
    observer.add(0, 7, first, first.curve(MINUTES_PER_DAY))
    assert observer.units(0) == [(), ()]  # placed, not started: not visible yet
    (unit,), () = observer.units(2)
    assert (unit.user, unit.current / pol.GiB, unit.peak / pol.GiB, unit.session) == ("alice", 4.0, 4.0, "7")
    (unit,), () = observer.units(9)
    assert unit.peak / pol.GiB == 6.0
    assert observer.units(11) == [(), ()]  # ended: no longer reported


def test_learned_sizes_avoid_the_node_of_a_known_big_user():
    # "big" is seen at 12 GiB when "other" logs in; at 9:00 "big" starts small again on hub1
    # (both nodes empty: the first on a tie), and "next" goes to hub2 although hub1 shows less.
    trace = one_day(
        session("big", 10.0, 12.0, minutes=20),
        session("other", 20.0, 0.5),
        Session("big", 540.0, 541, 120, 12.0, 60.0, 0.15),
        session("next", 541.5, 1.0),
    )
    learned = pol.MultijhubPolicy(mem_per_server=pol.GiB // 5, sticky_headroom=1.0)
    counting = Counting(learned)
    replay(trace, counting, SMALL)
    assert [i for _, i in counting.calls] == [0, 1, 0, 1]
    # at 9:00 "big" shows 0.15 GiB on hub1 but counts at the 12 GiB it peaked at before
    assert learned.store.session_peaks(["big"])["big"][-1].peak == 12 * pol.GiB


def test_no_oom_within_memory():
    m = replay(one_day(session("a", 10.0, 14.0)), pol.RoundRobinPolicy(), SMALL).metrics
    assert m.oom_moments == 0


def test_multijhub_policy_is_the_cores_choose_node(monkeypatch):
    assert placing.choose_node is core.choose_node  # the front door imports the core's function
    calls = []

    def spy(nodes, **kwargs):
        calls.append((list(nodes), kwargs))
        return core.choose_node(nodes, **kwargs)

    monkeypatch.setattr(placing, "choose_node", spy)
    trace = one_day(
        session("alice", 10.0, 6.0),
        session("bob", 10.5, 1.0),  # alice's placement is 30 s old: pending on her node
        session("alice", 60.0, 6.0),  # returns after logging out
    )
    policy = pol.MultijhubPolicy(mem_per_server=2 * pol.GiB, learns=False)
    try:
        run = replay(trace, policy, SMALL)
    finally:
        policy.close()
    assert len(calls) == 3
    assert all(kw["need"] == 2 * pol.GiB for _, kw in calls)
    assert all(kw["sticky_headroom"] == pol.DEFAULTS.sticky_headroom for _, kw in calls)
    assert [kw["previous"] for _, kw in calls] == [None, None, "hub1"]
    assert {n.name: n.pending for n in calls[1][0]} == {"hub1": 2 * pol.GiB, "hub2": 0}
    assert run.metrics.returning == run.metrics.kept == 1
    calls.clear()
    learned = pol.MultijhubPolicy(mem_per_server=2 * pol.GiB)  # the same code, told the servers' memory
    seen = one_day(*trace.sessions[:2], session("cy", 15.0, 1.0), trace.sessions[2])  # cy sees alice run
    try:
        replay(seen, learned, SMALL)
    finally:
        learned.close()
    assert [kw["need"] for _, kw in calls] == [2 * pol.GiB] * 3 + [6 * pol.GiB]  # alice peaked at 6


def test_multijhub_policy_uses_what_choose_node_answers(monkeypatch):
    monkeypatch.setattr(placing, "choose_node", lambda nodes, **kw: "hub2")
    policy = pol.MultijhubPolicy(mem_per_server=0)
    try:
        run = replay(one_day(session("a", 1.0, 3.0), session("b", 2.0, 3.0)), policy, SMALL)
    finally:
        policy.close()
    assert run.used[0].max() == 1.0  # only the base on hub1
    assert run.used[1].max() == pytest.approx(7.0)


def test_calibration_reaches_the_target_load():
    seeds = (11, 12, 13, 14)
    rate = calibrate_peak_rate(2, 16.0, 1.0, 0.5, seeds=seeds, rounds=3)
    loads = [working_day_load(make_trace(s, rate), 2, 16.0, 1.0) for s in seeds]
    assert np.mean(loads) == pytest.approx(0.5, abs=0.03)


def test_command_line_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--seeds", "2", "--nodes", "2", "--node-mem-gib", "16", "--jobs", "1"]
    argv += ["--headroom-sweep", "", "--running-sweep", ""]
    assert simulate.main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| multijhub |" in printed
    assert "measured working-day load" in printed
    doc = json.loads((out / "placement.json").read_text())
    assert set(doc["policies"]) == {
        "random",
        "round-robin",
        "multijhub before (fixed sizes)",
        "multijhub",
        "oracle (reference)",
    }
    assert len(doc["policies"]["multijhub"]["per_seed"]) == 2
    assert "placement.png" in (out / "placement.md").read_text()
    assert (out / "placement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tradeoff_plot_over_sticky_headroom_and_running_quantile(tmp_path):
    out = tmp_path / "out"
    argv = ["--seeds", "1", "--nodes", "2", "--node-mem-gib", "16", "--jobs", "1"]
    argv += ["--headroom-sweep", "0.5", "--running-sweep", "0.9"]
    assert simulate.main([*argv, "--out", str(out)]) == 0
    doc = json.loads((out / "placement.json").read_text())
    config = StudyConfig(headroom_sweep=(0.5,), running_sweep=(0.9,))
    points = simulate.tradeoff_points(doc["policies"], config)
    assert [p[0] for p in points] == [
        "defaults: sticky_headroom=0, learned_running_quantile=0.7",
        "sticky_headroom=0.5",
        "learned_running_quantile=0.9",
        "multijhub before (fixed sizes)",
        "random",
        "round-robin",
    ]
    assert "tradeoff.svg" in (out / "placement.md").read_text()
    svg = (out / "tradeoff.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "multijhub over learned_running_quantile" in svg
    again = tmp_path / "again.svg"
    simulate.plot_tradeoff(points, again, (0.9, 1.15))
    assert again.read_text() == svg  # no date, fixed ids: the same numbers give the same file
