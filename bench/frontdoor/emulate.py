"""Emulated hub nodes on this machine for the front door benchmark (loopback only).

- ``Sshd``: one extra OpenSSH server on 127.0.0.1:<free port>, its own config, host key
  and ``authorized_keys`` in a temporary directory, run as an unprivileged account (the
  front door's probe account in production is unprivileged too). Two client keys:
  ``probe`` (forced command: the core's probe, as the redirector role installs it) and
  ``poc`` (``restrict`` only: runs the proof of concept's ``ps -p PID | grep jupyterhub``).
- ``write_ssh_wrapper``: the front door's ``ssh.binary``: ssh with ``-F`` that config, so
  the bench never touches ~/.ssh/config.
- ``write_ssh_config``: one ``Host`` alias per node. All aliases reach the same sshd; ssh's
  ``%C`` control path hashes the HostName and port (both 127.0.0.1 and the same port
  here), so the front door's aliases connect through ``fdpass.py`` to get one shared
  connection per node, as distinct hosts would.
- ``HubsProcess``: the fake hubs (``fakehubs.py``) in a child process.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"  # what the hubs' virtualenvs are made from
APT_ARCHIVES = "/var/cache/apt/archives"
HOST_KEY_ALIAS = "multijhub-bench-sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_sshd(workdir: Path, explicit: str | None) -> tuple[str, dict[str, str]]:
    """The sshd binary and extra environment; unpacks Debian's package if not installed."""
    if explicit:
        return explicit, {}
    if os.path.exists("/usr/sbin/sshd"):
        return "/usr/sbin/sshd", {}
    debs = sorted(glob.glob(f"{APT_ARCHIVES}/openssh-server_*.deb"))
    if not debs:
        sys.exit(
            "no sshd: install openssh-server, pass --sshd, or keep its .deb in "
            f"{APT_ARCHIVES} (apt-get download openssh-server libwrap0)"
        )
    root = workdir / "sshd-root"
    for deb in [debs[-1], *sorted(glob.glob(f"{APT_ARCHIVES}/libwrap0_*.deb"))[-1:]]:
        subprocess.run(["dpkg-deb", "-x", deb, str(root)], check=True)
    libs = root / "usr" / "lib" / "x86_64-linux-gnu"
    return str(root / "usr" / "sbin" / "sshd"), {"LD_LIBRARY_PATH": str(libs)}


def probe_account(requested: str | None) -> pwd.struct_passwd:
    """The unprivileged account sshd runs as and the probe logs in to."""
    if requested:
        return pwd.getpwnam(requested)
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    for entry in sorted(pwd.getpwall(), key=lambda e: e.pw_uid):
        if 1000 <= entry.pw_uid < 60000 and not entry.pw_shell.endswith(("nologin", "false")):
            return entry
    sys.exit("no unprivileged account with a login shell for the bench sshd: pass --account")


def keygen(path: Path, comment: str) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return (path.with_suffix(".pub")).read_text().strip()


@dataclass
class Sshd:
    """The bench's own sshd and the client material to reach it."""

    workdir: Path
    account: pwd.struct_passwd
    probe_python: str  # a virtualenv's python with the multijhub wheel (make_probe_venv)
    binary: str
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    def key(self, kind: str) -> Path:
        return self.workdir / f"{kind}_key"

    def setup(self) -> None:
        d = self.workdir
        d.chmod(0o755)  # the account must reach its files and the core
        uid, gid = self.account.pw_uid, self.account.pw_gid
        host_pub = keygen(d / "host_key", "bench-host")
        os.chown(d / "host_key", uid, gid)  # sshd (as the account) must read it
        self.known_hosts.write_text(f"{HOST_KEY_ALIAS} {host_pub}\n")
        probe = f"exec {self.probe_python} -m multijhub.core.probe --node emulated"
        lines = [
            f'restrict,command="{probe}" {keygen(self.key("probe"), "bench-probe")}',
            f"restrict {keygen(self.key('poc'), 'bench-poc')}",
        ]
        (d / "authorized_keys").write_text("\n".join(lines) + "\n")
        self.port = free_port()
        (d / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {d / 'host_key'}",
                    "PidFile none",
                    f"AuthorizedKeysFile {d / 'authorized_keys'}",
                    f"AllowUsers {self.account.pw_name}",
                    "AuthenticationMethods publickey",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin no",
                    "PermitTTY no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "AllowAgentForwarding no",
                    "PrintMotd no",
                    "UseDNS no",
                    "MaxSessions 256",
                    "MaxStartups 512:30:1024",
                    "LoginGraceTime 20",
                    "LogLevel ERROR",
                ]
            )
            + "\n"
        )

    def start(self) -> None:
        env = {"PATH": "/usr/bin:/bin", **self.env}
        self.proc = subprocess.Popen(
            [self.binary, "-D", "-e", "-f", str(self.workdir / "sshd_config")],
            user=self.account.pw_uid,
            group=self.account.pw_gid,
            extra_groups=[],
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stderr=open(self.workdir / "sshd.log", "wb"),  # noqa: SIM115 - lives with the process
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"sshd exited: {(self.workdir / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        sys.exit("sshd did not come up within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def write_ssh_wrapper(path: Path, ssh_config: Path) -> str:
    """An ``ssh`` that reads ``ssh_config`` (the emulated nodes' aliases) instead of ~/.ssh/config."""
    path.write_text(f'#!/bin/sh\nexec ssh -F "{ssh_config}" "$@"\n')
    path.chmod(0o755)
    return str(path)


def write_ssh_config(path: Path, nodes: Sequence[str], ports: dict[str, int], *, fdpass: bool) -> None:
    """One Host alias per node, each reaching its port on 127.0.0.1.

    With ``fdpass`` the alias connects through ``fdpass.py`` (``ProxyUseFdpass``): ssh's
    ``%C`` control path then hashes the alias rather than 127.0.0.1, so each node gets its
    own shared connection. Without it (the PoC's fresh connections) ssh connects directly.
    """
    lines = []
    for name in nodes:
        lines.append(f"Host {name}")
        if fdpass:
            lines += [
                f"  ProxyCommand {SYSTEM_PYTHON} -I -S {HERE / 'fdpass.py'} {ports[name]}",
                "  ProxyUseFdpass yes",
            ]
        else:
            lines += ["  HostName 127.0.0.1", f"  Port {ports[name]}"]
        lines.append(f"  HostKeyAlias {HOST_KEY_ALIAS}")
    path.write_text("\n".join(lines) + "\n")


class HubsProcess:
    """``fakehubs.py`` in a child process; it exits when we close its stdin."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        spec_file = workdir / "hubs-spec.json"
        spec_file.write_text(json.dumps(spec))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fakehubs.py"), str(spec_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            sys.exit("the fake hubs did not start")
        doc = json.loads(line)
        self.hubs: dict[str, int] = doc["hubs"]
        self.silent: dict[str, dict[str, int]] = doc["silent"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def make_probe_venv(workdir: Path) -> str:
    """A virtualenv of the system's Python with the multijhub wheel, as a hub has (jupyterhub role).

    The wheel is built from this checkout with pip (setuptools, no network); returns the
    virtualenv's python, which the emulated probe account can run.
    """
    wheels, venv = workdir / "wheels", workdir / "probe-venv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
    )
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
    wheel = next(wheels.glob("multijhub-*.whl"))
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)], check=True)
    return str(venv / "bin" / "python")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
