"""Hub rules the lookup, the module and the front door share: a hub's public URL, and what its
REST API says of a user's server."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

__all__ = ["default_server", "hub_public_url"]


def hub_public_url(
    host: str, public_url: str | None = None, port: int | str | None = None, base_url: str | None = "/"
) -> str:
    """The URL browsers use for a hub, without a trailing slash.

    ``public_url`` is the hub's ``jupyterhub_public_url`` (``scheme://host[:port]``, optionally
    followed by the hub's base URL), ``port`` its ``jupyterhub_port`` (default 8000), ``base_url``
    its ``jupyterhub_base_url`` (default ``/``). Without ``public_url``:
    ``http://<host>:<port><base_url>``; a ``public_url`` without a path gets the base URL appended.
    Raises ValueError when ``public_url`` has a path other than the base URL (the two settings
    disagree) or is not an http(s) URL.
    """
    base = "/" + str(base_url or "/").strip("/")
    base = "" if base == "/" else base
    if not public_url:
        return f"http://{host}:{int(port or 8000)}{base}"
    url = str(public_url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"jupyterhub_public_url of {host} must be an http(s) URL, not {url!r}")
    path = parts.path.rstrip("/")
    if not path:
        return url.rstrip("/") + base
    if path != base:
        raise ValueError(
            f"jupyterhub_public_url of {host} ({url}) has the path {parts.path!r} but its "
            f"jupyterhub_base_url is {base_url!r}: leave the path out (the base URL is added)"
            " or make them equal"
        )
    return url.rstrip("/")


def default_server(status: int, model: object) -> dict[str, Any] | None:
    """The user's default server (``servers[""]``) from ``GET /hub/api/users/{name}``, or None.

    ``status`` is the HTTP status and ``model`` the decoded JSON body. 404 (the hub knows no
    such user) and a user without a default server are None: the hub runs no server of theirs.
    Raises ValueError for any other answer (the caller reports the hub API as not answering).
    """
    if status == 404:
        return None
    if status != 200 or not isinstance(model, dict):
        raise ValueError(f"hub API answered HTTP {status}")
    servers = model.get("servers")
    if not isinstance(servers, dict):
        # The user model carries "servers" only with the read:servers scope.
        raise ValueError("hub API gave no servers (token lacks read:servers?)")
    server = servers.get("")
    if server is not None and not isinstance(server, dict):
        raise ValueError("hub API gave an unexpected server model")
    return server
