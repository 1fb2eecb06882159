"""The assignment store's rules, written once over SQL; each database gives its dialect.

``SqlStore`` holds every read-decide-write of the store contract (see ``store.py``).
A subclass supplies the connection handling (``_read`` and ``_tx``), the per-user lock
taken at the start of a writing transaction (``_lock_user``) and a ``Dialect``: the
parameter style, the table name prefix and the name of the user column. The SQL used
(``INSERT ... ON CONFLICT``) is understood by SQLite 3.24+ and PostgreSQL 9.5+.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

HISTORY_SECONDS = 7 * 24 * 3600
FAILURE_HISTORY_SECONDS = 24 * 3600  # failed logins are kept this long (throttle.MAX_WINDOW)


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


@dataclass(frozen=True)
class Dialect:
    """How one database spells the store's SQL."""

    param: str  # "?" (sqlite3) or "%s" (psycopg)
    prefix: str  # prepended to the table names
    user: str  # the user column

    def __call__(self, template: str) -> str:
        return template.format(p=self.param, t=self.prefix, user=self.user)


class SqlStore:
    """The store contract over SQL; subclasses connect and lock."""

    dialect: Dialect

    def _read(self) -> AbstractContextManager[Any]:
        """A connection for reading."""
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[Any]:
        """A connection inside a writing transaction (committed on success)."""
        raise NotImplementedError

    def _lock_user(self, conn: Any, user: str) -> None:  # noqa: ANN401 - a DB-API connection
        """Hold ``user``'s lock until the transaction ends (no-op where ``_tx`` locks wider)."""

    def _pending(self, conn: Any, since: float, exclude: str | None) -> dict[str, int]:  # noqa: ANN401
        rows = conn.execute(
            self.dialect(
                "SELECT node, COUNT(DISTINCT {user}) FROM {t}placements"
                " WHERE placed_at >= {p} AND {user} != {p} GROUP BY node"
            ),
            (since, exclude or ""),
        )
        return {node: int(count) for node, count in rows}

    def previous_node(self, user: str) -> str | None:
        """The node the user was last placed on or seen running on."""
        sql = self.dialect("SELECT node FROM {t}assignments WHERE {user} = {p}")
        with self._read() as conn:
            row = conn.execute(sql, (user,)).fetchone()
        return row[0] if row else None

    def record_running(self, user: str, node: str, now: float | None = None) -> None:
        """Remember that the user's server was found on ``node``."""
        if self.previous_node(user) == node:
            return  # the usual case: no write on every login
        now = time.time() if now is None else now
        q = self.dialect
        with self._tx() as conn:
            self._lock_user(conn, user)
            row = conn.execute(q("SELECT node FROM {t}assignments WHERE {user} = {p}"), (user,)).fetchone()
            if row is None:
                conn.execute(
                    q("INSERT INTO {t}assignments ({user}, node, seen_at) VALUES ({p}, {p}, {p})"),
                    (user, node, now),
                )
            elif row[0] == node:
                conn.execute(q("UPDATE {t}assignments SET seen_at = {p} WHERE {user} = {p}"), (now, user))
            else:
                conn.execute(
                    q(
                        "UPDATE {t}assignments SET node = {p}, previous = {p}, placed_at = NULL,"
                        " seen_at = {p} WHERE {user} = {p}"
                    ),
                    (node, row[0], now, user),
                )

    def pending_counts(
        self, *, window: float, now: float | None = None, exclude: str | None = None
    ) -> dict[str, int]:
        """Users placed per node within the last ``window`` seconds (``exclude`` left out)."""
        now = time.time() if now is None else now
        with self._read() as conn:
            return self._pending(conn, now - window, exclude)

    def place(
        self, user: str, choose: Chooser, *, window: float, now: float | None = None
    ) -> Placement | None:
        """Choose and record a node for ``user`` under the user's lock (see store.AssignmentStore)."""
        q = self.dialect
        with self._tx() as conn:
            self._lock_user(conn, user)
            # Read the clock after the lock: a placement made while we waited is "recent".
            now = time.time() if now is None else now
            row = conn.execute(
                q("SELECT node, placed_at FROM {t}assignments WHERE {user} = {p}"), (user,)
            ).fetchone()
            previous = row[0] if row else None
            recent = row[0] if row and row[1] is not None and row[1] >= now - window else None
            context = PlacementContext(
                user=user, previous=previous, recent=recent, pending=self._pending(conn, now - window, user)
            )
            node = choose(context)
            if node is None:
                return None
            if row is not None and node == recent:
                return Placement(user, node, float(row[1]), reused=True)
            conn.execute(
                q(
                    "INSERT INTO {t}assignments ({user}, node, placed_at) VALUES ({p}, {p}, {p})"
                    " ON CONFLICT ({user}) DO UPDATE SET node = excluded.node,"
                    " previous = {t}assignments.node, placed_at = excluded.placed_at"
                ),
                (user, node, now),
            )
            conn.execute(
                q("INSERT INTO {t}placements ({user}, node, placed_at) VALUES ({p}, {p}, {p})"),
                (user, node, now),
            )
            conn.execute(q("DELETE FROM {t}placements WHERE placed_at < {p}"), (now - HISTORY_SECONDS,))
            return Placement(user, node, now, reused=False)

    def placements(self, user: str | None = None) -> list[tuple[str, str, float]]:
        """Recorded placements (user, node, time), oldest first."""
        sql = self.dialect("SELECT {user}, node, placed_at FROM {t}placements")
        args: tuple[str, ...] = ()
        if user is not None:
            sql += self.dialect(" WHERE {user} = {p}")
            args = (user,)
        with self._read() as conn:
            return [(r[0], r[1], float(r[2])) for r in conn.execute(sql + " ORDER BY id", args)]

    def drained_nodes(self) -> frozenset[str]:
        """Nodes drained at run time."""
        with self._read() as conn:
            return frozenset(r[0] for r in conn.execute(self.dialect("SELECT node FROM {t}drained")))

    def set_drained(self, node: str, drained: bool, *, by: str = "") -> None:
        """Drain or undrain ``node``."""
        q = self.dialect
        with self._tx() as conn:
            if drained:
                conn.execute(
                    q(
                        "INSERT INTO {t}drained (node, since, by_user) VALUES ({p}, {p}, {p})"
                        " ON CONFLICT (node) DO NOTHING"
                    ),
                    (node, time.time(), by),
                )
            else:
                conn.execute(q("DELETE FROM {t}drained WHERE node = {p}"), (node,))

    # --- failed logins (throttle.FailureThrottle) -------------------------------------------

    def record_login_failures(self, subjects: Sequence[str], now: float | None = None) -> None:
        """Count one failed login for each subject (``user:NAME``, ``addr:ADDRESS``)."""
        now = time.time() if now is None else now
        q = self.dialect
        with self._tx() as conn:
            for subject in subjects:
                conn.execute(
                    q("INSERT INTO {t}login_failures (subject, at) VALUES ({p}, {p})"), (subject, now)
                )
            conn.execute(q("DELETE FROM {t}login_failures WHERE at < {p}"), (now - FAILURE_HISTORY_SECONDS,))

    def login_failure_block(
        self, subject: str, amount: int, window: float, now: float | None = None
    ) -> float | None:
        """Until when ``subject`` is blocked by ``amount`` failures within ``window`` seconds, or None.

        The ``amount``-th most recent failure inside the window leaves it ``window`` seconds
        after it happened; before that the subject has ``amount`` failures in the window.
        """
        now = time.time() if now is None else now
        sql = self.dialect(
            "SELECT at FROM {t}login_failures WHERE subject = {p} AND at > {p}"
            " ORDER BY at DESC LIMIT 1 OFFSET {p}"
        )
        with self._read() as conn:
            row = conn.execute(sql, (subject, now - window, max(0, amount - 1))).fetchone()
        return None if row is None else float(row[0]) + window

    def clear_login_failures(self, subject: str) -> None:
        """Forget ``subject``'s failed logins (no write when there are none: the usual login)."""
        with self._read() as conn:
            sql = self.dialect("SELECT 1 FROM {t}login_failures WHERE subject = {p} LIMIT 1")
            if conn.execute(sql, (subject,)).fetchone() is None:
                return
        with self._tx() as conn:
            conn.execute(self.dialect("DELETE FROM {t}login_failures WHERE subject = {p}"), (subject,))
