"""The probe's shared ssh connections: set up in the background, never by a request.

The stand-in ``ssh`` of fake_ssh.py (run through the real ``run_command``) acts like
OpenSSH for what matters here: control masters, plain connections when the socket is
taken, probes through a live master or else directly.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import pytest
from fake_ssh import settings
from multijhub.core.decision import NodeAnswer

from multijhub.frontdoor import probe as probe_mod
from multijhub.frontdoor.config import NodeConfig, SshConfig
from multijhub.frontdoor.probe import ProbeError, SshProbe
from multijhub.frontdoor.resolver import Resolver


def alive(path: str) -> bool:
    return probe_mod._master_alive(path)


def test_timed_out_request_leaves_the_master_setting_up(fake):
    """(1) The request's deadline ends its probe, not the master being set up."""
    fake.configure(master_delay={"hub1": 1.0})
    probe = SshProbe(settings(fake))
    start = time.monotonic()
    with pytest.raises(ProbeError, match="being set up"):
        probe.report("hub1", "juser1", 0.3)
    assert time.monotonic() - start < 0.6
    assert fake.events("probe") == []  # nothing connected directly meanwhile
    fake.wait_for("master-up", "hub1", timeout=5.0)
    assert alive(probe.control_path("hub1"))
    assert len(fake.events("master-start", "hub1")) == 1


def test_one_master_per_host_under_concurrent_requests(fake):
    """(2) Many request threads at once: one master per host; (3) they all use it."""
    fake.configure(master_delay={"hub1": 0.4, "hub2": 0.4})
    probe = SshProbe(settings(fake))
    barrier = threading.Barrier(16)
    results: list[Any] = []

    def ask(host: str, user: str) -> None:
        barrier.wait()
        try:
            results.append(probe.report(host, user, 5.0)["via"])
        except ProbeError as exc:
            results.append(exc)

    threads = [threading.Thread(target=ask, args=(f"hub{1 + i % 2}", f"juser{i}")) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["master"] * 16
    assert len(fake.events("master-start", "hub1")) == 1
    assert len(fake.events("master-start", "hub2")) == 1


def test_later_request_uses_the_master(fake):
    """(3) Once a master is up, a probe goes through it and starts no other."""
    probe = SshProbe(settings(fake))
    probe.warm_up(["hub1"])
    fake.wait_for("master-up", "hub1")
    for user in ("juser1", "juser2"):
        assert probe.report("hub1", user, 2.0)["via"] == "master"
    assert len(fake.events("master-start")) == 1
    # Another process (a second gunicorn worker) finds it too and starts none.
    assert SshProbe(settings(fake)).report("hub1", "juser3", 2.0)["via"] == "master"
    assert len(fake.events("master-start")) == 1


def test_warm_up_does_not_block(fake):
    fake.configure(master_delay={"hub1": 0.5, "hub2": 0.5})
    probe = SshProbe(settings(fake))
    start = time.monotonic()
    probe.warm_up(["hub1", "hub2"])
    assert time.monotonic() - start < 0.2
    fake.wait_for("master-up", "hub1")
    fake.wait_for("master-up", "hub2")
    probe.warm_up(["hub1", "hub2"])  # both up: nothing new
    time.sleep(0.2)
    assert len(fake.events("master-start")) == 2


class StubApi:
    """A hub API that knows of no server for anybody."""

    def user_server(self, username: str, timeout: float) -> None:
        return None

    def close(self) -> None:
        pass


def test_deadline_honoured_and_unready_node_not_answered(fake):
    """(4) A node whose master is still being set up is unknown, within the deadline."""
    fake.configure(master_delay={"slow": 1.5})  # its time limit: 1 + 1 s
    nodes = [
        NodeConfig(name=n, base_url=f"http://{n}", api_url=f"http://{n}", api_token_file="/t", ssh_host=n)
        for n in ("fast", "slow")
    ]
    resolver = Resolver(nodes, {n.name: StubApi() for n in nodes}, SshProbe(settings(fake)), deadline=1.0)
    try:
        res = resolver.resolve("juser1")
        assert res.elapsed < 1.3
        assert res.decision.state == "unknown"  # never "not_running"
        assert "slow" in res.decision.unanswered
        by_node: dict[str, NodeAnswer] = {a.node: a for a in res.answers}
        assert by_node["fast"].ok
        assert by_node["fast"].report is not None and by_node["fast"].report["via"] == "master"
        assert not by_node["slow"].ok and by_node["slow"].report is None
        # The slow node's master was not killed with the request: it comes up later.
        fake.wait_for("master-up", "slow", timeout=6.0)
        res = resolver.resolve("juser1")
        assert res.decision.state == "not_running"
        assert all(a.report["via"] == "master" for a in res.answers if a.report)
        assert len(fake.events("master-start", "slow")) == 1
    finally:
        resolver.close()


def test_failed_master_falls_back_to_a_direct_probe_and_retries_later(fake, caplog):
    fake.configure(master_fail={"hub1": True})
    probe = SshProbe(settings(fake))
    assert probe.report("hub1", "juser1", 2.0)["via"] == "direct"
    assert probe.report("hub1", "juser2", 2.0)["via"] == "direct"
    assert len(fake.events("master-start", "hub1")) == 1  # no new attempt before MASTER_RETRY
    assert "Permission denied" in caplog.text


def test_stale_socket_is_replaced(fake):
    probe = SshProbe(settings(fake))
    path = probe.control_path("hub1")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)  # bound, never listening: what a killed master leaves
    assert os.path.exists(path) and not alive(path)
    assert probe.report("hub1", "juser1", 3.0)["via"] == "master"
    assert len(fake.events("master-start", "hub1")) == 1


def test_two_workers_racing_share_one_master(fake):
    """Two processes' probes set up the same host at once: one socket, both answer.

    ssh's own rule (the second bind fails, it carries on as a plain connection) keeps
    the socket intact; the loser is ended by its time limit.
    """
    fake.configure(master_delay={"hub1": 0.3})
    workers = [SshProbe(settings(fake)), SshProbe(settings(fake))]
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def ask(probe: SshProbe) -> None:
        barrier.wait()
        results.append(probe.report("hub1", "juser1", 3.0)["via"])

    threads = [threading.Thread(target=ask, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["master", "master"]
    assert len(fake.events("master-up", "hub1")) == 1
    assert len(fake.events("master-start", "hub1")) == 2
    assert len(fake.events("plain", "hub1")) == 1
    assert alive(workers[0].control_path("hub1"))
    # The loser's plain connection is killed at connect_timeout + MASTER_GRACE (2 s here).
    loser = int(fake.events("plain", "hub1")[0][0])
    end = time.monotonic() + 5
    while _running(loser) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _running(loser)
    assert alive(workers[0].control_path("hub1"))


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_without_control_persist_nothing_is_shared(fake):
    probe = SshProbe(SshConfig(**{**settings(fake).__dict__, "control_persist": "no"}))
    assert probe.report("hub1", "juser1", 2.0)["via"] == "direct"
    probe.warm_up(["hub1"])
    assert fake.events("master-start") == []


def test_control_path_fits_a_unix_socket():
    long_dir = "/" + "d" * 59
    probe = SshProbe(SshConfig("p", "/k", "/kh", long_dir))
    path = probe.control_path("a" * 253)
    assert len(path) + len(".0123456789abcdef") < 104
    assert probe.control_path("hub1") != probe.control_path("hub2")
    assert "%" not in path
