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
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from .sqlstore import Dialect, SqlStore

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
CREATE TABLE IF NOT EXISTS multijhub_login_failures (
    subject TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS multijhub_login_failures_subject ON multijhub_login_failures (subject, at);
CREATE TABLE IF NOT EXISTS multijhub_drained (
    node TEXT PRIMARY KEY,
    since DOUBLE PRECISION NOT NULL,
    by_user TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS multijhub_memory_sessions (
    username TEXT NOT NULL,
    session TEXT NOT NULL,
    node TEXT NOT NULL,
    peak BIGINT NOT NULL,
    current BIGINT NOT NULL,
    oom_kills BIGINT NOT NULL DEFAULT 0,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (username, session)
);
CREATE INDEX IF NOT EXISTS multijhub_memory_sessions_seen ON multijhub_memory_sessions (seen_at);
CREATE TABLE IF NOT EXISTS multijhub_oom_kills (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL,
    node TEXT NOT NULL,
    kills BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
"""


class PostgresStore(SqlStore):
    """AssignmentStore on a PostgreSQL database named by a ``postgresql://`` DSN."""

    dialect = Dialect(param="%s", prefix="multijhub_", user="username")

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

    _read = _tx  # reads run in a (short) transaction on this thread's connection too

    def _lock_user(self, conn: psycopg.Connection, user: str) -> None:
        """The per-user lock, held until the transaction ends."""
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, user))

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
