"""Is an account still allowed to log in? Asked at every hand-off, without a password.

The front door asks before it mints a login proof, and the hub asks again before it accepts
one, so an account expired, locked or forced to change its password after the user logged in
at the front door gets no new hub session. Two sources, both read-only:

- PAM account management (``pam_acct_mgmt``, through ``pamela``, the PAM binding JupyterHub's
  PAMAuthenticator uses for its own ``check_account``): expiry (``usermod -e``), a password
  that must be changed (``chage -d 0``), unknown users, and whatever the site's PAM stack adds
  (pam_access, pam_time, SSSD's account rules).
- A locked password in the local ``/etc/shadow`` (``passwd -l``, ``usermod -L``: the hash
  starts with ``!``). pam_unix's account management does not look at it: a locked password
  only fails a password check, and a login proof carries no password. The same file tells
  an expiry apart from another refusal when the PAM stack folds it into a plain "denied"
  (Debian's ``common-account`` does). Accounts that are not in the local shadow file (LDAP,
  SSSD) are left to PAM.

Plain Python: no JupyterHub import (the front door copies this module); ``pamela`` is
imported when first needed.
"""

from __future__ import annotations

import pwd
import time
from typing import Final

OK: Final = "ok"
EXPIRED: Final = "expired"
PASSWORD_CHANGE: Final = "password_change"  # noqa: S105 - a state, not a password
LOCKED: Final = "locked"
UNKNOWN_USER: Final = "unknown_user"
DENIED: Final = "denied"
UNAVAILABLE: Final = "unavailable"

# Answers that say the account may not log in now (UNAVAILABLE says the check itself failed).
REFUSED: Final = frozenset({EXPIRED, PASSWORD_CHANGE, LOCKED, UNKNOWN_USER, DENIED})

# Linux-PAM return codes (security/_pam_types.h).
_PAM_CODES: Final = {
    6: DENIED,  # PAM_PERM_DENIED
    7: DENIED,  # PAM_AUTH_ERR
    10: UNKNOWN_USER,  # PAM_USER_UNKNOWN
    12: PASSWORD_CHANGE,  # PAM_NEW_AUTHTOK_REQD
    13: EXPIRED,  # PAM_ACCT_EXPIRED
    27: EXPIRED,  # PAM_AUTHTOK_EXPIRED
}

MESSAGES: Final = {
    EXPIRED: "Your account has expired.",
    PASSWORD_CHANGE: "Your password has expired and must be changed before you can log in.",
    LOCKED: "Your account is locked.",
    UNKNOWN_USER: "Your account no longer exists.",
    DENIED: "Your account may not log in now.",
    UNAVAILABLE: "Your account could not be checked just now. Please try again in a moment.",
}


def pam_state(code: int) -> str:
    """The account state for a non-zero PAM return code (unmapped codes: UNAVAILABLE)."""
    return _PAM_CODES.get(code, UNAVAILABLE)


def shadow_state(user: str, path: str = "/etc/shadow", *, now: float | None = None) -> str | None:
    """What the local shadow file says: LOCKED (hash starting with ``!``), EXPIRED (field 8,
    the account's expiry day, reached), OK, or None when the file cannot be read or has no
    line for the user (nothing known locally).
    """
    prefix = user + ":"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            line = next((line for line in fh if line.startswith(prefix)), None)
    except OSError:
        return None
    if line is None:
        return None
    fields = line.rstrip("\n").split(":")
    if len(fields) > 1 and fields[1].startswith("!"):
        return LOCKED
    expire = fields[7] if len(fields) > 7 else ""
    today = int((time.time() if now is None else now) // 86400)
    if expire.strip().isdigit() and int(expire) <= today:
        return EXPIRED
    return OK


def shadow_locked(user: str, path: str = "/etc/shadow") -> bool | None:
    """True when ``user``'s local password is locked; None when nothing is known locally."""
    state = shadow_state(user, path)
    return None if state is None else state == LOCKED


def check_account(user: str, service: str = "login", *, shadow: str = "/etc/shadow") -> str:
    """The state of ``user``'s account: OK, one of REFUSED, or UNAVAILABLE.

    ``user`` must already be a validated name. PAM's answer comes first; then the local lock.
    """
    import pamela  # noqa: PLC0415 - only where accounts are checked

    try:
        pamela.check_account(user, service=service)
    except pamela.PAMError as exc:
        state = pam_state(int(exc.errno)) if exc.errno is not None else UNAVAILABLE
        # A stack may fold pam_unix's own answer into a plain refusal (Debian's common-account
        # turns ACCT_EXPIRED into pam_deny's AUTH_ERR): the local file says which it was.
        if state != DENIED:
            return state
        local = shadow_state(user, shadow)
        if local in (EXPIRED, LOCKED):
            return local
        try:
            pwd.getpwnam(user)
        except KeyError:
            return UNKNOWN_USER
        return DENIED
    return LOCKED if shadow_state(user, shadow) == LOCKED else OK
