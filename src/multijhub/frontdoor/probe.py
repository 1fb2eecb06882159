"""Run the forced-command probe on a hub over ssh (shared connections, persistent sessions).

Each hub gets one shared connection (an ssh control master) that no request owns: it
is set up by a background ``ssh -N`` with its own time limit, never by a probe that a
request's deadline kills. Probes run with ``ControlMaster=no``: they go through the
master when there is one and otherwise connect directly, so killing one at the
deadline never takes a master (or the setting up of one) with it.

With ``channels`` > 0 (the default) a probe is a persistent session: ``ssh ... host
--serve`` keeps the hub's probe running, and each request is one line written (the
user name) and one JSON line read back. Up to ``channels`` sessions per hub are kept
in this process; a request borrows one, so no ssh client and no Python start is paid
per request. With ``channels`` = 0 each request runs ``ssh ... host USER``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from multijhub.core.probe import PING, SERVE  # the protocol's words: one definition, the hub's probe

from .config import SshConfig

log = logging.getLogger(__name__)

MAX_OUTPUT = 1024 * 1024
MASTER_GRACE = 5.0  # seconds a master may take beyond ConnectTimeout (key exchange, auth)
MASTER_RETRY = 10.0  # after a failed master, probes connect directly this long
MASTER_POLL = 0.05  # how often a waiting probe looks for another process's master
# ssh's own keepalive (ServerAliveInterval/CountMax) ends a shared connection whose hub stopped
# answering within about ALIVE_INTERVAL * ALIVE_COUNT seconds. A hub that lost power and came
# back drops the old connection's packets (its firewall does not know it): without the
# keepalive, the master and every session through it would look alive and swallow requests
# until each request's deadline. 2 s x 3: a real reboot always takes longer than that.
ALIVE_INTERVAL = 2
ALIVE_COUNT = 3


class ProbeError(Exception):
    """The probe gave no usable report."""


class SessionClosed(ProbeError):
    """A persistent session ended (its ssh exited, or its stdin or stdout closed)."""


@dataclass(frozen=True)
class RunResult:
    """What a finished command left behind."""

    returncode: int
    stdout: bytes
    stderr: bytes


class Runner(Protocol):
    """Runs an argument vector (never through a shell) with a timeout."""

    def __call__(self, argv: Sequence[str], timeout: float) -> RunResult: ...


def _child_env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


def run_command(argv: Sequence[str], timeout: float) -> RunResult:
    """Run ``argv`` without a shell; raise ProbeError on timeout."""
    env = _child_env()
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


MAX_OWED = 2  # answers a session may still owe (requests that timed out) before it is dropped
STDERR_KEPT = 4096  # bytes of a session's stderr kept for its error message


def _in_step(request: str, line: bytes) -> bool:
    """Whether ``line`` can be the answer to ``request``: a pong for a ping, else a report
    naming that user or an error (which names none); anything else means a lost step."""
    try:
        doc = json.loads(line)
    except ValueError:
        return True  # parse_report says what is wrong with it
    if not isinstance(doc, dict):
        return True
    if request == PING:
        return doc.get("pong") is True
    return "pong" not in doc and doc.get("user", request) == request


class Channel:
    """One persistent probe session: a request line in, one JSON line out, in order.

    A request that times out leaves its answer owed; the next request skips owed
    answers first. A session that owes more than MAX_OWED, closes, or breaks the
    framing is closed for good.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_child_env(),
                shell=False,
                start_new_session=True,  # a signal to the worker's group does not reach it
            )
        except OSError as exc:
            raise ProbeError(f"cannot run ssh: {exc.strerror}") from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout.fileno()
        self._err = self.proc.stderr.fileno()
        os.set_blocking(self._out, False)
        os.set_blocking(self._err, False)
        self._buffer = b""
        self._err_tail = b""  # the end of what ssh wrote to stderr (read as it comes)
        self._err_open = True
        self.owed = 0
        self.closed = False

    def exchange(self, request: str, timeout: float) -> bytes:
        """Send ``request`` (one line, no newline in it) and return its answer line."""
        end = time.monotonic() + timeout
        try:
            self._in.write(request.encode() + b"\n")
            self._in.flush()
        except OSError as exc:
            why = self._why()
            self.close()
            raise SessionClosed(f"probe session closed: {why}") from exc
        self.owed += 1
        while True:
            line = self._read_line(end)
            self.owed -= 1
            if self.owed == 0:
                if not _in_step(request, line):
                    # One answer too many or too few: every later answer would be for the wrong
                    # request. The session is closed, never resynchronised.
                    self.close()
                    raise ProbeError("probe session out of step (an answer for another request)")
                return line

    def _read_line(self, end: float) -> bytes:
        poller = select.poll()
        poller.register(self._out, select.POLLIN)
        if self._err_open:
            poller.register(self._err, select.POLLIN)
        while b"\n" not in self._buffer:
            left = end - time.monotonic()
            if left <= 0:
                if self.owed > MAX_OWED:
                    self.close()
                raise ProbeError("probe timed out")
            events = poller.poll(left * 1000)
            if self._err_open and any(fd == self._err for fd, _ in events):
                self._drain_stderr(poller)
            if not any(fd == self._out for fd, _ in events):
                continue
            try:
                chunk = os.read(self._out, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                why = self._why()
                self.close()
                raise SessionClosed(f"probe session closed: {why}")
            self._buffer += chunk
            if len(self._buffer) > MAX_OUTPUT:
                self.close()
                raise ProbeError("probe answer too large")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _drain_stderr(self, poller: select.poll) -> None:
        """Read what ssh wrote to stderr (its pipe would fill and stall the session); keep the end."""
        try:
            chunk = os.read(self._err, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._err_open = False
            poller.unregister(self._err)
            return
        self._err_tail = (self._err_tail + chunk)[-STDERR_KEPT:]

    def _why(self) -> str:
        try:
            err = self._err_tail + (os.read(self._err, 65536) if self._err_open else b"")
        except OSError:
            err = self._err_tail
        try:
            code: int | None = self.proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            code = None
        status = f"ssh exit {code}" if code is not None else "ssh still running"
        return f"{status}: {_last_line(err)}" if err.strip() else status

    def close(self) -> None:
        """End the session: the ssh client is killed, the hub's probe sees its stdin close."""
        if self.closed:
            return
        self.closed = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


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
        # Persistent sessions: idle ones per host, and how many exist (idle or lent).
        self._sessions = threading.Condition(threading.Lock())
        self._idle: dict[str, list[Channel]] = {}
        self._open: dict[str, int] = {}
        self._closed = False

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
            "-o", f"ServerAliveInterval={ALIVE_INTERVAL}",
            "-o", f"ServerAliveCountMax={ALIVE_COUNT}",
            "-o", "LogLevel=ERROR",
            "-i", s.key_file,
            "-l", s.user,
        ]  # fmt: skip

    def argv(self, host: str, username: str) -> list[str]:
        """The probe's argument vector; ``username`` must already be validated."""
        s = self.settings
        return [s.binary, "-T", "-a", "-x", *self._options(host, "no"), "--", host, username]

    def serve_argv(self, host: str) -> list[str]:
        """A persistent session: the hub's probe answers one line per request line."""
        s = self.settings
        return [s.binary, "-T", "-a", "-x", *self._options(host, "no"), "--", host, SERVE]

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
        if self.settings.channels > 0:
            return parse_report(self._ask(host, username, end), 0, b"", username)
        result = self.runner(self.argv(host, username), remaining)
        if result.returncode == 255:
            raise ProbeError(f"ssh failed: {_last_line(result.stderr)}")
        return parse_report(result.stdout, result.returncode, result.stderr, username)

    def _ask(self, host: str, request: str, end: float) -> bytes:
        """One exchange over a borrowed persistent session (a new one if none is idle).

        A kept session that turns out closed when used (its connection died with the
        hub, e.g. a reboot, while it sat idle) costs no request: it is dropped and the
        request goes once more on a new session, within the same deadline ``end``
        (monotonic seconds). A new session that closes is the hub's answer: ProbeError.
        """
        channel = self._borrow(host, end)
        try:
            if channel is not None:
                try:
                    return channel.exchange(request, end - time.monotonic())
                except SessionClosed as exc:
                    log.info("a kept probe session to %s had closed (%s); asking on a new one", host, exc)
                    if end - time.monotonic() <= 0:
                        raise
            channel = Channel(self.serve_argv(host))
            return channel.exchange(request, end - time.monotonic())
        finally:
            self._give_back(host, channel)

    def _borrow(self, host: str, end: float) -> Channel | None:
        """An idle session, or None when the caller may open one; waits while all are lent."""
        with self._sessions:
            while True:
                idle = self._idle.setdefault(host, [])
                while idle:
                    channel = idle.pop()
                    if channel.proc.poll() is None:
                        return channel
                    channel.close()
                    self._open[host] -= 1
                if self._open.get(host, 0) < self.settings.channels:
                    self._open[host] = self._open.get(host, 0) + 1
                    return None
                left = end - time.monotonic()
                if left <= 0:
                    raise ProbeError("every probe session to the hub is busy")
                self._sessions.wait(left)

    def _give_back(self, host: str, channel: Channel | None) -> None:
        with self._sessions:
            if channel is not None and self._closed:
                channel.close()
            if channel is not None and not channel.closed:
                self._idle.setdefault(host, []).append(channel)
            else:
                self._open[host] -= 1
            self._sessions.notify()

    def close(self) -> None:
        """Close every idle persistent session (lent ones close when given back)."""
        with self._sessions:
            for host, idle in self._idle.items():
                for channel in idle:
                    channel.close()
                self._open[host] -= len(idle)
                idle.clear()
            self._closed = True

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
        if ok and self.settings.channels > 0:
            self._open_idle_session(host)

    def _open_idle_session(self, host: str) -> None:
        """Open one persistent session ahead of the first request, unless one exists."""
        end = time.monotonic() + self.settings.connect_timeout + MASTER_GRACE
        with self._sessions:
            if self._open.get(host, 0) > 0:
                return
        try:
            answer = json.loads(self._ask(host, PING, end))
            if not isinstance(answer, dict) or answer.get("pong") is not True:
                raise ProbeError(f"the hub's probe does not serve sessions: {str(answer)[:200]}")
        except (ProbeError, ValueError) as exc:
            log.warning("no persistent probe session to %s yet (%s)", host, exc)


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


def parse_report(stdout: bytes, returncode: int, stderr: bytes, username: str) -> dict[str, Any]:
    """The probe's JSON report on ``username``; raise ProbeError for anything else."""
    if len(stdout) > MAX_OUTPUT:
        raise ProbeError("probe answer too large")
    try:
        doc = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProbeError(f"probe exit {returncode} without JSON: {_last_line(stderr)}") from exc
    if not isinstance(doc, dict):
        raise ProbeError("probe answered an unexpected document")
    if returncode != 0 or "error" in doc:
        raise ProbeError(f"probe refused: {str(doc.get('error', ''))[:200]}")
    _check_report(doc, username)
    return doc


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
