"""The resolver: both sources per node, one overall deadline, the core's decision."""

from __future__ import annotations

import time

import pytest
from frontdoor_env import GiB, evidence


def resolve(env, user: str = "juser1"):
    return env.resolver.resolve(user)


def test_not_running_everyone_answered(env):
    res = resolve(env)
    assert res.decision.state == "not_running"
    assert [load.healthy for load in res.loads] == [True, True]
    assert [load.mem_available for load in res.loads] == [8 * GiB, 8 * GiB]


def test_running_from_hub_api(env):
    env.hubs.set_server("hub1", "juser1")
    res = resolve(env)
    assert (res.decision.state, res.decision.nodes) == ("running", ["hub1"])


def test_running_from_evidence(env):
    env.probe.evidence[("hub2", "juser1")] = [evidence(10)]
    res = resolve(env)
    assert (res.decision.state, res.decision.nodes) == ("running", ["hub2"])


def test_several(env):
    env.hubs.set_server("hub1", "juser1")
    env.hubs.set_server("hub2", "juser1")
    assert resolve(env).decision.state == "several"


@pytest.mark.parametrize(
    ("hub_mode", "probe_mode", "error"),
    [
        ("ok", "hang", "probe: no answer within"),
        ("ok", "fail", "probe: ssh failed"),
        ("ok", "garbage", "probe: probe exit 0 without JSON"),
        ("ok", "refuse", "probe refused"),
        ("error", "ok", "hub API: hub API answered HTTP 500"),
        ("noscope", "ok", "lacks scope read:servers"),
        ("noservers", "ok", "no servers"),
        ("blackhole", "ok", "hub API"),
    ],
)
def test_one_failing_source_makes_the_node_unknown(env, hub_mode, probe_mode, error):
    env.hubs.set_user("hub2", "juser1")
    env.hubs.mode["hub2"] = hub_mode
    env.probe.mode["hub2"] = probe_mode
    start = time.monotonic()
    res = resolve(env)
    assert time.monotonic() - start < env.config.deadline + 0.5
    assert res.decision.state == "unknown"
    assert list(res.decision.unanswered) == ["hub2"]
    assert error in res.decision.unanswered["hub2"]
    assert [load.healthy for load in res.loads] == [True, False]


def test_hub_positive_is_enough_when_the_probe_fails(env):
    env.hubs.set_server("hub2", "juser1")
    env.probe.mode["hub2"] = "fail"
    res = resolve(env)
    assert (res.decision.state, res.decision.nodes) == ("running", ["hub2"])
    assert res.loads[1].healthy is False


def test_evidence_positive_is_enough_when_the_hub_fails(env):
    env.hubs.mode["hub2"] = "error"
    env.probe.evidence[("hub2", "juser1")] = [evidence(5)]
    assert resolve(env).decision.nodes == ["hub2"]


def test_all_nodes_are_asked_in_parallel_under_one_deadline(env):
    for node in ("hub1", "hub2"):
        env.probe.mode[node] = "hang"
    start = time.monotonic()
    res = resolve(env)
    elapsed = time.monotonic() - start
    assert res.decision.state == "unknown"
    assert sorted(res.decision.unanswered) == ["hub1", "hub2"]
    assert elapsed < env.config.deadline * 1.5  # not one deadline per node


def test_stale_files_are_reported_only_when_everyone_answered(env):
    for node in ("hub1", "hub2"):
        env.probe.evidence[(node, "juser1")] = [evidence(31, verdict="not-here")]
    res = resolve(env)
    assert res.decision.state == "not_running"
    assert res.decision.stale == ["jpserver-31.json"]


def test_the_probe_is_asked_with_the_configured_host(env):
    resolve(env, "juser2")
    hosts = sorted(argv[-2] for argv in env.probe.calls)
    assert hosts == ["hub1", "hub2"]
    assert {argv[-1] for argv in env.probe.calls} == {"juser2"}
