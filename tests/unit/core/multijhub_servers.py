"""Test helpers: real Jupyter servers and fake /proc trees (the core is the installed ``multijhub.core``)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
JUPYTER_SERVER = VENV_BIN / "jupyter-server"


@dataclass
class Server:
    """A real Jupyter server started for a test."""

    proc: subprocess.Popen[bytes]
    runtime_dir: Path
    file: Path
    uid: int

    @property
    def pid(self) -> int:
        return self.proc.pid


def shared_tmpdir(owner_uid: int = 0, owner_gid: int = 0) -> Path:
    """A directory under /tmp that another uid can reach (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="multijhub-test-", dir="/tmp"))
    path.chmod(0o755)
    os.chown(path, owner_uid, owner_gid)
    return path


def _dropping_launcher(base: Path, uid: int, gid: int) -> Path:
    """A ``jupyter-server`` script that imports as root, then becomes uid/gid for good.

    The venv's interpreter lives under /root (0700), so another user cannot exec it; the
    process still ends up wholly owned by that user (real, effective and saved uid).
    """
    bindir = base / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / "jupyter-server"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, shlex, uuid, secrets, hmac, ssl, mimetypes, getpass, gettext\n"
        "from jupyter_server.serverapp import main\n"
        f"os.setgroups([]); os.setgid({gid}); os.setuid({uid})\n"
        "sys.exit(main())\n"
    )
    script.chmod(0o755)
    return script


def start_server(base: Path, *, user: str = "root", timeout: float = 60.0) -> Server:
    """Start ``jupyter-server`` as ``user`` with its runtime dir under ``base``; wait for its file."""
    pw = pwd.getpwnam(user)
    runtime = base / "runtime"
    home = base / "home"
    for path in (runtime, home):
        path.mkdir(exist_ok=True)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    cmd = [
        str(JUPYTER_SERVER if pw.pw_uid == 0 else _dropping_launcher(base, pw.pw_uid, pw.pw_gid)),
        "--no-browser",
        "--ServerApp.port=0",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.open_browser=False",
    ]
    if pw.pw_uid == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=str(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    file = runtime / f"jpserver-{proc.pid}.json"
    deadline = time.monotonic() + timeout
    while not file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"jupyter-server as {user} did not write {file}")
        time.sleep(0.1)
    return Server(proc=proc, runtime_dir=runtime, file=file, uid=pw.pw_uid)


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()


def fake_proc(root: Path, pid: int, *, uid: int, cmdline: list[str], start_ticks: int, btime: int) -> None:
    """Write a minimal /proc tree entry (status, cmdline, stat) and the root stat with btime."""
    (root / "stat").write_text(f"cpu  1 2 3 4\nbtime {btime}\nprocesses 1\n")
    (root / "meminfo").write_text(
        "MemTotal:        8000000 kB\nMemFree: 10 kB\nMemAvailable:    5000000 kB\n"
    )
    proc = root / str(pid)
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "status").write_text(
        f"Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
    )
    (proc / "cmdline").write_bytes(b"\0".join(a.encode() for a in cmdline) + b"\0")
    fields = ["S"] + ["0"] * 18 + [str(start_ticks)] + ["0"] * 10
    (proc / "stat").write_text(f"{pid} (odd name) with) {' '.join(fields)}\n")
