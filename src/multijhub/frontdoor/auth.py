"""Password login: normalise and validate the user name first, then ask PAM.

PAM (python-pam) checks the password and then the account (``pam_acct_mgmt``): an expired
account or a password that must be changed fails with its own code, which is told to the
user (only after a correct password). ``AccountChecker`` asks again, without a password,
at every hand-off to a hub (``multijhub.hub.account``, through pamela).
"""

from __future__ import annotations

import grp
import logging
import pwd
from collections.abc import Callable
from typing import Protocol

import pam

from multijhub.core.usernames import DEFAULT_PATTERN, InvalidUsername, normalize_username, validate_username
from multijhub.hub import account

log = logging.getLogger(__name__)

MAX_PASSWORD = 1024


class Authenticator(Protocol):
    """Checks a (validated) username and a password.

    Returns False for wrong credentials; raises AccountRefused when the password was
    right but the account may not log in (expired, password must be changed).
    """

    def authenticate(self, username: str, password: str) -> bool: ...


AccountChecker = Callable[[str], str]  # user -> multijhub.hub.account state


class AccountRefused(Exception):
    """Right password, but the account may not log in; ``state`` from multijhub.hub.account."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class PamAuthenticator:
    """Authenticate against a PAM service through python-pam (auth, then account)."""

    def __init__(self, service: str = "login") -> None:
        self.service = service

    def authenticate(self, username: str, password: str) -> bool:
        handle = pam.PamAuthenticator()  # one per call: safe across threads
        if handle.authenticate(username, password, service=self.service):
            return True
        # pam_authenticate failed (wrong password): AUTH_ERR and friends, never told apart.
        # pam_acct_mgmt failed after a right password: an account state worth telling.
        state = account.pam_state(handle.code)
        if handle.code in (12, 13, 27):  # NEW_AUTHTOK_REQD, ACCT_EXPIRED, AUTHTOK_EXPIRED
            raise AccountRefused(state)
        return False

    def check_account(self, username: str) -> str:
        """The account's state now, without a password (PAM account management + local lock)."""
        return account.check_account(username, self.service)


class LoginRefused(Exception):
    """Credentials refused; the reason is for logs only, never for the page."""


def check_login(
    authenticator: Authenticator,
    username: object,
    password: object,
    *,
    pattern: str = DEFAULT_PATTERN,
) -> str:
    """Return the canonical username when the credentials are good.

    The name is normalised (``Juser1`` -> ``juser1``) and validated by the core before PAM
    ever sees it. Raises ``LoginRefused`` for anything else, ``AccountRefused`` when the
    password was right but the account may not log in.
    """
    try:
        name = validate_username(normalize_username(username), pattern)
    except InvalidUsername as exc:
        raise LoginRefused("invalid username") from exc
    if not isinstance(password, str) or not password:
        raise LoginRefused("empty password")
    if len(password) > MAX_PASSWORD or "\x00" in password:
        raise LoginRefused("unacceptable password")
    try:
        ok = authenticator.authenticate(name, password)
    except AccountRefused:
        raise
    except Exception:  # a broken PAM stack must not become a 500
        log.exception("authentication backend failed for %s", name)
        raise LoginRefused("authentication backend failed") from None
    if not ok:
        raise LoginRefused("bad credentials")
    return name


def in_group(username: str, group: str) -> bool:
    """Whether ``username`` is a member (primary or supplementary) of ``group``."""
    if not group:
        return False
    try:
        gr = grp.getgrnam(group)
    except KeyError:
        return False
    if username in gr.gr_mem:
        return True
    try:
        return pwd.getpwnam(username).pw_gid == gr.gr_gid
    except KeyError:
        return False
