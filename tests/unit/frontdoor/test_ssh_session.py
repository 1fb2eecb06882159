"""Persistent probe sessions: one ssh per hub kept open, a line per request.

The stand-in ``ssh`` of test_ssh_master.py serves sessions like the hub's
``probe --serve`` (one JSON line per request line, in order); the last test runs
the core's real serve loop behind a stand-in that only replaces the network.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from multijhub_frontdoor import probe as probe_mod
from multijhub_frontdoor.config import SshConfig
from multijhub_frontdoor.probe import ProbeError, SshProbe
from test_ssh_master import FakeSsh, settings

CORE_PARENT = Path(__file__).resolve().parents[3] / "plugins"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    control = Path(tempfile.mkdtemp(prefix="mjcs-", dir="/tmp"))
    monkeypatch.setattr(probe_mod, "MASTER_GRACE", 1.0)
    ssh = FakeSsh(tmp_path)
    ssh.control_dir = str(control)  # type: ignore[attr-defined]
    yield ssh
    ssh.kill_all()
    for entry in control.iterdir():
        entry.unlink()
    control.rmdir()


def sessions(fake: FakeSsh, **kw: Any) -> SshProbe:
    return SshProbe(settings(fake, channels=kw.pop("channels", 2), **kw))


def master_up(fake: FakeSsh, probe: SshProbe, host: str = "hub1") -> None:
    probe.warm_up([host])
    fake.wait_for("master-up", host)


def test_serve_argv_is_the_probe_argv_with_serve():
    probe = SshProbe(SshConfig("p", "/k", "/kh", "/run/x"))
    assert probe.serve_argv("hub1") == [*probe.argv("hub1", "juser1")[:-1], "--serve"]


def test_one_session_answers_many_requests(fake):
    probe = sessions(fake)
    master_up(fake, probe)
    fake.wait_for("ask", "hub1")  # warm-up opened a session and pinged it
    answers = [probe.report("hub1", user, 2.0) for user in ("juser1", "juser2", "juser1")]
    assert [a["user"] for a in answers] == ["juser1", "juser2", "juser1"]
    assert {a["via"] for a in answers} == {"master"}
    assert len({a["session"] for a in answers}) == 1
    assert len(fake.events("session", "hub1")) == 1
    assert fake.events("probe") == []  # no one-shot ssh at all
    assert [e[3] for e in fake.events("ask", "hub1")] == ["--ping", "juser1", "juser2", "juser1"]
    probe.close()


def test_sessions_per_hub_are_bounded(fake):
    fake.configure(user_delay={f"u{i}": 0.3 for i in range(6)})
    probe = sessions(fake, channels=2)
    master_up(fake, probe)
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
    probe.close()


def test_all_sessions_busy_until_the_deadline(fake):
    fake.configure(user_delay={"slow": 1.0})
    probe = sessions(fake, channels=1)
    master_up(fake, probe)
    t = threading.Thread(target=lambda: probe.report("hub1", "slow", 3.0))
    t.start()
    fake.wait_for("ask", "hub1", count=2)  # the ping and "slow"
    start = time.monotonic()
    with pytest.raises(ProbeError, match="busy"):
        probe.report("hub1", "juser1", 0.3)
    assert time.monotonic() - start < 0.6
    t.join()
    probe.close()


def test_a_late_answer_is_never_taken_for_the_next_request(fake):
    fake.configure(user_delay={"slow": 0.6})
    probe = sessions(fake, channels=1)
    master_up(fake, probe)
    with pytest.raises(ProbeError, match="timed out"):
        probe.report("hub1", "slow", 0.2)
    # The same session: the owed answer for "slow" is skipped, then juser2's is read.
    assert probe.report("hub1", "juser2", 2.0)["user"] == "juser2"
    assert len(fake.events("session", "hub1")) == 1
    probe.close()


def test_a_session_owing_too_much_is_dropped(fake):
    fake.configure(user_delay={"slow": 5.0})
    probe = sessions(fake, channels=1)
    master_up(fake, probe)
    for _ in range(probe_mod.MAX_OWED + 1):
        with pytest.raises(ProbeError, match="timed out"):
            probe.report("hub1", "slow", 0.1)
    assert probe.report("hub1", "juser1", 2.0)["user"] == "juser1"
    assert len(fake.events("session", "hub1")) == 2
    probe.close()


def test_a_closed_session_is_reported_and_replaced(fake):
    fake.configure(exit_on=["boom"])
    probe = sessions(fake)
    master_up(fake, probe)
    with pytest.raises(ProbeError, match="session closed: ssh exit 255: Connection to hub closed"):
        probe.report("hub1", "boom", 2.0)
    assert probe.report("hub1", "juser1", 2.0)["user"] == "juser1"
    assert len(fake.events("session", "hub1")) == 2
    probe.close()


def test_close_ends_the_sessions(fake):
    probe = sessions(fake)
    master_up(fake, probe)
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
    os.environ["PYTHONPATH"] = {core!r}
    os.execv(sys.executable, [sys.executable, "-m", "multijhub_core.probe", "--node", "hub1"])
    """
)


def test_the_core_probe_serves_a_session(tmp_path: Path):
    core = tmp_path / "core"
    core.mkdir()
    (core / "multijhub_core").symlink_to(CORE_PARENT / "module_utils")
    ssh = tmp_path / "ssh"
    ssh.write_text(REAL_SERVE.format(python=sys.executable, core=str(core)))
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
