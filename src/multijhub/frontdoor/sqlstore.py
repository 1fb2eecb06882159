"""The assignment store's rules, written once over SQL; each database gives its dialect.

``SqlStore`` holds every read-decide-write of the store contract (see ``store.py``).
A subclass supplies the connection handling (``_read`` and ``_tx``), the per-user lock
taken at the start of a writing transaction (``_lock_user``) and a ``Dialect``: the
parameter style, the table name prefix and the name of the user column. The SQL used
(``INSERT ... ON CONFLICT``) is understood by SQLite 3.24+ and PostgreSQL 9.5+.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from multijhub.core.cgroupmem import UnitMemory

HISTORY_SECONDS = 7 * 24 * 3600
MEMORY_HISTORY = 10  # session peaks kept per user
FORGET_SECONDS = 90 * 24 * 3600  # a user not seen for this long is forgotten
REFRESH_SECONDS = 600.0  # an unchanged session's seen_at is written at most this often
_MEMORY_LOCK = "*memory*"  # not a valid user name: the lock of record_memory

FAILURE_HISTORY_SECONDS = 24 * 3600  # failed logins are kept this long (throttle.MAX_WINDOW)


@dataclass(frozen=True)
class PlacementContext:
    """What the chooser is told inside the per-user lock."""

    user: str
    previous: str | None  # the node the user was last placed on or seen on
    recent: str | None  # a placement of this user younger than the window
    pending: Mapping[str, int]  # other users placed per node within the window
    pending_users: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ... by name


@dataclass(frozen=True)
class OomKill:
    """Processes of a user's server killed by the kernel for its memory limit, as first seen."""

    user: str
    node: str
    kills: int
    at: float  # seconds since the epoch


@dataclass(frozen=True)
class SessionPeak:
    """One recorded server session: its peak and latest memory (bytes), where and when seen."""

    user: str
    node: str
    peak: int
    current: int
    seen_at: float
    session: str = ""  # the cgroup's id on its node


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

    def _pending_users(self, conn: Any, since: float, exclude: str | None) -> dict[str, tuple[str, ...]]:  # noqa: ANN401
        rows = conn.execute(
            self.dialect(
                "SELECT DISTINCT node, {user} FROM {t}placements WHERE placed_at >= {p} AND {user} != {p}"
                " ORDER BY node, {user}"
            ),
            (since, exclude or ""),
        )
        out: dict[str, list[str]] = {}
        for node, name in rows:
            out.setdefault(node, []).append(name)
        return {node: tuple(names) for node, names in out.items()}

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
                user=user,
                previous=previous,
                recent=recent,
                pending=self._pending(conn, now - window, user),
                pending_users=self._pending_users(conn, now - window, user),
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

    # Learned sizes (issue 19): each user's recent server sessions and their peaks.

    def record_memory(
        self,
        units: Mapping[str, Sequence[UnitMemory]],
        *,
        now: float | None = None,
        history: int = MEMORY_HISTORY,
        forget: float = FORGET_SECONDS,
    ) -> list[OomKill]:
        """Record the servers' memory reported per node; return the OOM kills not seen before.

        ``units`` maps a node that answered to its units (the probe's ``units``). A session
        (user, cgroup id) keeps the largest peak reported; each user keeps the ``history``
        newest sessions; users not seen for ``forget`` seconds are forgotten, with their OOM
        kills. A server missing from a report ends nothing here: unknown is not absent.
        """
        now = time.time() if now is None else now
        q = self.dialect
        kills: list[OomKill] = []
        new_users: set[str] = set()
        with self._tx() as conn:
            self._lock_user(conn, _MEMORY_LOCK)  # several front doors: one writer at a time
            for node, reported in units.items():
                for u in reported:
                    row = conn.execute(
                        q(
                            "SELECT peak, oom_kills, node, seen_at FROM {t}memory_sessions"
                            " WHERE {user} = {p} AND session = {p}"
                        ),
                        (u.user, u.session),
                    ).fetchone()
                    if row is None:
                        conn.execute(
                            q(
                                "INSERT INTO {t}memory_sessions"
                                " ({user}, session, node, peak, current, oom_kills, seen_at)"
                                " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
                            ),
                            (u.user, u.session, node, u.peak, u.current, u.oom_kills, now),
                        )
                        new_users.add(u.user)
                        delta = u.oom_kills
                    elif (
                        u.peak <= int(row[0])
                        and u.oom_kills <= int(row[1])
                        and node == row[2]
                        and now < float(row[3]) + REFRESH_SECONDS
                    ):
                        continue  # nothing new: no write on every login
                    else:
                        key = (u.user, u.session)
                        conn.execute(
                            q(
                                "UPDATE {t}memory_sessions SET node = {p}, peak = {p}, current = {p},"
                                " oom_kills = {p}, seen_at = {p} WHERE {user} = {p} AND session = {p}"
                            ),
                            (
                                node,
                                max(int(row[0]), u.peak),
                                u.current,
                                max(int(row[1]), u.oom_kills),
                                now,
                                *key,
                            ),
                        )
                        delta = u.oom_kills - int(row[1])
                    if delta > 0:
                        conn.execute(
                            q(
                                "INSERT INTO {t}oom_kills ({user}, node, kills, at)"
                                " VALUES ({p}, {p}, {p}, {p})"
                            ),
                            (u.user, node, delta, now),
                        )
                        kills.append(OomKill(u.user, node, delta, now))
            for name in sorted(new_users):
                conn.execute(
                    q(
                        "DELETE FROM {t}memory_sessions WHERE {user} = {p} AND session NOT IN"
                        " (SELECT session FROM {t}memory_sessions WHERE {user} = {p}"
                        " ORDER BY seen_at DESC LIMIT {p})"
                    ),
                    (name, name, history),
                )
            self._forget(conn, now - forget)
        return kills

    def _forget(self, conn: Any, cutoff: float) -> None:  # noqa: ANN401 - a DB-API connection
        q = self.dialect
        conn.execute(
            q(
                "DELETE FROM {t}memory_sessions WHERE {user} IN (SELECT {user} FROM {t}memory_sessions"
                " GROUP BY {user} HAVING MAX(seen_at) < {p})"
            ),
            (cutoff,),
        )
        conn.execute(
            q(
                "DELETE FROM {t}oom_kills WHERE {user} NOT IN (SELECT {user} FROM {t}memory_sessions)"
                " AND at < {p}"
            ),
            (cutoff,),
        )

    def session_peaks(self, users: Iterable[str] | None = None) -> dict[str, list[SessionPeak]]:
        """Recorded sessions per user (all users when ``users`` is None), newest first."""
        sql = self.dialect("SELECT {user}, node, peak, current, seen_at, session FROM {t}memory_sessions")
        wanted = None if users is None else sorted(set(users))
        out: dict[str, list[SessionPeak]] = {}
        with self._read() as conn:
            if wanted is None:
                batches: list[tuple[str, ...]] = [()]
            else:
                batches = [tuple(wanted[i : i + 500]) for i in range(0, len(wanted), 500)]
            for batch in batches:
                if wanted is not None and not batch:
                    continue
                where = ""
                if batch:
                    marks = ", ".join([self.dialect.param] * len(batch))
                    where = self.dialect(" WHERE {user} IN (") + marks + ")"
                for r in conn.execute(sql + where + " ORDER BY seen_at DESC", batch):
                    peak = SessionPeak(r[0], r[1], int(r[2]), int(r[3]), float(r[4]), str(r[5]))
                    out.setdefault(r[0], []).append(peak)
        return out

    def oom_kills(self, limit: int = 20) -> list[OomKill]:
        """The most recent OOM kills recorded, newest first."""
        sql = self.dialect(
            "SELECT {user}, node, kills, at FROM {t}oom_kills ORDER BY at DESC, id DESC LIMIT {p}"
        )
        with self._read() as conn:
            return [OomKill(r[0], r[1], int(r[2]), float(r[3])) for r in conn.execute(sql, (limit,))]

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
