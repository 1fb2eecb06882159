"""Password login: validate the username first, then ask PAM."""

from __future__ import annotations

import grp
import logging
import pwd
from typing import Protocol

import pam
from multijhub_core.usernames import InvalidUsername, validate_username

log = logging.getLogger(__name__)

MAX_PASSWORD = 1024


class Authenticator(Protocol):
    """Checks a (validated) username and a password."""

    def authenticate(self, username: str, password: str) -> bool: ...


class PamAuthenticator:
    """Authenticate against a PAM service through python-pam."""

    def __init__(self, service: str = "login") -> None:
        self.service = service

    def authenticate(self, username: str, password: str) -> bool:
        return bool(pam.authenticate(username, password, service=self.service))


class LoginRefused(Exception):
    """Credentials refused; the reason is for logs only, never for the page."""


def check_login(authenticator: Authenticator, username: object, password: object) -> str:
    """Return the canonical username when the credentials are good.

    Raises ``LoginRefused`` for anything else; the username is validated by
    the core before PAM ever sees it.
    """
    try:
        name = validate_username(username)
    except InvalidUsername as exc:
        raise LoginRefused("invalid username") from exc
    if not isinstance(password, str) or not password:
        raise LoginRefused("empty password")
    if len(password) > MAX_PASSWORD or "\x00" in password:
        raise LoginRefused("unacceptable password")
    try:
        ok = authenticator.authenticate(name, password)
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
