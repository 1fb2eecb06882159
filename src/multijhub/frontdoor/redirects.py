"""Build redirects to the hubs and check user-supplied ``next`` values.

A ``next`` is a path on a hub, relative to the hub's base URL (for example
``/user/juser1/lab/tree/a.ipynb`` or ``/hub/user-redirect/lab``). The checks
follow JupyterHub's ``BaseHandler._validate_next_url`` and are stricter:
anything that is not plainly such a path becomes ``""`` (no next).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote, urlencode, urlsplit

from .config import NodeConfig

MAX_NEXT = 2048
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")  # control characters and spaces
_UNSAFE_START = ("//", "/\\")


def _base_path(base_url: str) -> str:
    return urlsplit(base_url).path.rstrip("/")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _strip_own_origin(value: str, nodes: Sequence[NodeConfig]) -> str | None:
    """For an absolute URL naming a configured hub, return its hub-relative path."""
    candidate = value
    if candidate.startswith("//"):
        candidate = "http:" + candidate  # scheme-relative: compare the host only
        scheme_free = True
    else:
        scheme_free = False
    try:
        parts = urlsplit(candidate)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    for node in nodes:
        scheme, netloc = _origin(node.base_url)
        if parts.netloc.lower() != netloc:
            continue
        if not scheme_free and parts.scheme.lower() != scheme:
            continue
        base = _base_path(node.base_url)
        if base and not (parts.path == base or parts.path.startswith(base + "/")):
            continue
        path = "/" + parts.path[len(base) :].lstrip("/")
        if parts.query:
            path += "?" + parts.query
        if parts.fragment:
            path += "#" + parts.fragment
        return path
    return None


def _has_dot_segment(path: str) -> bool:
    return any(seg in (".", "..") for seg in path.split("?", 1)[0].split("/"))


def _safe_path(value: str) -> bool:
    """A hub path with nothing hidden in up to three layers of %-encoding."""
    if not value.startswith("/") or _has_dot_segment(value):
        return False
    decoded = value
    for _ in range(3):
        decoded = unquote(decoded)
        if _CONTROL.search(decoded.replace(" ", "")) or "\\" in decoded:
            return False
        if decoded.startswith(_UNSAFE_START) or _has_dot_segment(decoded):
            return False
    return True


def validate_next(value: object, nodes: Sequence[NodeConfig]) -> str:
    """Return a safe hub-relative path for ``value``, or ``""``.

    Refused: non-strings, overlong values, control characters and CR/LF
    (raw or percent-encoded), backslashes, ``//host`` and ``///host``,
    schemes (``https:``, ``javascript:``, ...), relative paths, dot segments,
    and absolute URLs of any host that is not a configured hub. An absolute
    URL of a configured hub is reduced to its path, like JupyterHub does for
    its own host.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT:
        return ""
    if _CONTROL.search(value) or "\\" in value or value.startswith("///"):
        return ""
    path: str | None = value
    if not value.startswith("/") or value.startswith("//"):
        path = _strip_own_origin(value, nodes)
    return path if path is not None and _safe_path(path) else ""


def spawn_url(node: NodeConfig, next_path: str = "") -> str:
    """The URL that starts (or opens) the user's server on ``node``.

    ``/hub/spawn`` spawns the default server when none runs (no options form)
    and redirects to ``next`` (or the server) when one is already running or
    pending; a user not yet logged in at the hub is sent through
    ``/hub/login?next=/hub/spawn...`` by the hub itself.
    """
    url = f"{node.base_url}/hub/spawn"
    if next_path:
        url += "?" + urlencode({"next": _base_path(node.base_url) + next_path})
    return url


def login_url(next_path: str = "") -> str:
    """The front door's own login page, keeping a validated ``next``."""
    if next_path:
        return "/login?" + urlencode({"next": next_path})
    return "/login"


def on_cluster(url: str, nodes: Sequence[NodeConfig]) -> bool:
    """Whether ``url`` lies under one of the configured hubs' base URLs."""
    if _CONTROL.search(url) or "\\" in url:
        return False
    return any(url.startswith(node.base_url + "/") for node in nodes)
