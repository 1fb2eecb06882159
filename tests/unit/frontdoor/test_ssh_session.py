"""Persistent probe sessions: one ssh per hub kept open, a line per request.

The stand-in ``ssh`` of fake_ssh.py serves sessions like the hub's
``probe --serve`` (one JSON line per request line, in order); the last test runs
the core's real serve loop behind a stand-in that only replaces the network.
"""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_ssh import FakeSsh, settings

from multijhub.frontdoor import probe as probe_mod
from multijhub.frontdoor.config import SshConfig
from multijhub.frontdoor.probe import ProbeError, SshProbe


def wait_idle(probe: SshProbe, host: str = "hub1", timeout: float = 10.0) -> None:
    """Until the warm-up's session is back among the idle ones (it has answered its ping)."""
    end = time.monotonic() + timeout
    while not probe._idle.get(host):
        assert time.monotonic() < end, f"no idle session to {host} within {timeout} s"
        time.sleep(0.02)


@pytest.fixture
def warm(fake: FakeSsh) -> Iterator[Callable[..., SshProbe]]:
    """``warm(channels=2, **behaviour)``: a probe with hub1's shared connection up (closed after)."""
    probes: list[SshProbe] = []

    def make(channels: int = 2, **behaviour: Any) -> SshProbe:
        fake.configure(**behaviour)
        probe = SshProbe(settings(fake, channels=channels))
        probes.append(probe)
        probe.warm_up(["hub1"])
        fake.wait_for("master-up", "hub1")
        return probe

    yield make
    for probe in probes:
        probe.close()


def test_serve_argv_is_the_probe_argv_with_serve():
    probe = SshProbe(SshConfig("p", "/k", "/kh", "/run/x"))
    assert probe.serve_argv("hub1") == [*probe.argv("hub1", "juser1")[:-1], "--serve"]


def test_one_session_answers_many_requests(fake, warm):
    probe = warm()
    fake.wait_for("ask", "hub1")  # warm-up opened a session and pinged it
    answers = [probe.report("hub1", user, 2.0) for user in ("juser1", "juser2", "juser1")]
    assert [a["user"] for a in answers] == ["juser1", "juser2", "juser1"]
    assert {a["via"] for a in answers} == {"master"}
    assert len({a["session"] for a in answers}) == 1
    assert len(fake.events("session", "hub1")) == 1
    assert fake.events("probe") == []  # no one-shot ssh at all
    assert [e[3] for e in fake.events("ask", "hub1")] == ["--ping", "juser1", "juser2", "juser1"]


def test_sessions_per_hub_are_bounded(fake, warm):
    probe = warm(channels=2, user_delay={f"u{i}": 0.3 for i in range(6)})
    results: list[Any] = []

    def ask(user: str) -> None:
        try:
            results.append(probe.report("hub1", user, 3.0)["user"])
        except ProbeError as exc:
            results.append(exc)

    threads = [threading.Thread(target=ask, args=(f"u{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [f"u{i}" for i in range(6)]
    assert len(fake.events("session", "hub1")) == 2  # the others waited for a free session


def test_all_sessions_busy_until_the_deadline(fake, warm):
    probe = warm(channels=1, user_delay={"slow": 1.0})
    t = threading.Thread(target=lambda: probe.report("hub1", "slow", 3.0))
    t.start()
    fake.wait_for("ask", "hub1", count=2)  # the ping and "slow"
    start = time.monotonic()
    with pytest.raises(ProbeError, match="busy"):
        probe.report("hub1", "juser1", 0.3)
    assert time.monotonic() - start < 0.6
    t.join()


def test_a_late_answer_is_never_taken_for_the_next_request(fake, warm):
    probe = warm(channels=1, user_delay={"slow": 0.6})
    with pytest.raises(ProbeError, match="timed out"):
        probe.report("hub1", "slow", 0.2)
    # The same session: the owed answer for "slow" is skipped, then juser2's is read.
    assert probe.report("hub1", "juser2", 2.0)["user"] == "juser2"
    assert len(fake.events("session", "hub1")) == 1


def test_a_session_owing_too_much_is_dropped(fake, warm):
    probe = warm(channels=1, user_delay={"slow": 5.0})
    for _ in range(probe_mod.MAX_OWED + 1):
        with pytest.raises(ProbeError, match="timed out"):
            probe.report("hub1", "slow", 0.1)
    assert probe.report("hub1", "juser1", 2.0)["user"] == "juser1"
    assert len(fake.events("session", "hub1")) == 2


def test_a_closed_session_is_reported_and_replaced(fake, warm):
    probe = warm(exit_on=["boom"])
    wait_idle(probe)  # the warm-up's session answered its ping: it is kept, idle
    with pytest.raises(ProbeError, match="session closed: ssh exit 255: Connection to hub closed"):
        probe.report("hub1", "boom", 2.0)
    # The kept session closed, then the new one asked in the same request closed too: an answer.
    assert len(fake.events("session", "hub1")) == 2
    assert [row[3] for row in fake.events("ask", "hub1")] == ["--ping", "boom", "boom"]
    assert probe.report("hub1", "juser1", 2.0)["user"] == "juser1"
    assert len(fake.events("session", "hub1")) == 3


def test_a_kept_session_that_died_while_idle_costs_no_request(fake, warm):
    """A hub that rebooted: its kept session is gone; the request is asked again, on a new one."""
    probe = warm(exit_once_on=["juser1"])
    wait_idle(probe)  # the warm-up's session answered its ping: it is kept, idle
    answer = probe.report("hub1", "juser1", 2.0)
    assert answer["user"] == "juser1"
    sessions = [row[0] for row in fake.events("session", "hub1")]
    assert len(sessions) == 2
    assert answer["session"] == int(sessions[1])
    assert probe.report("hub1", "juser2", 2.0)["session"] == int(sessions[1])  # the new one is kept


def test_a_session_out_of_step_is_closed_never_answering_for_another_request(fake, warm):
    """A hub side that answered twice: the next request would read the previous one's answer."""
    probe = warm(twice_on=["alice"])
    wait_idle(probe)
    assert probe.report("hub1", "alice", 2.0)["user"] == "alice"
    with pytest.raises(ProbeError, match="out of step"):
        probe.report("hub1", "bob", 2.0)  # read alice's second answer: the session is dropped
    for user in ("bob", "carol", "bob"):
        assert probe.report("hub1", user, 2.0)["user"] == user  # a new session, in step
    assert len(fake.events("session", "hub1")) == 2


def test_a_session_whose_ssh_writes_to_stderr_does_not_stall(fake, warm):
    """ssh's stderr is read as it comes: a full pipe (64 KiB) once stalled every later request."""
    probe = warm(channels=1, stderr_per_request=4000)
    wait_idle(probe)
    for i in range(40):  # 160 kB of stderr through one session
        assert probe.report("hub1", f"u{i}", 2.0)["user"] == f"u{i}"
    assert len(fake.events("session", "hub1")) == 1


def test_the_shared_connection_has_a_short_keepalive():
    """ssh ends a connection to a hub that stopped answering within seconds, not minutes."""
    argv = SshProbe(SshConfig("p", "/k", "/kh", "/run/x")).master_argv("hub1")
    options = dict(argv[i + 1].split("=", 1) for i, word in enumerate(argv) if word == "-o")
    assert int(options["ServerAliveInterval"]) * int(options["ServerAliveCountMax"]) <= 10


def test_close_ends_the_sessions(fake, warm):
    probe = warm()
    probe.report("hub1", "juser1", 2.0)
    pids = [int(row[0]) for row in fake.events("session", "hub1")]
    probe.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: the session's ssh is gone


REAL_SERVE = textwrap.dedent(
    """\
    #!{python}
    # Stands in for ssh + sshd: runs the forced command with the request as
    # SSH_ORIGINAL_COMMAND, as sshd does for the front door's key.
    import os, sys
    os.environ["SSH_ORIGINAL_COMMAND"] = sys.argv[-1]
    os.execv(sys.executable, [sys.executable, "-m", "multijhub.core.probe", "--node", "hub1"])
    """
)


def test_the_core_probe_serves_a_session(tmp_path: Path):
    ssh = tmp_path / "ssh"
    ssh.write_text(REAL_SERVE.format(python=sys.executable))
    ssh.chmod(0o755)
    probe = SshProbe(SshConfig("p", "/k", "/kh", str(tmp_path), control_persist="no", binary=str(ssh)))
    me = __import__("pwd").getpwuid(os.getuid()).pw_name
    first = probe.report("hub1", me, 5.0)
    assert (first["node"], first["user"], first["uid"]) == ("hub1", me, os.getuid())
    assert isinstance(first["mem_available"], int) and first["mem_total"] > 0
    with pytest.raises(ProbeError, match="refused: no such user"):
        probe.report("hub1", "multijhub_nosuchuser", 5.0)
    again = probe.report("hub1", me, 5.0)  # the session survived the refusal
    assert again["collected_at"] >= first["collected_at"]
    assert probe._open["hub1"] == 1
    probe.close()
    assert probe._open["hub1"] == 0
