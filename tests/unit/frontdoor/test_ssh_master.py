"""The probe's shared ssh connections: set up in the background, never by a request.

A stand-in ``ssh`` (a small Python script, run through the real ``run_command``) acts
like OpenSSH for what matters here: ``-N`` with ``ControlMaster=auto`` becomes a control
master that listens on ``ControlPath`` and then forks to the background (its ssh exits 0);
a socket bound first by someone else makes it go on as a plain connection (ssh's
"ControlSocket ... already exists, disabling multiplexing") until it is killed; a probe
with ``ControlMaster=no`` goes through a live master or else "connects directly".
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from multijhub_core.decision import NodeAnswer
from multijhub_frontdoor import probe as probe_mod
from multijhub_frontdoor.config import NodeConfig, SshConfig
from multijhub_frontdoor.probe import ProbeError, SshProbe
from multijhub_frontdoor.resolver import Resolver

FAKE_SSH = textwrap.dedent(
    """\
    #!{python}
    import json, os, socket, sys, time
    from pathlib import Path

    here = Path(sys.argv[0]).parent
    conf = json.loads((here / "fake.json").read_text())
    argv = sys.argv[1:]
    opts = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    path = opts["ControlPath"].replace("%%", "%")
    host = argv[argv.index("--") + 1]

    def log(*words):
        with open(here / "ssh.log", "a") as fh:
            fh.write(" ".join(str(w) for w in (os.getpid(), *words)) + "\\n")

    def alive():
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(path)
                return True
            except OSError:
                return False

    if "-N" in argv:
        assert opts["ControlMaster"] == "auto" and "ControlPersist" in opts
        log("master-start", host)
        time.sleep(conf.get("master_delay", {{}}).get(host, 0.0))  # key exchange, auth
        if conf.get("master_fail", {{}}).get(host):
            sys.stderr.write("Permission denied (publickey).\\n")
            sys.exit(255)
        if not alive() and os.path.exists(path):
            os.unlink(path)  # a stale socket: ControlMaster=auto removes it
        listener = socket.socket(socket.AF_UNIX)
        temp = f"{{path}}.{{os.getpid():016d}}"
        listener.bind(temp)  # as ssh: bind a temporary name, listen, then link it
        listener.listen(64)
        try:
            os.link(temp, path)
        except FileExistsError:
            os.unlink(temp)
            log("plain", host)  # "ControlSocket ... already exists, disabling multiplexing"
            time.sleep(60)
            sys.exit(0)
        os.unlink(temp)
        if os.fork():
            os._exit(0)  # ControlPersist: the foreground ssh exits once the socket listens
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        log("master-up", host)
        listener.settimeout(1.0)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                listener.accept()[0].close()
            except OSError:
                pass
        sys.exit(0)

    assert opts["ControlMaster"] == "no" and "ControlPersist" not in opts
    user = argv[-1]
    via = "master" if alive() else "direct"
    if user == "--serve":  # a persistent session: one answer line per request line
        log("session", host, via)
        if via == "direct":
            time.sleep(conf.get("direct_delay", 0.0))
        while True:
            line = sys.stdin.readline()
            if not line:
                sys.exit(0)
            asked = line.rstrip("\\n")
            log("ask", host, asked)
            if asked == "--ping":
                print(json.dumps({{"pong": True, "node": host}}), flush=True)
                continue
            if asked in conf.get("exit_on", []):
                sys.stderr.write("Connection to hub closed by remote host.\\n")
                sys.exit(255)
            time.sleep(conf.get("user_delay", {{}}).get(asked, 0.0))
            print(json.dumps({{"user": asked, "via": via, "session": os.getpid(),
                              "mem_available": 1, "mem_total": 2, "evidence": []}}), flush=True)
    log("probe", host, user, via)
    if via == "direct":
        time.sleep(conf.get("direct_delay", 0.0))
    print(json.dumps({{"user": user, "via": via, "mem_available": 1, "mem_total": 2, "evidence": []}}))
    """
)


class FakeSsh:
    """The stand-in binary, its behaviour (fake.json) and what it did (ssh.log)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.binary = directory / "ssh"
        self.binary.write_text(FAKE_SSH.format(python=sys.executable))
        self.binary.chmod(0o755)
        self.log = directory / "ssh.log"
        self.log.touch()
        self.configure()

    def configure(self, **conf: Any) -> None:
        (self.dir / "fake.json").write_text(json.dumps(conf))

    def events(self, kind: str, host: str | None = None) -> list[list[str]]:
        rows = [line.split() for line in self.log.read_text().splitlines()]
        return [r for r in rows if r[1] == kind and (host is None or r[2] == host)]

    def wait_for(self, kind: str, host: str, count: int = 1, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while len(self.events(kind, host)) < count:
            assert time.monotonic() < end, f"no {kind} for {host} within {timeout} s"
            time.sleep(0.02)

    def kill_all(self) -> None:
        for row in self.events("master-up") + self.events("plain") + self.events("master-start"):
            with suppress(ProcessLookupError):
                os.kill(int(row[0]), signal.SIGKILL)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A short directory: the sockets must fit in sun_path whatever tmp_path is.
    control = Path(tempfile.mkdtemp(prefix="mjcm-", dir="/tmp"))
    monkeypatch.setattr(probe_mod, "MASTER_GRACE", 1.0)
    ssh = FakeSsh(tmp_path)
    ssh.control_dir = str(control)  # type: ignore[attr-defined]
    yield ssh
    ssh.kill_all()
    for entry in control.iterdir():
        entry.unlink()
    control.rmdir()


def settings(fake: FakeSsh, **kw: Any) -> SshConfig:
    return SshConfig(
        user="multijhub-probe",
        key_file="/etc/multijhub-frontdoor/probe_key",
        known_hosts_file="/etc/multijhub-frontdoor/known_hosts",
        control_dir=fake.control_dir,  # type: ignore[attr-defined]
        control_persist="10m",
        connect_timeout=1,
        binary=str(fake.binary),
        **{"channels": 0, **kw},
    )


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
