"""A hub's public URL: the one rule the lookup, the front door and the preflight share."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["hub_public_url"]


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
