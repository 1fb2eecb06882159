"""Hub rules the lookup, the module and the front door share: a hub's URLs (public, base and
internal), and what its REST API says of a user's server.

Two ways users reach the hubs:

- **proxied** (``multijhub_public_url`` set, the example inventory's and the demo's choice): users
  only ever see the front door's address; the front door's nginx proxies ``/node/<hub>/`` to each
  hub over TLS (the internal CA), and each hub's ``base_url`` is its prefix, so that its cookies
  are scoped by path. The hub's public URL is ``<multijhub_public_url>/node/<hub>``.
- **direct** (``multijhub_public_url`` unset): the front door redirects the browser to each hub's
  own address (``jupyterhub_public_url``), as sites that already expose their hubs have it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "PROXY_PREFIX",
    "HubUrls",
    "cluster_public_url",
    "default_server",
    "hub_base_url",
    "hub_port",
    "hub_public_url",
    "hub_urls",
]

# Every hub's path prefix under the one public address (proxied mode).
PROXY_PREFIX = "/node/"
# An inventory name that is one safe path segment: letters, digits, '-', '_' and single dots
# (host names and FQDNs), never '.' or '..' or anything a URL or nginx would interpret.
_HUB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?![.]|$))*")
# multijhub_public_url as written, byte for byte (urlsplit alone drops tabs, newlines and leading
# spaces, which then reached nginx's configuration and the front door's headers): https://, a DNS name
# (labels of letters, digits and inner '-', no trailing dot: nginx's server_name would never match) or
# a bracketed IPv6 address, an optional port, an optional '/'.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_CLUSTER_URL = re.compile(
    rf"[Hh][Tt][Tt][Pp][Ss]://(?P<host>{_LABEL}(?:\.{_LABEL})*|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{{1,5}}))?/?"
)


class HubUrls(NamedTuple):
    """A hub's URLs, without trailing slashes except ``base_url``.

    ``base_url``: JupyterHub's ``base_url`` (``/`` or ``/x/y/``); ``public_url``: what browsers
    use; ``internal_url``: what the front door's proxy and its API client use (the hub itself,
    https with the internal CA in proxied mode; the public URL in direct mode).
    """

    base_url: str
    public_url: str
    internal_url: str


def cluster_public_url(url: object) -> str:
    """``multijhub_public_url`` checked and without a trailing slash.

    It must be ``https://host[:port]`` with nothing after the authority but an optional ``/``:
    the hubs' prefixes are appended to it. ``host`` is a DNS name without a trailing dot or a
    bracketed IPv6 address, ``port`` 1 to 65535; no whitespace anywhere. Raises ValueError naming
    the variable otherwise.
    """
    text = str(url or "")
    match = _CLUSTER_URL.fullmatch(text)
    if (
        match is None
        or (match["port"] is not None and not 0 < int(match["port"]) <= 65535)
        or (match["ipv6"] is not None and not _is_ipv6(match["ipv6"]))
    ):
        raise ValueError(
            "multijhub_public_url must be https://host[:port] without a path, query, credentials or"
            f" spaces, with a port from 1 to 65535, not {text!r}"
        )
    return text.rstrip("/")


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def hub_base_url(host: str, cluster_url: str | None = None, base_url: str | None = None) -> str:
    """JupyterHub's ``base_url`` of ``host``: ``/node/<host>/`` when ``cluster_url``
    (``multijhub_public_url``) is set, else ``base_url`` (``jupyterhub_base_url``, default ``/``).

    Raises ValueError when the inventory name cannot be a path segment, or when a
    ``jupyterhub_base_url`` given in proxied mode is not the hub's prefix.
    """
    if not cluster_url:
        return str(base_url or "/")
    if not _HUB_NAME.fullmatch(host):
        raise ValueError(
            f"hub {host!r}: with multijhub_public_url the inventory name is the hub's path prefix "
            "and must be letters, digits, '-', '_' and single dots"
        )
    prefix = f"{PROXY_PREFIX}{host}/"
    if base_url not in (None, "", prefix):
        raise ValueError(
            f"jupyterhub_base_url of {host} is {base_url!r}, but with multijhub_public_url every hub's "
            f"base URL is its prefix {prefix!r}: leave jupyterhub_base_url unset"
        )
    return prefix


def hub_port(host: str, port: object = None) -> int:
    """``jupyterhub_port`` of ``host`` as a TCP port (1 to 65535), 8000 when unset (None or '').

    An integer or a string of ASCII digits; anything else (0, 99999, '8000x', True, 8000.5) raises
    ValueError naming the variable: it would end up in nginx's upstream and in the hub's URLs.
    """
    if port is None or port == "":
        return 8000
    number = None
    if isinstance(port, int) and not isinstance(port, bool):
        number = port
    elif isinstance(port, str) and port.strip().isascii() and port.strip().isdigit():
        number = int(port.strip())
    if number is None or not 0 < number <= 65535:
        raise ValueError(f"jupyterhub_port of {host} must be a TCP port from 1 to 65535, not {port!r}")
    return number


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
        return f"http://{host}:{hub_port(host, port)}{base}"
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


def hub_urls(host: str, hostvars: Mapping[str, Any]) -> HubUrls:
    """The URLs of ``host`` from its Ansible variables (``hostvars[host]``).

    Reads ``multijhub_public_url`` (proxied mode when set), ``jupyterhub_public_url``,
    ``jupyterhub_port`` (default 8000) and ``jupyterhub_base_url``. In proxied mode the public
    URL is ``<multijhub_public_url>/node/<host>`` and the internal one
    ``https://<host>:<port>/node/<host>``. Raises ValueError (naming the variable) for a setting
    that cannot be, e.g. ``jupyterhub_public_url`` beside ``multijhub_public_url``.
    """
    cluster = hostvars.get("multijhub_public_url") or None
    port = hostvars.get("jupyterhub_port")
    if cluster is None:
        base = hub_base_url(host, None, hostvars.get("jupyterhub_base_url") or "/")
        public = hub_public_url(host, hostvars.get("jupyterhub_public_url") or None, port, base)
        return HubUrls(base, public, public)
    cluster = cluster_public_url(cluster)
    if hostvars.get("jupyterhub_public_url"):
        raise ValueError(
            f"jupyterhub_public_url of {host} is set, but multijhub_public_url puts every hub behind the "
            "front door's one address: remove jupyterhub_public_url (or multijhub_public_url for direct mode)"
        )
    base = hub_base_url(host, cluster, hostvars.get("jupyterhub_base_url") or None)
    prefix = base.rstrip("/")
    return HubUrls(base, cluster + prefix, f"https://{host}:{hub_port(host, port)}{prefix}")


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
