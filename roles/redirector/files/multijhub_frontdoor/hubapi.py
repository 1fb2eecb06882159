"""Ask one hub's REST API about a user's default server (keep-alive session)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter


class HubApiError(Exception):
    """The hub did not give a usable answer."""


PAGINATION = "application/jupyterhub-pagination+json"
REQUIRED_SCOPES = ("read:servers",)
USER_SCOPES = ("read:users", "read:users:name")


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
        session: requests.Session | None = None,
        pool_size: int = 16,
    ) -> None:
        self.node = node
        self.api_url = api_url.rstrip("/")
        self.session = session or requests.Session()
        if session is None:
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self.session.trust_env = False  # no proxies from the environment
        self.session.headers.update({"Authorization": f"token {token}", "Accept": "application/json"})
        self.scopes_ok = False

    def _get_json(self, url: str, timeout: float) -> tuple[int, object]:
        try:
            resp = self.session.get(url, timeout=timeout, allow_redirects=False)
        except requests.Timeout as exc:
            raise HubApiError("hub API timed out") from exc
        except requests.RequestException as exc:
            raise HubApiError(f"hub API unreachable: {type(exc).__name__}") from exc
        if resp.status_code == 404:
            return 404, None
        if resp.status_code != 200:
            raise HubApiError(f"hub API answered HTTP {resp.status_code}")
        try:
            return 200, resp.json()
        except ValueError as exc:
            raise HubApiError("hub API answered something that is not JSON") from exc

    def check_scopes(self, timeout: float) -> None:
        """Raise HubApiError unless the token may read users' servers (cached once true)."""
        if self.scopes_ok:
            return
        _, model = self._get_json(f"{self.api_url}/hub/api/user", timeout)
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
        url = f"{self.api_url}/hub/api/users/{quote(username, safe='')}"
        status, model = self._get_json(url, timeout)
        if status == 404:
            return None
        if not isinstance(model, dict):
            raise HubApiError("hub API answered an unexpected document")
        servers = model.get("servers")
        if not isinstance(servers, dict):
            # The user model carries "servers" only with the read:servers scope.
            raise HubApiError("hub API gave no servers (token lacks read:servers?)")
        server = servers.get("")
        if server is None:
            return None
        if not isinstance(server, dict):
            raise HubApiError("hub API gave an unexpected server model")
        return server

    def ready_users(self, timeout: float, *, page: int = 200, max_pages: int = 50) -> list[str]:
        """Names of the users with a ready server (``GET /hub/api/users?state=ready``).

        Needs the ``list:users`` scope besides ``read:users``/``read:servers``.
        """
        names: list[str] = []
        headers = {"Accept": PAGINATION}
        for index in range(max_pages):
            query = urlencode({"state": "ready", "offset": index * page, "limit": page})
            url = f"{self.api_url}/hub/api/users?{query}"
            try:
                resp = self.session.get(url, timeout=timeout, allow_redirects=False, headers=headers)
            except requests.RequestException as exc:
                raise HubApiError(f"hub API unreachable: {type(exc).__name__}") from exc
            if resp.status_code == 403:
                raise HubApiError("token lacks scope list:users")
            if resp.status_code != 200:
                raise HubApiError(f"hub API answered HTTP {resp.status_code}")
            try:
                doc = resp.json()
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
        self.session.close()
