"""Where users were placed: the assignment store interface and its SQLite form.

The contract every store keeps (SQLite here, PostgreSQL in ``pgstore.py``):

- ``place`` runs under a per-user lock held across read-decide-write, so two
  simultaneous first logins of one user (in any thread, process or front
  door sharing the store) get the same node: the second one sees the first
  one's fresh placement and is offered it as ``recent``.
- placements carry timestamps; ``pending_counts`` says how many placements per
  node are younger than the window (servers that may not show in memory yet).
- drained nodes set at run time (admin page, issue 7) live in the store so
  every front door sees them.
- failed logins (``login_failures``, see ``throttle.py``) live there too, so every
  worker and front door counts the same attempts.

Both keep these rules in one place, ``sqlstore.SqlStore``, and differ only in how
they connect and lock: SQLite's ``BEGIN IMMEDIATE`` takes the database's write lock,
PostgreSQL takes ``pg_advisory_xact_lock`` on a hash of the user name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol

from multijhub.core.cgroupmem import UnitMemory

from .config import ConfigError, StoreConfig
from .sqlstore import (
    FORGET_SECONDS,
    HISTORY_SECONDS,
    MEMORY_HISTORY,
    Chooser,
    Dialect,
    OomKill,
    Placement,
    PlacementContext,
    SessionPeak,
    SqlStore,
)

__all__ = [
    "FORGET_SECONDS",
    "HISTORY_SECONDS",
    "MEMORY_HISTORY",
    "AssignmentStore",
    "Chooser",
    "OomKill",
    "Placement",
    "PlacementContext",
    "SessionPeak",
    "SqliteStore",
    "open_store",
]


class AssignmentStore(Protocol):
    """Persistent, shared memory of where users were placed."""

    def previous_node(self, user: str) -> str | None:
        """The node the user was last placed on or seen running on."""
        ...

    def record_running(self, user: str, node: str, now: float | None = None) -> None:
        """Remember that the user's server was found on ``node``."""
        ...

    def pending_counts(
        self, *, window: float, now: float | None = None, exclude: str | None = None
    ) -> dict[str, int]:
        """Placements per node younger than ``window`` seconds."""
        ...

    def place(
        self,
        user: str,
        choose: Chooser,
        *,
        window: float,
        now: float | None = None,
    ) -> Placement | None:
        """Choose and record a node for ``user`` under the user's lock.

        ``choose`` gets a PlacementContext and returns a node name or None
        (nothing recorded then).
        """
        ...

    def drained_nodes(self) -> frozenset[str]:
        """Nodes drained at run time."""
        ...

    def set_drained(self, node: str, drained: bool, *, by: str = "") -> None:
        """Drain or undrain ``node``."""
        ...

    def record_memory(
        self,
        units: Mapping[str, Sequence[UnitMemory]],
        *,
        now: float | None = None,
        history: int = MEMORY_HISTORY,
        forget: float = FORGET_SECONDS,
    ) -> list[OomKill]:
        """Record the servers' memory per node (bytes); the OOM kills not seen before."""
        ...

    def session_peaks(self, users: Iterable[str] | None = None) -> dict[str, list[SessionPeak]]:
        """Recorded sessions per user, newest first."""
        ...

    def oom_kills(self, limit: int = 20) -> list[OomKill]:
        """The most recent OOM kills recorded, newest first."""
        ...

    def record_login_failures(self, subjects: Sequence[str], now: float | None = None) -> None:
        """Count one failed login per subject (see throttle.py)."""
        ...

    def login_failure_block(
        self, subject: str, amount: int, window: float, now: float | None = None
    ) -> float | None:
        """Until when ``subject`` is blocked by ``amount`` failures within ``window`` seconds."""
        ...

    def clear_login_failures(self, subject: str) -> None:
        """Forget ``subject``'s failed logins."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS assignments (
    user TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    previous TEXT,
    placed_at REAL,
    seen_at REAL
);
CREATE TABLE IF NOT EXISTS placements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    node TEXT NOT NULL,
    placed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS placements_time ON placements (placed_at);
CREATE TABLE IF NOT EXISTS login_failures (
    subject TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_subject ON login_failures (subject, at);
CREATE TABLE IF NOT EXISTS drained (
    node TEXT PRIMARY KEY,
    since REAL NOT NULL,
    by_user TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS memory_sessions (
    user TEXT NOT NULL,
    session TEXT NOT NULL,
    node TEXT NOT NULL,
    peak INTEGER NOT NULL,
    current INTEGER NOT NULL,
    oom_kills INTEGER NOT NULL DEFAULT 0,
    seen_at REAL NOT NULL,
    PRIMARY KEY (user, session)
);
CREATE INDEX IF NOT EXISTS memory_sessions_seen ON memory_sessions (seen_at);
CREATE TABLE IF NOT EXISTS oom_kills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    node TEXT NOT NULL,
    kills INTEGER NOT NULL,
    at REAL NOT NULL
);
"""


class SqliteStore(SqlStore):
    """AssignmentStore on a local SQLite file (never on NFS).

    Every call opens its own connection, so the store is safe across threads
    and forked gunicorn workers. ``BEGIN IMMEDIATE`` takes the database write
    lock before reading the user's row: a lock wider than per-user, which
    SQLite's single writer makes cheap.
    """

    dialect = Dialect(param="?", prefix="", user="user")

    def __init__(self, path: str, *, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        with self._read() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def close(self) -> None:
        """Nothing is held open between calls."""


def open_store(config: StoreConfig) -> AssignmentStore:
    """Open the store named by the configuration."""
    if config.kind == "sqlite":
        return SqliteStore(config.path)
    if config.kind == "postgresql":
        from .pgstore import PostgresStore  # noqa: PLC0415 - psycopg only with a DSN

        return PostgresStore(config.dsn)
    raise ConfigError(f"store: unknown store kind {config.kind!r}")
