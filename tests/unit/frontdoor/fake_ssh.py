"""A stand-in ``ssh`` binary for the probe's tests, and the ``fake`` fixture (conftest.py).

It acts like OpenSSH for what matters here: ``-N`` with ``ControlMaster=auto`` becomes a
control master that listens on ``ControlPath`` and then forks to the background (its ssh
exits 0); a socket bound first by someone else makes it go on as a plain connection
("ControlSocket ... already exists, disabling multiplexing") until it is killed; a probe
with ``ControlMaster=no`` goes through a live master or else "connects directly"; with the
remote command ``--serve`` it answers one JSON line per request line, like the hub's
``probe --serve``. Behaviour comes from fake.json (``configure``), what it did goes to
ssh.log (``events``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from multijhub.frontdoor import probe as probe_mod
from multijhub.frontdoor.config import SshConfig

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
            once = here / f"exited-once-{{asked}}"
            if asked in conf.get("exit_once_on", []) and not once.exists():
                once.touch()  # the first session asked this dies, as one whose hub rebooted
                sys.stderr.write("Connection to hub closed by remote host.\\n")
                sys.exit(255)
            time.sleep(conf.get("user_delay", {{}}).get(asked, 0.0))
            sys.stderr.write("w" * conf.get("stderr_per_request", 0))  # sshd's or a shell's chatter
            sys.stderr.flush()
            for _ in range(2 if asked in conf.get("twice_on", []) else 1):  # a faulty hub side
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
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSsh]:
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
