"""A throwaway PostgreSQL server for the tests (Debian's postgresql package).

initdb into a fresh directory and postgres listening on a unix socket only, run as the
``postgres`` system user when the tests run as root; stopped at the end of the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PORT = 54329  # names the socket file only: nothing listens on TCP


def _binaries() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


class PgServer:
    """A running server; ``dsn(db)`` names a database on it."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="multijhub-pg-")
        self.data = os.path.join(self.root, "data")
        self.sock = os.path.join(self.root, "sock")
        os.mkdir(self.sock)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for path in (self.root, self.sock):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self.proc: subprocess.Popen[bytes] | None = None
        self.count = 0

    def start(self) -> None:
        subprocess.run(
            _as_owner(
                [f"{self.bindir}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
        self.proc = subprocess.Popen(
            _as_owner(
                [
                    f"{self.bindir}/postgres",
                    "-D",
                    self.data,
                    "-k",
                    self.sock,
                    "-p",
                    str(PORT),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres did not start: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            ready = subprocess.run(
                [f"{self.bindir}/pg_isready", "-h", self.sock, "-p", str(PORT)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not become ready in 30 s")

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.sock}&port={PORT}"

    def new_database(self) -> str:
        import psycopg  # noqa: PLC0415 - only once the fixture found psycopg

        self.count += 1
        name = f"frontdoor_{self.count}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # smart shutdown of the server we started
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _unavailable(reason: str) -> None:
    """Skip, except where every test must run (make test sets MULTIJHUB_REQUIRE_ALL_TESTS=1)."""
    if os.environ.get("MULTIJHUB_REQUIRE_ALL_TESTS") == "1":
        pytest.fail(f"{reason}; make test installs it through molecule/host/prepare-host.sh")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = _binaries()
    if bindir is None:
        _unavailable("PostgreSQL server binaries are absent (apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no postgres system user to run the server")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]==3.3.9')")
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    return pg_server.new_database()
