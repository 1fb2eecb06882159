"""Strict validation of user names, before any path is built from them."""

from __future__ import annotations

import pwd
import re

__all__ = ["InvalidUsername", "UnknownUser", "lookup_user", "validate_username"]

_PATTERN = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_MAX_SHOWN = 40


class InvalidUsername(ValueError):
    """The name is not an acceptable user name (nothing was looked up)."""


class UnknownUser(LookupError):
    """The name is valid but no such user exists on this host."""


def _shown(name: str) -> str:
    """A safe, bounded representation of hostile input for messages."""
    text = repr(name[:_MAX_SHOWN])
    return text + ("..." if len(name) > _MAX_SHOWN else "")


def validate_username(name: object) -> str:
    """Return ``name`` if it is a strict POSIX-style user name, else raise InvalidUsername.

    Accepted: ``^[a-z_][a-z0-9_.-]{0,31}$`` without ``..`` and not ending with ``.``.
    No I/O is done.
    """
    if not isinstance(name, str):
        raise InvalidUsername(f"user name must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidUsername("user name is empty")
    if len(name) > 32:
        raise InvalidUsername(f"user name {_shown(name)} is longer than 32 characters")
    if _PATTERN.fullmatch(name) is None:
        raise InvalidUsername(
            f"user name {_shown(name)} is invalid: it must start with a-z or _ and contain "
            "only a-z, 0-9, '_', '.' and '-'"
        )
    if ".." in name:
        raise InvalidUsername(f"user name {_shown(name)} must not contain '..'")
    if name.endswith("."):
        raise InvalidUsername(f"user name {_shown(name)} must not end with '.'")
    return name


def lookup_user(name: str) -> pwd.struct_passwd:
    """Validate ``name``, then return its passwd entry; UnknownUser if there is none."""
    valid = validate_username(name)
    try:
        return pwd.getpwnam(valid)
    except KeyError:
        raise UnknownUser(f"no such user: {valid!r}") from None
