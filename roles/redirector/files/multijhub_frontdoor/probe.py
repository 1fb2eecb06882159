"""Run the forced-command probe on a hub over ssh (shared connections).

Each hub gets one shared connection (an ssh control master) that no request owns: it
is set up by a background ``ssh -N`` with its own time limit, never by a probe that a
request's deadline kills. A probe runs with ``ControlMaster=no``: it goes through the
master when there is one and otherwise connects directly, so killing it at the
deadline never takes a master (or the setting up of one) with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .config import SshConfig

log = logging.getLogger(__name__)

MAX_OUTPUT = 1024 * 1024
MASTER_GRACE = 5.0  # seconds a master may take beyond ConnectTimeout (key exchange, auth)
MASTER_RETRY = 10.0  # after a failed master, probes connect directly this long
MASTER_POLL = 0.05  # how often a waiting probe looks for another process's master


class ProbeError(Exception):
    """The probe gave no usable report."""


@dataclass(frozen=True)
class RunResult:
    """What a finished command left behind."""

    returncode: int
    stdout: bytes
    stderr: bytes


class Runner(Protocol):
    """Runs an argument vector (never through a shell) with a timeout."""

    def __call__(self, argv: Sequence[str], timeout: float) -> RunResult: ...


def run_command(argv: Sequence[str], timeout: float) -> RunResult:
    """Run ``argv`` without a shell; raise ProbeError on timeout."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
            shell=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeError("probe timed out") from exc
    except OSError as exc:
        raise ProbeError(f"cannot run ssh: {exc.strerror}") from exc
    return RunResult(done.returncode, done.stdout, done.stderr)


class SshProbe:
    """Builds the ssh command for one user on one host and parses the report.

    It keeps, per host, the background attempt that sets up the shared connection:
    at most one at a time in this process. gunicorn's workers share the control
    sockets; when two of them set one up at once, ssh lets the first bind the socket
    and the other goes on as a plain connection until its time limit ends it.
    """

    def __init__(self, settings: SshConfig, runner: Runner = run_command) -> None:
        self.settings = settings
        self.runner = runner
        # A master must outlive its ssh (ControlPersist) and needs its directory.
        self.sharing = settings.control_persist != "no" and os.path.isdir(settings.control_dir)
        if settings.control_persist != "no" and not self.sharing:
            log.warning("ssh control_dir %s is missing: probes connect directly", settings.control_dir)
        self._lock = threading.Lock()
        self._attempts: dict[str, threading.Event] = {}  # host -> set when its attempt ends
        self._retry_at: dict[str, float] = {}  # host -> no new attempt before (monotonic)

    def control_path(self, host: str) -> str:
        """The host's control socket; short enough for sun_path (see config.py)."""
        s = self.settings
        key = f"{s.user}\0{host}\0{s.key_file}".encode()
        return f"{s.control_dir}/{hashlib.blake2b(key, digest_size=12).hexdigest()}"

    def _options(self, host: str, master: str) -> list[str]:
        s = self.settings
        persist = ["-o", f"ControlPersist={s.control_persist}"] if master != "no" else []
        return [
            "-o", "BatchMode=yes",
            "-o", f"ControlMaster={master}",
            *persist,
            "-o", "ControlPath=" + self.control_path(host).replace("%", "%%"),
            "-o", f"UserKnownHostsFile={s.known_hosts_file}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "PasswordAuthentication=no",
            "-o", "KbdInteractiveAuthentication=no",
            "-o", f"ConnectTimeout={s.connect_timeout}",
            "-o", "ServerAliveInterval=10",
            "-o", "ServerAliveCountMax=3",
            "-o", "LogLevel=ERROR",
            "-i", s.key_file,
            "-l", s.user,
        ]  # fmt: skip

    def argv(self, host: str, username: str) -> list[str]:
        """The probe's argument vector; ``username`` must already be validated."""
        s = self.settings
        return [s.binary, "-T", "-a", "-x", *self._options(host, "no"), "--", host, username]

    def master_argv(self, host: str) -> list[str]:
        """The shared connection: no command (``-N``); with ControlPersist it forks to
        the background once its control socket listens, and its ssh exits 0."""
        s = self.settings
        return [s.binary, "-N", "-T", "-a", "-x", *self._options(host, "auto"), "--", host]

    def warm_up(self, hosts: Iterable[str]) -> None:
        """Start setting up the hosts' shared connections; does not wait."""
        if self.sharing:
            for host in hosts:
                self._start_master(host)

    def report(self, host: str, username: str, timeout: float) -> dict[str, Any]:
        """Return the hub's node_report for ``username``; raise ProbeError."""
        end = time.monotonic() + timeout
        if self.sharing:
            self._await_master(host, end)
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise ProbeError("shared connection still being set up")
        result = self.runner(self.argv(host, username), remaining)
        if result.returncode == 255:
            raise ProbeError(f"ssh failed: {_last_line(result.stderr)}")
        if len(result.stdout) > MAX_OUTPUT:
            raise ProbeError("probe answer too large")
        try:
            doc = json.loads(result.stdout.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProbeError(
                f"probe exit {result.returncode} without JSON: {_last_line(result.stderr)}"
            ) from exc
        if not isinstance(doc, dict):
            raise ProbeError("probe answered an unexpected document")
        if result.returncode != 0 or "error" in doc:
            raise ProbeError(f"probe refused: {str(doc.get('error', ''))[:200]}")
        _check_report(doc, username)
        return doc

    def _await_master(self, host: str, end: float) -> None:
        """Until ``end``, wait for the host's master unless it is up or has just failed."""
        path = self.control_path(host)
        if _master_alive(path):
            return
        attempt = self._start_master(host)
        while attempt is not None and not attempt.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            attempt.wait(min(MASTER_POLL, left))
            if _master_alive(path):  # ours, or another worker's
                return

    def _start_master(self, host: str) -> threading.Event | None:
        """The host's attempt in progress, a new one, or None (master up, or retry later)."""
        with self._lock:
            attempt = self._attempts.get(host)
            if attempt is not None:
                return attempt
            if time.monotonic() < self._retry_at.get(host, 0.0) or _master_alive(self.control_path(host)):
                return None
            attempt = self._attempts[host] = threading.Event()
            threading.Thread(
                target=self._establish, args=(host, attempt), name=f"ssh-master-{host}", daemon=True
            ).start()
            return attempt

    def _establish(self, host: str, attempt: threading.Event) -> None:
        """Run the master's ssh under its own time limit (in its own thread)."""
        error = "no control socket after it"
        try:
            result = self.runner(self.master_argv(host), self.settings.connect_timeout + MASTER_GRACE)
            if result.returncode != 0:
                error = f"exit {result.returncode}: {_last_line(result.stderr)}"
        except ProbeError as exc:
            error = str(exc).replace("probe ", "ssh ")
        except Exception as exc:  # a thread of its own: log it, never raise
            error = repr(exc)
        ok = _master_alive(self.control_path(host))
        if not ok:
            log.warning("no shared ssh connection to %s (%s); retry in %g s", host, error, MASTER_RETRY)
        with self._lock:
            del self._attempts[host]
            if not ok:
                self._retry_at[host] = time.monotonic() + MASTER_RETRY
        attempt.set()


def _master_alive(path: str) -> bool:
    """Whether a control master listens at ``path`` (a stale socket refuses)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:
            return True  # listening, its backlog full
        except OSError:
            return False
        return True


def _check_report(doc: dict[str, Any], username: str) -> None:
    if doc.get("user") != username:
        raise ProbeError("probe answered for another user")
    for key in ("mem_available", "mem_total"):
        value = doc.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProbeError(f"probe report lacks {key}")
    evidence = doc.get("evidence", [])
    if not isinstance(evidence, list) or not all(
        isinstance(ev, dict) and isinstance(ev.get("file"), str) and isinstance(ev.get("verdict"), str)
        for ev in evidence
    ):
        raise ProbeError("probe report has malformed evidence")


def _last_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[-1][:200] if text else "no message"
