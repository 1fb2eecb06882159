"""The user-name rule of multijhub, in one place: normalisation, then validation.

Every part agrees on it: the front door (login form, session), ``where.yml`` (its lookup)
and ``site.yml``'s preflight (``multijhub_users``). The hubs' probe, the ``jupyter_servers``
module and the decision check the safety bounds only, so that a site's wider rule passes them.

The rule has two layers:

- **Safety bounds**, fixed, because names become paths, unit names and ssh arguments:
  a string of 1-32 characters from ``a-z 0-9 _ . - @``, starting with ``a-z``, ``0-9`` or
  ``_``, without ``..`` and not ending with ``.``. No pattern can widen these.
- **The site's pattern** (``multijhub_username_pattern``), a Python regular expression that
  must match the whole name; default ``DEFAULT_PATTERN`` (``[a-z_][a-z0-9_.-]{0,31}``, the
  POSIX-style names ``useradd`` makes). A site whose names start with a digit or carry an
  ``@`` widens it, e.g. ``[a-z0-9_][a-z0-9_.@-]{0,31}``; the bounds above still apply.
"""

from __future__ import annotations

import functools
import pwd
import re

__all__ = [
    "DEFAULT_PATTERN",
    "InvalidUsername",
    "InvalidUsernamePattern",
    "UnknownUser",
    "compile_pattern",
    "lookup_user",
    "normalize_username",
    "validate_username",
]

DEFAULT_PATTERN = r"[a-z_][a-z0-9_.-]{0,31}"
MAX_LENGTH = 32
_BOUNDS = re.compile(r"[a-z0-9_][a-z0-9_.@-]*")
_MAX_SHOWN = 40


class InvalidUsername(ValueError):
    """The name is not an acceptable user name (nothing was looked up)."""


class InvalidUsernamePattern(ValueError):
    """The site's user-name pattern is not a usable regular expression."""


class UnknownUser(LookupError):
    """The name is valid but no such user exists on this host."""


def _shown(name: str) -> str:
    """A safe, bounded representation of hostile input for messages."""
    text = repr(name[:_MAX_SHOWN])
    return text + ("..." if len(name) > _MAX_SHOWN else "")


@functools.lru_cache(maxsize=16)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a site pattern (``^``/``$`` optional: the whole name must match).

    Raises InvalidUsernamePattern for a non-string, empty or invalid expression.
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidUsernamePattern("the user-name pattern must be a non-empty regular expression")
    core = pattern.removeprefix("^").removesuffix("$") if pattern != "^$" else pattern
    try:
        return re.compile(core)
    except re.error as exc:
        raise InvalidUsernamePattern(
            f"the user-name pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from None


def normalize_username(name: object) -> object:
    """The name as the hubs see it: spaces around it removed, ASCII lower-cased.

    JupyterHub's ``Authenticator.normalize_username`` lower-cases every name, so ``Juser1``
    typed on a phone is ``juser1`` at the hub; the front door does the same before it
    validates. Non-ASCII text is left as it is (and then refused), so no other script's
    letter is folded onto an ASCII one. Anything that is not a string is returned unchanged.
    """
    if not isinstance(name, str):
        return name
    stripped = name.strip(" ")
    return stripped.lower() if stripped.isascii() else stripped


def validate_username(name: object, pattern: str | None = DEFAULT_PATTERN) -> str:
    """Return ``name`` if the rule accepts it, else raise InvalidUsername.

    ``pattern``: the site's pattern (default ``DEFAULT_PATTERN``); None checks the safety
    bounds only. No normalisation and no I/O are done. InvalidUsernamePattern for a bad pattern.
    """
    if not isinstance(name, str):
        raise InvalidUsername(f"user name must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidUsername("user name is empty")
    if len(name) > MAX_LENGTH:
        raise InvalidUsername(f"user name {_shown(name)} is longer than {MAX_LENGTH} characters")
    if _BOUNDS.fullmatch(name) is None:
        raise InvalidUsername(
            f"user name {_shown(name)} is invalid: it must start with a-z, 0-9 or _ and contain "
            "only a-z, 0-9, '_', '.', '-' and '@'"
        )
    if ".." in name:
        raise InvalidUsername(f"user name {_shown(name)} must not contain '..'")
    if name.endswith("."):
        raise InvalidUsername(f"user name {_shown(name)} must not end with '.'")
    if pattern is not None and compile_pattern(pattern).fullmatch(name) is None:
        shown = "the default rule: it must start with a-z or _ and contain only a-z, 0-9, '_', '.' and '-'"
        if pattern != DEFAULT_PATTERN:
            shown = f"the site's rule {pattern!r}"
        raise InvalidUsername(f"user name {_shown(name)} is invalid under {shown}")
    return name


def lookup_user(name: str) -> pwd.struct_passwd:
    """Validate ``name`` (safety bounds), then return its passwd entry; UnknownUser if none."""
    valid = validate_username(name, pattern=None)
    try:
        return pwd.getpwnam(valid)
    except KeyError:
        raise UnknownUser(f"no such user: {valid!r}") from None
