"""Slow down password guessing: count failed logins per user name and per client address.

What password-guessing defences in the field do (pam_faillock, fail2ban, identity providers'
"smart lockout"): only *failed* attempts count, so a class of 30 logging in correctly from
behind one NAT address is never refused; a user name that collected too many failures
within the window is refused before PAM is asked, without locking out other names; an
address that collected many more failures (someone trying many names) is refused too.

The failures live in the assignment store (``login_failures``: SQLite or PostgreSQL), so
every gunicorn worker and every front door sharing the store counts the same attempts.
Limits are written like flask-limiter's (``"10 per 10 minutes; 30 per day"``) and parsed
by the ``limits`` library. The window is a moving one: a name is free again ``window``
seconds after the failure that reached the limit. A success clears the name's failures.
Attempts refused while throttled never reach PAM and do not count again, so an attacker
cannot keep a name refused beyond the window of the failures that PAM actually saw.
Checks and counts are not one transaction: requests racing in parallel may each pass the
check before any of them is counted (at most one extra attempt per concurrent request).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from limits import parse_many

MAX_WINDOW = 24 * 3600.0  # failures are kept this long (seconds)


class FailureStore(Protocol):
    """The part of the assignment store the throttle uses."""

    def record_login_failures(self, subjects: Sequence[str], now: float | None = None) -> None:
        """Count one failure for each subject (``user:NAME``, ``addr:ADDRESS``)."""
        ...

    def login_failure_block(
        self, subject: str, amount: int, window: float, now: float | None = None
    ) -> float | None:
        """Until when (epoch seconds) ``subject`` is blocked: ``amount`` failures within ``window``."""
        ...

    def clear_login_failures(self, subject: str) -> None:
        """Forget ``subject``'s failures."""
        ...


@dataclass(frozen=True)
class Limit:
    """``amount`` failures within ``window`` seconds."""

    amount: int
    window: float


@dataclass(frozen=True)
class Throttled:
    """Why and for how long a login is refused without asking PAM."""

    scope: str  # "user" or "address"
    retry_after: int  # seconds, at least 1


def parse_limits(text: str, where: str) -> tuple[Limit, ...]:
    """Parse ``"10 per 10 minutes; 30 per day"``; ``""`` or ``"off"``: no limit.

    Raises ValueError naming ``where`` for bad syntax, a zero amount or a window over a day.
    """
    if text.strip().lower() in ("", "off"):
        return ()
    try:
        items = parse_many(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {text!r} is not a limit like '10 per 10 minutes' ({exc})") from None
    out = []
    for item in items:
        window = float(item.get_expiry())
        if item.amount < 1 or not 0 < window <= MAX_WINDOW:
            raise ValueError(
                f"{where}: {text!r}: each limit needs at least 1 attempt and a window up to a day"
            )
        out.append(Limit(int(item.amount), window))
    return tuple(out)


def user_subject(user: str) -> str:
    return "user:" + user


def address_subject(address: str) -> str:
    return "addr:" + address


class FailureThrottle:
    """Failed-login limits per user name and per client address over a shared store."""

    def __init__(self, store: FailureStore, per_user: Sequence[Limit], per_address: Sequence[Limit]) -> None:
        self.store = store
        self.per_user = tuple(per_user)
        self.per_address = tuple(per_address)

    def _blocked_until(self, subject: str, limits: Sequence[Limit], now: float) -> float | None:
        until = None
        for limit in limits:
            end = self.store.login_failure_block(subject, limit.amount, limit.window, now)
            if end is not None and end > now and (until is None or end > until):
                until = end
        return until

    def check(self, user: str | None, address: str, now: float | None = None) -> Throttled | None:
        """None when the attempt may go to PAM; else which limit refuses it and for how long."""
        now = time.time() if now is None else now
        for scope, subject, limits in (
            ("user", user_subject(user) if user else None, self.per_user),
            ("address", address_subject(address), self.per_address),
        ):
            if subject is None or not limits:
                continue
            until = self._blocked_until(subject, limits, now)
            if until is not None:
                return Throttled(scope, max(1, math.ceil(until - now)))
        return None

    def failed(self, user: str | None, address: str, now: float | None = None) -> None:
        """Count a failed attempt for the name (when it was a valid name) and the address."""
        subjects = [address_subject(address)] if self.per_address else []
        if user and self.per_user:
            subjects.append(user_subject(user))
        if subjects:
            self.store.record_login_failures(subjects, now)

    def succeeded(self, user: str) -> None:
        """A correct password: the name's earlier failures no longer count."""
        if self.per_user:
            self.store.clear_login_failures(user_subject(user))
