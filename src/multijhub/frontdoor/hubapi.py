"""Ask one hub's REST API about a user's default server (keep-alive connections).

A small pool of ``http.client`` connections per hub, reused between requests: the
resolver asks every hub on every login, and a general-purpose HTTP client costs
several times more CPU per request than the front door spends on everything else.
No proxies from the environment and no redirects are followed; HTTPS verifies the
hub's certificate against the system's trust store, or against the internal CA only (the
front door's ``hub_ca_file``, proxied mode).
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from multijhub.core.hubs import default_server


class HubApiError(Exception):
    """The hub did not give a usable answer."""


PAGINATION = "application/jupyterhub-pagination+json"
REQUIRED_SCOPES = ("read:servers",)
USER_SCOPES = ("read:users", "read:users:name")
MAX_BODY = 4 * 1024 * 1024  # bytes of one answer (a page of 200 user models fits)
# Seconds a kept-alive connection may take to answer before it is taken for dead and the request
# is sent again on a new connection (the hub's API answers in milliseconds).
REUSED_TIMEOUT = 0.5
# A kept-alive connection the hub has closed meanwhile fails on first use: try once more afresh.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.BadStatusLine)


class HubApi:
    """A keep-alive client for ``GET /hub/api/users/{name}`` on one hub.

    A hub answers 404 both for an unknown user and for a user the token may
    not see, so the token's scopes are checked (``GET /hub/api/user``) before
    its first "no server" answer is believed.
    """

    def __init__(
        self,
        node: str,
        api_url: str,
        token: str,
        *,
        pool_size: int = 16,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.node = node
        self.api_url = api_url.rstrip("/")
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"hub API URL of {node} must be http(s)://host[:port][/path]")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path
        self._ssl = (
            ssl_context
            if ssl_context is not None
            else (ssl.create_default_context() if self._https else None)
        )
        self._headers = {"Authorization": f"token {token}", "Accept": "application/json"}
        self._pool_size = pool_size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.scopes_ok = False

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (reused=True) or a new one, with ``timeout`` per operation.

        A kept-alive connection gets at most REUSED_TIMEOUT seconds: after its hub restarted (a
        node reboot) it is dead without a word (the hub's firewall drops what the new kernel does
        not know), and must not use up the request's whole deadline.
        """
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            timeout = min(timeout, REUSED_TIMEOUT)
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            return conn, False
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def _forget_idle(self) -> None:
        """Close every kept-alive connection: one turned out dead, so its hub restarted."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def _get(self, path: str, timeout: float, accept: str | None = None) -> tuple[int, bytes]:
        """(status, body) of ``GET <api_url><path>``; raise HubApiError when there is none."""
        headers = self._headers if accept is None else {**self._headers, "Accept": accept}
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            conn, reused = self._connection(max(0.001, deadline - time.monotonic()))
            try:
                conn.request("GET", self._base + path, headers=headers)
                resp = conn.getresponse()
                body = resp.read(MAX_BODY + 1)
            except TimeoutError as exc:
                conn.close()
                if reused and attempt == 1 and deadline - time.monotonic() > 0.05:
                    self._forget_idle()  # the hub restarted: its other kept connections are dead too
                    continue
                raise HubApiError("hub API timed out") from exc
            except _STALE as exc:
                conn.close()
                if reused and attempt == 1:
                    self._forget_idle()
                    continue
                raise HubApiError(f"hub API unreachable: {type(exc).__name__}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise HubApiError(f"hub API unreachable: {type(exc).__name__}") from exc
            if len(body) > MAX_BODY or not resp.isclosed():
                conn.close()  # an answer too large, or one whose rest was not read
                if len(body) > MAX_BODY:
                    raise HubApiError("hub API answer too large")
            elif resp.will_close:
                conn.close()
            else:
                self._release(conn)
            return resp.status, body
        raise HubApiError("hub API unreachable")  # not reached: the second attempt returns or raises

    def _get_json(self, path: str, timeout: float) -> tuple[int, object]:
        status, body = self._get(path, timeout)
        if status == 404:
            return 404, None
        if status != 200:
            raise HubApiError(f"hub API answered HTTP {status}")
        try:
            return 200, json.loads(body)
        except ValueError as exc:
            raise HubApiError("hub API answered something that is not JSON") from exc

    def check_scopes(self, timeout: float) -> None:
        """Raise HubApiError unless the token may read users' servers (cached once true)."""
        if self.scopes_ok:
            return
        _, model = self._get_json("/hub/api/user", timeout)
        scopes = model.get("scopes") if isinstance(model, dict) else None
        if not isinstance(scopes, list):
            raise HubApiError("hub API did not list the token's scopes")
        missing = [s for s in REQUIRED_SCOPES if s not in scopes]
        if not any(s in scopes for s in USER_SCOPES):
            missing.append("read:users")
        if missing:
            raise HubApiError(f"token lacks scope {', '.join(missing)}")
        self.scopes_ok = True

    def user_server(self, username: str, timeout: float) -> dict[str, Any] | None:
        """Return the hub's ``servers[""]`` model for ``username`` or None.

        ``username`` must already be validated. 404 (no such user) means no
        server. Any other failure raises HubApiError.
        """
        self.check_scopes(timeout)
        status, model = self._get_json(f"/hub/api/users/{quote(username, safe='')}", timeout)
        try:
            return default_server(status, model)  # the core's reading, shared with where.yml
        except ValueError as exc:
            raise HubApiError(str(exc)) from None

    def ready_users(self, timeout: float, *, page: int = 200, max_pages: int = 50) -> list[str]:
        """Names of the users with a ready server (``GET /hub/api/users?state=ready``).

        Needs the ``list:users`` scope besides ``read:users``/``read:servers``.
        """
        names: list[str] = []
        for index in range(max_pages):
            query = urlencode({"state": "ready", "offset": index * page, "limit": page})
            status, body = self._get(f"/hub/api/users?{query}", timeout, accept=PAGINATION)
            if status == 403:
                raise HubApiError("token lacks scope list:users")
            if status != 200:
                raise HubApiError(f"hub API answered HTTP {status}")
            try:
                doc = json.loads(body)
            except ValueError as exc:
                raise HubApiError("hub API answered something that is not JSON") from exc
            items = doc.get("items") if isinstance(doc, dict) else doc
            if not isinstance(items, list):
                raise HubApiError("hub API answered an unexpected user list")
            names += [u["name"] for u in items if isinstance(u, dict) and isinstance(u.get("name"), str)]
            more = doc.get("_pagination", {}).get("next") if isinstance(doc, dict) else None
            if not more or len(items) < page:
                break
        return sorted(set(names))

    def close(self) -> None:
        """Close pooled connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
