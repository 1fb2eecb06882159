"""Run the forced-command probe on a hub over ssh (shared connections)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .config import SshConfig

MAX_OUTPUT = 1024 * 1024


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
    """Builds the ssh command for one user on one host and parses the report."""

    def __init__(self, settings: SshConfig, runner: Runner = run_command) -> None:
        self.settings = settings
        self.runner = runner

    def argv(self, host: str, username: str) -> list[str]:
        """The ssh argument vector; ``username`` must already be validated."""
        s = self.settings
        return [
            s.binary,
            "-T",
            "-a",
            "-x",
            "-o", "BatchMode=yes",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPersist={s.control_persist}",
            "-o", f"ControlPath={s.control_dir}/%C",
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
            "--",
            host,
            username,
        ]  # fmt: skip

    def report(self, host: str, username: str, timeout: float) -> dict[str, Any]:
        """Return the hub's node_report for ``username``; raise ProbeError."""
        result = self.runner(self.argv(host, username), timeout)
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
