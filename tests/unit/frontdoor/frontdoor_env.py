"""Test helpers for the front door: real app, real store, hubs faked only at HTTP and ssh.

A module of its own (not conftest) so that test directories can run together.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from multijhub.frontdoor.app import create_app
from multijhub.frontdoor.auth import AccountRefused
from multijhub.frontdoor.config import load_config, read_secret_file
from multijhub.frontdoor.hubapi import HubApi
from multijhub.frontdoor.probe import ProbeError, RunResult, SshProbe
from multijhub.frontdoor.resolver import Resolver
from multijhub.frontdoor.store import SqliteStore

ROOT = Path(__file__).resolve().parents[3]


GiB = 1024**3
TOKEN = "test-token-0123456789abcdef"


# --------------------------------------------------------------------------- HTTP


class HubState:
    """What the fake hubs answer: per node a mode and the users' server models."""

    def __init__(self) -> None:
        self.servers: dict[str, dict[str, dict[str, Any] | None]] = {}
        self.mode: dict[str, str] = {}
        self.requests: list[tuple[str, str, int]] = []  # (node, path, client port)
        self.lock = threading.Lock()
        self.release = threading.Event()

    def set_server(self, node: str, user: str, *, ready: bool = True, pending: str | None = None) -> None:
        model = {
            "ready": ready,
            "pending": pending,
            "url": f"/user/{user}/",
            "started": "2026-01-01T00:00:00Z",
        }
        self.servers.setdefault(node, {})[user] = model

    def set_user(self, node: str, user: str) -> None:
        """A known user without a running server."""
        self.servers.setdefault(node, {})[user] = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _user_list(self, node: str, query: str) -> None:
        """``GET /hub/api/users?state=ready`` (paginated when asked), needs list:users."""
        if self.headers.get("Authorization") != f"token {TOKEN}" or self.state.mode.get(node) == "nolist":
            self._send(403, b'{"status": 403}')
            return
        args = parse_qs(query)
        offset, limit = int(args.get("offset", ["0"])[0]), int(args.get("limit", ["200"])[0])
        ready = sorted(u for u, srv in self.state.servers.get(node, {}).items() if srv and srv["ready"])
        items = [{"name": u, "kind": "user"} for u in ready[offset : offset + limit]]
        more = offset + limit < len(ready)
        doc: Any = items
        if self.headers.get("Accept") == "application/jupyterhub-pagination+json":
            nxt = {"offset": offset + limit, "limit": limit} if more else None
            doc = {
                "items": items,
                "_pagination": {"offset": offset, "limit": limit, "total": len(ready), "next": nxt},
            }
        self._send(200, json.dumps(doc).encode())

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        listing = re.fullmatch(r"/([a-z0-9]+)/hub/api/users", path)
        if listing:
            with self.state.lock:
                self.state.requests.append((listing.group(1), self.path, self.client_address[1]))
            self._user_list(listing.group(1), query)
            return
        match = re.fullmatch(r"/([a-z0-9]+)/hub/api/(user|users/([^/?]+))", self.path)
        if not match:
            self._send(404, b"{}")
            return
        node, what, user = match.groups()
        with self.state.lock:
            self.state.requests.append((node, self.path, self.client_address[1]))
        if self.headers.get("Authorization") != f"token {TOKEN}":
            self._send(403, b'{"status": 403}')
            return
        mode = self.state.mode.get(node, "ok")
        if what == "user" and mode != "blackhole":
            # whoami: the front door's service token and its (expanded) scopes
            scopes = (
                ["read:users:name"]
                if mode == "noscope"
                else ["read:servers", "read:users", "read:users:name"]
            )
            self._send(200, json.dumps({"kind": "service", "name": "frontdoor", "scopes": scopes}).encode())
            return
        if mode == "blackhole":
            self.state.release.wait(10)
            self._send(503, b"{}")
            return
        if mode == "error":
            self._send(500, b"oops", "text/plain")
            return
        if mode == "garbage":
            self._send(200, b"<html>not json</html>", "text/html")
            return
        users = self.state.servers.get(node, {})
        if user not in users:
            self._send(404, b'{"status": 404, "message": "Not Found"}')
            return
        model: dict[str, Any] = {"name": user, "kind": "user"}
        if mode != "noservers":
            server = users[user]
            model["servers"] = {"": server} if server else {}
        self._send(200, json.dumps(model).encode())


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops bursts of new connections
    daemon_threads = True


def start_hubs() -> tuple[HubState, ThreadingHTTPServer]:
    """One local HTTP server plays every hub: /<node>/hub/api/..."""
    state = HubState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    state.port = server.server_address[1]  # type: ignore[attr-defined]
    return state, server


def stop_hubs(state: HubState, server: ThreadingHTTPServer) -> None:
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def hubs() -> Any:
    state, server = start_hubs()
    yield state
    stop_hubs(state, server)


# --------------------------------------------------------------------------- ssh


def evidence(pid: int, verdict: str = "running", kind: str = "jpserver") -> dict[str, Any]:
    return {
        "file": f"{kind}-{pid}.json",
        "pid": pid,
        "kind": kind,
        "mtime": 1.0e9,
        "verdict": verdict,
        "reason": "test",
        "process": None,
    }


@dataclass
class FakeProbe:
    """The ssh boundary: answers the argument vector like the hub's forced command would."""

    mem: dict[str, tuple[int, int]] = field(default_factory=dict)  # host -> (available, total)
    evidence: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    mode: dict[str, str] = field(default_factory=dict)  # host -> ok|hang|fail|garbage|refuse
    units: dict[str, list[Any]] = field(default_factory=dict)  # host -> the report's "units" (cgroups)
    calls: list[list[str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, argv: Any, timeout: float) -> RunResult:
        argv = list(argv)
        assert all(isinstance(a, str) for a in argv)
        with self.lock:
            self.calls.append(argv)
        host, user = argv[-2], argv[-1]
        mode = self.mode.get(host, "ok")
        if mode == "hang":
            self.release.wait(timeout)
            raise ProbeError("probe timed out")
        if mode == "fail":
            return RunResult(255, b"", b"ssh: connect to host hub2 port 22: No route to host\n")
        if mode == "garbage":
            return RunResult(0, b"Welcome!\n", b"")
        if mode == "refuse":
            return RunResult(2, b'{"error": "no such user", "kind": "unknown_user"}\n', b"")
        avail, total = self.mem.get(host, (8 * GiB, 16 * GiB))
        ev = self.evidence.get((host, user), [])
        report = {
            "node": host,
            "user": user,
            "uid": 1001,
            "runtime_dir": f"/home/{user}/.local/share/jupyter/runtime",
            "evidence": ev,
            "servers": [e for e in ev if e["verdict"] == "running"],
            "mem_available": avail,
            "mem_total": total,
            "singleuser_servers": 0,
            "collected_at": time.time(),
        }
        if host in self.units:
            report["units"] = self.units[host]
        return RunResult(0, json.dumps(report).encode(), b"")


# --------------------------------------------------------------------------- config + app


def write_secret(path: Path, value: str) -> str:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def write_config(
    tmp_path: Path, port: int, nodes: tuple[str, ...] = ("hub1", "hub2"), extra: str = "", **top: Any
) -> Path:
    secret = write_secret(tmp_path / "secret_key", "s" * 64)
    top = {"login_rate_limit": "1000 per minute", **top}
    top = {key: value for key, value in top.items() if value is not None}  # None: the app's default
    lines = [
        f'secret_key_file = "{secret}"',
        f'store = "{tmp_path / "assignments.sqlite3"}"',
    ]
    for key, value in top.items():
        lines.append(f"{key} = {json.dumps(value)}")
    lines += [
        "[limits]",
        'mem_per_server = "2G"',
        "pending_seconds = 60",
        "[ssh]",
        'user = "multijhub-probe"',
        'key_file = "/etc/multijhub-frontdoor/probe_key"',
        'known_hosts_file = "/etc/multijhub-frontdoor/known_hosts"',
        'control_dir = "/run/multijhub-frontdoor/ssh"',
        "channels = 0",  # FakeProbe answers one command per request (sessions: test_ssh_session.py)
    ]
    for name in nodes:
        token = write_secret(tmp_path / f"{name}.token", TOKEN)
        lines += [
            "[[nodes]]",
            f'name = "{name}"',
            f'base_url = "http://127.0.0.1:{port}/{name}"',
            f'api_token_file = "{token}"',
            f'ssh_host = "{name}"',
        ]
    path = tmp_path / "frontdoor.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


class FakeAuth:
    """Stands in for PAM; records every call it gets."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.calls: list[tuple[str, str]] = []
        self.account: dict[str, str] = {}  # user -> state PAM's account step refuses with

    def authenticate(self, username: str, password: str) -> bool:
        self.calls.append((username, password))
        ok = self.users.get(username) == password
        if ok and username in self.account:
            raise AccountRefused(self.account[username])
        return ok


PASSWORDS = {"juser1": "pw-juser1", "juser2": "pw-juser2", "juser3": "pw-juser3"}


class FakeAccounts:
    """Stands in for PAM account management: every account is "ok" unless set otherwise."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.calls: list[str] = []

    def __call__(self, user: str) -> str:
        self.calls.append(user)
        return self.state.get(user, "ok")


@dataclass
class Env:
    app: Any
    config: Any
    hubs: HubState
    probe: FakeProbe
    auth: FakeAuth
    store: SqliteStore
    resolver: Resolver
    accounts: FakeAccounts

    def client(self) -> Any:
        return self.app.test_client()

    def login(self, user: str = "juser1", password: str | None = None, next: str | None = None) -> Any:
        client = self.client()
        resp = login(client, user, PASSWORDS[user] if password is None else password, next=next)
        assert resp.status_code == 303, resp.get_data(as_text=True)
        return client


def csrf_token(client: Any, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def login(client: Any, user: str, password: str, next: str | None = None) -> Any:
    data = {"csrf_token": csrf_token(client), "username": user, "password": password}
    if next is not None:
        data["next"] = next
    return client.post("/login", data=data)


def build_env(
    tmp_path: Path, hubs: HubState, *, deadline: float = 1.0, group_check: Any = None, **kw: Any
) -> Env:
    config = load_config(str(write_config(tmp_path, hubs.port, deadline=deadline, **kw)))  # type: ignore[attr-defined]
    probe = FakeProbe()
    apis = {
        n.name: HubApi(n.name, n.api_url, read_secret_file(n.api_token_file, "token")) for n in config.nodes
    }
    resolver = Resolver(config.nodes, apis, SshProbe(config.ssh, runner=probe), deadline=config.deadline)
    store = SqliteStore(config.store.path)
    auth = FakeAuth(PASSWORDS)
    accounts = FakeAccounts()
    app = create_app(
        config,
        authenticator=auth,
        resolver=resolver,
        store=store,
        group_check=group_check,
        account_check=accounts,
    )
    app.config["TESTING"] = True
    return Env(app, config, hubs, probe, auth, store, resolver, accounts)


@pytest.fixture
def env(tmp_path: Path, hubs: HubState) -> Any:
    e = build_env(tmp_path, hubs)
    yield e
    e.probe.release.set()
    e.resolver.close()
