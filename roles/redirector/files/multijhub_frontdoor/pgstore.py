"""The assignment store on PostgreSQL (psycopg 3), for several front doors sharing one answer.

Same contract as SqliteStore. ``place`` is one transaction that first takes
``pg_advisory_xact_lock`` on the user's name: the lock is held across read-decide-write
and released by COMMIT/ROLLBACK, so two front doors placing one user at once give the
same node, while other users are not held up. Connections are kept per thread and per
process (gunicorn forks) and replaced when broken.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from .store import HISTORY_SECONDS, Chooser, Placement, PlacementContext

LOCK_NAMESPACE = 0x6D6A6862  # "mjhb": first key of the two-key advisory locks

_SCHEMA = """
CREATE TABLE IF NOT EXISTS multijhub_assignments (
    username TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    previous TEXT,
    placed_at DOUBLE PRECISION,
    seen_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS multijhub_placements (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL,
    node TEXT NOT NULL,
    placed_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS multijhub_placements_time ON multijhub_placements (placed_at);
CREATE TABLE IF NOT EXISTS multijhub_drained (
    node TEXT PRIMARY KEY,
    since DOUBLE PRECISION NOT NULL,
    by_user TEXT NOT NULL DEFAULT ''
);
"""


class PostgresStore:
    """AssignmentStore on a PostgreSQL database named by a ``postgresql://`` DSN."""

    def __init__(self, dsn: str, *, connect_timeout: int = 5) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        with self._tx() as conn:
            # Two front doors starting together must not race on CREATE TABLE.
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_NAMESPACE,))
            conn.execute(_SCHEMA)

    def _conn(self) -> psycopg.Connection:
        conn: psycopg.Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or getattr(self._local, "pid", None) != os.getpid():
            conn = psycopg.connect(self.dsn, connect_timeout=self.connect_timeout, autocommit=True)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection]:
        conn = self._conn()
        try:
            with conn.transaction():
                yield conn
        except psycopg.OperationalError:
            conn.close()  # a broken connection is replaced on the next call
            raise

    def previous_node(self, user: str) -> str | None:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT node FROM multijhub_assignments WHERE username = %s", (user,)
            ).fetchone()
        return row[0] if row else None

    def record_running(self, user: str, node: str, now: float | None = None) -> None:
        if self.previous_node(user) == node:
            return  # the usual case: no write on every login
        now = time.time() if now is None else now
        with self._tx() as conn:
            _lock_user(conn, user)
            row = conn.execute(
                "SELECT node FROM multijhub_assignments WHERE username = %s", (user,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO multijhub_assignments (username, node, seen_at) VALUES (%s, %s, %s)",
                    (user, node, now),
                )
            elif row[0] == node:
                conn.execute("UPDATE multijhub_assignments SET seen_at = %s WHERE username = %s", (now, user))
            else:
                conn.execute(
                    "UPDATE multijhub_assignments SET node = %s, previous = %s, placed_at = NULL,"
                    " seen_at = %s WHERE username = %s",
                    (node, row[0], now, user),
                )

    def pending_counts(
        self, *, window: float, now: float | None = None, exclude: str | None = None
    ) -> dict[str, int]:
        now = time.time() if now is None else now
        with self._tx() as conn:
            return _pending(conn, now - window, exclude)

    def place(
        self,
        user: str,
        choose: Chooser,
        *,
        window: float,
        now: float | None = None,
    ) -> Placement | None:
        with self._tx() as conn:
            _lock_user(conn, user)
            # Read the clock after the lock: a placement made while we waited is "recent".
            now = time.time() if now is None else now
            row = conn.execute(
                "SELECT node, placed_at FROM multijhub_assignments WHERE username = %s", (user,)
            ).fetchone()
            previous = row[0] if row else None
            recent = row[0] if row and row[1] is not None and row[1] >= now - window else None
            context = PlacementContext(
                user=user, previous=previous, recent=recent, pending=_pending(conn, now - window, user)
            )
            node = choose(context)
            if node is None:
                return None
            if row is not None and node == recent:
                return Placement(user, node, float(row[1]), reused=True)
            conn.execute(
                "INSERT INTO multijhub_assignments (username, node, placed_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (username) DO UPDATE SET node = EXCLUDED.node,"
                " previous = multijhub_assignments.node, placed_at = EXCLUDED.placed_at",
                (user, node, now),
            )
            conn.execute(
                "INSERT INTO multijhub_placements (username, node, placed_at) VALUES (%s, %s, %s)",
                (user, node, now),
            )
            conn.execute("DELETE FROM multijhub_placements WHERE placed_at < %s", (now - HISTORY_SECONDS,))
            return Placement(user, node, now, reused=False)

    def placements(self, user: str | None = None) -> list[tuple[str, str, float]]:
        """Recorded placements (user, node, time), oldest first."""
        sql = "SELECT username, node, placed_at FROM multijhub_placements"
        args: tuple[str, ...] = ()
        if user is not None:
            sql += " WHERE username = %s"
            args = (user,)
        with self._tx() as conn:
            return [(r[0], r[1], float(r[2])) for r in conn.execute(sql + " ORDER BY id", args)]

    def drained_nodes(self) -> frozenset[str]:
        with self._tx() as conn:
            return frozenset(r[0] for r in conn.execute("SELECT node FROM multijhub_drained"))

    def set_drained(self, node: str, drained: bool, *, by: str = "") -> None:
        with self._tx() as conn:
            if drained:
                conn.execute(
                    "INSERT INTO multijhub_drained (node, since, by_user) VALUES (%s, %s, %s)"
                    " ON CONFLICT (node) DO NOTHING",
                    (node, time.time(), by),
                )
            else:
                conn.execute("DELETE FROM multijhub_drained WHERE node = %s", (node,))

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _lock_user(conn: psycopg.Connection, user: str) -> None:
    """The per-user lock, held until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, user))


def _pending(conn: psycopg.Connection, since: float, exclude: str | None) -> dict[str, int]:
    rows = conn.execute(
        "SELECT node, COUNT(DISTINCT username) FROM multijhub_placements"
        " WHERE placed_at >= %s AND username != %s GROUP BY node",
        (since, exclude or ""),
    )
    return {node: int(count) for node, count in rows}
