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

The PostgreSQL store implements ``place`` as one transaction that takes
``pg_advisory_xact_lock`` on a hash of the user name.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from .config import ConfigError, StoreConfig

HISTORY_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class PlacementContext:
    """What the chooser is told inside the per-user lock."""

    user: str
    previous: str | None  # the node the user was last placed on or seen on
    recent: str | None  # a placement of this user younger than the window
    pending: Mapping[str, int]  # other users placed per node within the window


@dataclass(frozen=True)
class Placement:
    """The outcome of ``place``."""

    user: str
    node: str
    placed_at: float
    reused: bool  # True when the recent placement was kept (no new row)


Chooser = Callable[[PlacementContext], "str | None"]


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
CREATE TABLE IF NOT EXISTS drained (
    node TEXT PRIMARY KEY,
    since REAL NOT NULL,
    by_user TEXT NOT NULL DEFAULT ''
);
"""


class SqliteStore:
    """AssignmentStore on a local SQLite file (never on NFS).

    Every call opens its own connection, so the store is safe across threads
    and forked gunicorn workers. ``BEGIN IMMEDIATE`` takes the database write
    lock before reading the user's row: a lock wider than per-user, which
    SQLite's single writer makes cheap.
    """

    def __init__(self, path: str, *, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def previous_node(self, user: str) -> str | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT node FROM assignments WHERE user = ?", (user,)).fetchone()
        finally:
            conn.close()
        return row[0] if row else None

    def record_running(self, user: str, node: str, now: float | None = None) -> None:
        if self.previous_node(user) == node:
            return  # the usual case: no write on every login
        now = time.time() if now is None else now
        with self._tx() as conn:
            row = conn.execute("SELECT node FROM assignments WHERE user = ?", (user,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO assignments (user, node, seen_at) VALUES (?, ?, ?)",
                    (user, node, now),
                )
            elif row[0] == node:
                conn.execute("UPDATE assignments SET seen_at = ? WHERE user = ?", (now, user))
            else:
                conn.execute(
                    "UPDATE assignments SET node = ?, previous = ?, placed_at = NULL,"
                    " seen_at = ? WHERE user = ?",
                    (node, row[0], now, user),
                )

    def pending_counts(
        self, *, window: float, now: float | None = None, exclude: str | None = None
    ) -> dict[str, int]:
        now = time.time() if now is None else now
        conn = self._connect()
        try:
            return _pending(conn, now - window, exclude)
        finally:
            conn.close()

    def place(
        self,
        user: str,
        choose: Chooser,
        *,
        window: float,
        now: float | None = None,
    ) -> Placement | None:
        now = time.time() if now is None else now
        with self._tx() as conn:
            row = conn.execute("SELECT node, placed_at FROM assignments WHERE user = ?", (user,)).fetchone()
            previous = row[0] if row else None
            recent = None
            if row and row[1] is not None and row[1] >= now - window:
                recent = row[0]
            context = PlacementContext(
                user=user,
                previous=previous,
                recent=recent,
                pending=_pending(conn, now - window, user),
            )
            node = choose(context)
            if node is None:
                return None
            if node == recent:
                return Placement(user, node, float(row[1]), reused=True)
            if row is None:
                conn.execute(
                    "INSERT INTO assignments (user, node, placed_at) VALUES (?, ?, ?)",
                    (user, node, now),
                )
            else:
                conn.execute(
                    "UPDATE assignments SET node = ?, previous = ?, placed_at = ? WHERE user = ?",
                    (node, previous, now, user),
                )
            conn.execute(
                "INSERT INTO placements (user, node, placed_at) VALUES (?, ?, ?)",
                (user, node, now),
            )
            conn.execute("DELETE FROM placements WHERE placed_at < ?", (now - HISTORY_SECONDS,))
            return Placement(user, node, now, reused=False)

    def placements(self, user: str | None = None) -> list[tuple[str, str, float]]:
        """Recorded placements (user, node, time), oldest first."""
        conn = self._connect()
        try:
            sql = "SELECT user, node, placed_at FROM placements"
            args: tuple[str, ...] = ()
            if user is not None:
                sql += " WHERE user = ?"
                args = (user,)
            return [tuple(r) for r in conn.execute(sql + " ORDER BY id", args)]
        finally:
            conn.close()

    def drained_nodes(self) -> frozenset[str]:
        conn = self._connect()
        try:
            return frozenset(r[0] for r in conn.execute("SELECT node FROM drained"))
        finally:
            conn.close()

    def set_drained(self, node: str, drained: bool, *, by: str = "") -> None:
        with self._tx() as conn:
            if drained:
                conn.execute(
                    "INSERT OR IGNORE INTO drained (node, since, by_user) VALUES (?, ?, ?)",
                    (node, time.time(), by),
                )
            else:
                conn.execute("DELETE FROM drained WHERE node = ?", (node,))

    def close(self) -> None:
        """Nothing is held open between calls."""


def _pending(conn: sqlite3.Connection, since: float, exclude: str | None) -> dict[str, int]:
    rows = conn.execute(
        "SELECT node, COUNT(DISTINCT user) FROM placements WHERE placed_at >= ? AND user != ? GROUP BY node",
        (since, exclude or ""),
    )
    return {node: int(count) for node, count in rows}


def open_store(config: StoreConfig) -> AssignmentStore:
    """Open the store named by the configuration."""
    if config.kind == "sqlite":
        return SqliteStore(config.path)
    if config.kind == "postgresql":
        from .pgstore import PostgresStore  # noqa: PLC0415 - psycopg only with a DSN

        return PostgresStore(config.dsn)
    raise ConfigError(f"store: unknown store kind {config.kind!r}")
