#!/usr/bin/env python3
"""The measuring client of ``bench/proxy/proxy_bench.py``; it runs ON a front door host.

A hub's port accepts only the front door hosts (the firewall role), so the direct path to a hub
can be measured only from there. Both paths are TLS, each verified with its own CA file:

  direct    https://<hub>:<hub-port><server path>             (the hub's proxy; --hub-ca)
  proxied   https://<proxy-addr><server path>, Host and Origin of --public-url
            (the front door's nginx, then the hub's proxy; --public-ca)

Needs Python >= 3.9: the standard library (http.client and ssl for HTTP) and websocket-client
(the kernel's websocket; the same package jupyter_server depends on). Nothing else, so that it
runs from a throwaway venv.

It reads the user's password from the first line of stdin (never from the command line), takes a
token of the user's through the hub's API (``POST /hub/api/users/<user>/tokens`` with the password
in the body: the hub's authenticator checks it), starts the user's server if it is not running,
starts a kernel and writes a file of ``--file-mb`` MB (10**6 bytes, random) into the server's root
directory from that kernel. Then ``--rounds`` rounds, each measuring both paths interleaved (one
sample of each path in turn; the path that goes first alternates from round to round):

  request    ms, ``GET <server>api/status`` from sending to the last byte of the answer read, on
             a connection kept alive as long as the server keeps it (a new connection that the
             server's ``Connection: close`` forced is inside the next sample: see ``Http``);
  execute    ms, an ``execute_request`` (``pass``) sent on the kernel's websocket until its
             ``execute_reply`` arrives (Jupyter messaging protocol 5.3, JSON text frames on
             ``api/kernels/<id>/channels``; one connection per path, both to the same kernel);
  download   MB/s, ``GET <server>files/<name>`` read to the last byte.

Prints one JSON document on stdout (shape: see ``main``), progress on stderr. Everything it
created is removed at the end (the file, the kernel, the token; the server only if it started
it), also after an error. Exit status 2 with a message naming what failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import websocket  # websocket-client: the websocket handshake and framing

ROUTES = ("direct", "proxied")
PROTOCOL_VERSION = "5.3"
CHUNK = 1 << 20  # bytes read per call while downloading


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


@dataclass(frozen=True)
class Route:
    """One way to the hub: where to connect, the TLS context that verifies it, the Host it names."""

    name: str
    host: str  # where to connect (a name or an address)
    port: int
    context: ssl.SSLContext
    host_header: str  # the Host (and Origin's host) of the requests: the URL the user sees
    server_hostname: str  # the name the certificate must carry

    @property
    def origin(self) -> str:
        return f"https://{self.host_header}"

    def websocket(self, path: str, token: str, timeout: float) -> websocket.WebSocket:
        """A connected websocket to ``path`` (starting with /), with the Host and Origin a browser sends."""
        return websocket.create_connection(
            f"wss://{self.host}:{self.port}{path}",
            timeout=timeout,
            header=[f"Authorization: token {token}"],
            host=self.host_header,
            origin=self.origin,
            sslopt={"context": self.context, "server_hostname": self.server_hostname},
        )


class _Connection(http.client.HTTPSConnection):
    """http.client's HTTPS connection, with the certificate's name apart from the address.

    Like a browser (and nginx's ``proxy_ssl_session_reuse``), a reconnection resumes the previous
    connection's TLS session when the server allows it; ``resumed`` counts those that did.
    """

    def __init__(
        self, host: str, port: int, server_hostname: str, *, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname
        self._tls = context
        self._session: ssl.SSLSession | None = None
        self.resumed = 0

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP (with TCP_NODELAY, as http.client sets it)
        tls = self._tls.wrap_socket(self.sock, server_hostname=self._server_hostname, session=self._session)
        self.resumed += 1 if tls.session_reused else 0
        self.sock = tls

    def close(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.session is not None:
            self._session = self.sock.session  # (http.client closes after the answer's head is read)
        super().close()


def tls_context(cafile: str) -> ssl.SSLContext:
    """A client context that trusts only ``cafile`` and checks the host name."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise BenchError(f"cannot load the CA file {cafile}: {error}") from error


def split_addr(value: str, name: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); a clear error naming the option otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BenchError(f"{name}: {value!r} is not host:port")
    return host, int(port)


def public_host(url: str) -> tuple[str, str]:
    """``https://name[:port]`` (no path) -> (``name[:port]``, the Host header a browser sends;
    ``name``, what the certificate must carry). BenchError naming --public-url otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (urllib checks the port only when asked)
    except ValueError as error:
        raise BenchError(f"--public-url: {url!r}: {error}") from error
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise BenchError(f"--public-url: {url!r} is not https://name[:port] without a path")
    return parts.netloc, parts.hostname


def round_order(index: int) -> tuple[str, str]:
    """The paths in the order they take turns in round ``index`` (0-based): alternating."""
    return ROUTES if index % 2 == 0 else (ROUTES[1], ROUTES[0])


# --- HTTP -------------------------------------------------------------------------------------------


@dataclass
class Http:
    """HTTPS connections, one per route, kept alive as long as the server keeps them.

    A sample's clock includes a new connection when the server closed the previous one with its
    answer (``Connection: close``): a client pays that handshake too. The first connection of a
    series, and a reconnection after the server dropped a kept-alive connection silently, happen
    before the clock starts.
    """

    routes: dict[str, Route]
    timeout: float
    conns: dict[str, _Connection] = field(default_factory=dict)
    # Per route: whether the last answer closed the connection; counts of connections opened
    # before a clock started, opened inside a timed sample, found dropped when a request was sent
    # on them (that attempt is not timed), and reconnections that resumed their TLS session.
    closed_by_answer: dict[str, bool] = field(default_factory=dict)
    opened: dict[str, int] = field(default_factory=dict)
    opened_timed: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """The counters per route (and the resumed TLS sessions), for the report."""
        return {
            route: {
                "opened_untimed": self.opened.get(route, 0),
                "opened_in_sample": self.opened_timed.get(route, 0),
                "found_dropped": self.stale.get(route, 0),
                "tls_resumed": conn.resumed if (conn := self.conns.get(route)) else 0,
            }
            for route in self.routes
        }

    def reset_counts(self) -> None:
        self.opened.clear()
        self.opened_timed.clear()
        self.stale.clear()
        for conn in self.conns.values():
            conn.resumed = 0

    def ready(self, route: str, *, timed: bool = False) -> _Connection:
        """The route's connection, connected (counted as opened inside a sample when ``timed``)."""
        conn = self.conns.get(route)
        if conn is None:
            conn = self.conns[route] = _Connection(
                self.routes[route].host,
                self.routes[route].port,
                self.routes[route].server_hostname,
                timeout=self.timeout,
                context=self.routes[route].context,
            )
        if conn.sock is None:
            conn.connect()
            counter = self.opened_timed if timed else self.opened
            counter[route] = counter.get(route, 0) + 1
        return conn

    def send_fresh(
        self, route: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[float, http.client.HTTPResponse]:
        """(perf_counter at the sample's start, response) of a request (see the class).

        A kept-alive connection the server dropped silently (the answer never starts) is counted,
        reopened and the request sent once more, with the clock started again after the handshake.
        """
        for attempt in (1, 2):
            conn = self.conns.get(route)
            pays = self.closed_by_answer.get(route, False) and conn is not None and conn.sock is None
            if not pays:
                self.ready(route)
            started = time.perf_counter()
            if pays:
                self.ready(route, timed=True)
            try:
                response = self.send(route, method, path, headers, body)
            except (http.client.RemoteDisconnected, ConnectionError, ssl.SSLEOFError):
                self.drop(route)
                self.stale[route] = self.stale.get(route, 0) + 1
                if attempt == 2:
                    raise
                continue
            self.closed_by_answer[route] = bool(response.will_close)
            return started, response
        raise AssertionError("unreachable")

    def send(
        self, route: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> http.client.HTTPResponse:
        """Send a request on the route's connection; the caller reads the response."""
        conn = self.ready(route)
        all_headers = {"Host": self.routes[route].host_header, **headers}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=all_headers)
        return conn.getresponse()

    def call(
        self, route: str, method: str, path: str, token: str | None = None, body: object = None
    ) -> tuple[int, Any]:
        """A JSON API call: (status, decoded body or None). A closed connection is retried once."""
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"token {token}"
        data = None if body is None else json.dumps(body).encode()
        _, response = self.send_fresh(route, method, path, headers, data)
        raw = response.read()
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw[:300].decode(errors="replace")
        return response.status, decoded

    def drop(self, route: str) -> None:
        """Close the route's connection (the next request reconnects before its clock starts)."""
        conn = self.conns.get(route)
        if conn is not None:
            conn.close()
        self.closed_by_answer[route] = False

    def close(self, route: str) -> None:
        conn = self.conns.pop(route, None)
        if conn is not None:
            conn.close()
        self.closed_by_answer[route] = False

    def close_all(self) -> None:
        for route in list(self.conns):
            self.close(route)


def timed_get(http_: Http, route: str, path: str, token: str) -> float:
    """Seconds from sending ``GET path`` to the last byte of a 200 answer (connected beforehand)."""
    started, response = http_.send_fresh(route, "GET", path, {"Authorization": f"token {token}"})
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise BenchError(f"GET {path} via {route}: HTTP {response.status}")
    return elapsed


def timed_download(
    http_: Http, route: str, path: str, token: str, size: int, *, digest: bool = False
) -> tuple[float, str]:
    """(seconds to the last byte, sha256 hex if ``digest``) of ``GET path``; its length must be ``size``."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    sha = hashlib.sha256() if digest else None
    started, response = http_.send_fresh(route, "GET", path, {"Authorization": f"token {token}"})
    total = 0
    while True:
        n = response.readinto(view)
        if not n:
            break
        total += n
        if sha is not None:
            sha.update(view[:n])
    elapsed = time.perf_counter() - started
    if response.status != 200 or total != size:
        raise BenchError(f"GET {path} via {route}: HTTP {response.status}, {total} bytes (want {size})")
    return elapsed, sha.hexdigest() if sha is not None else ""


# --- The kernel's websocket ---------------------------------------------------------------------------


def message(msg_type: str, session: str, user: str, content: dict[str, Any]) -> tuple[str, str]:
    """(msg_id, JSON text frame) of a shell-channel request in the messaging protocol 5.3."""
    msg_id = uuid.uuid4().hex
    frame = {
        "header": {
            "msg_id": msg_id,
            "username": user,
            "session": session,
            "msg_type": msg_type,
            "version": PROTOCOL_VERSION,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": "shell",
        "buffers": [],
    }
    return msg_id, json.dumps(frame)


def parent_id(msg: dict[str, Any]) -> str | None:
    parent = msg.get("parent_header") or {}
    return parent.get("msg_id")


def msg_type(msg: dict[str, Any]) -> str:
    return str(msg.get("msg_type") or (msg.get("header") or {}).get("msg_type", ""))


def is_idle_of(msg: dict[str, Any], msg_id: str) -> bool:
    """Whether ``msg`` is the kernel's ``status: idle`` that ends the request ``msg_id``."""
    return (
        msg_type(msg) == "status"
        and parent_id(msg) == msg_id
        and (msg.get("content") or {}).get("execution_state") == "idle"
    )


@dataclass
class KernelChannel:
    """One websocket to the kernel (one path), with its own messaging session."""

    route: str
    ws: websocket.WebSocket
    user: str
    session: str = field(default_factory=lambda: uuid.uuid4().hex)

    def recv(self) -> dict[str, Any]:
        frame = self.ws.recv()
        if not isinstance(frame, str):
            raise BenchError(f"kernel websocket via {self.route}: a binary frame (expected JSON text)")
        msg: dict[str, Any] = json.loads(frame)
        return msg

    def request(self, msg_type_: str, content: dict[str, Any]) -> str:
        msg_id, frame = message(msg_type_, self.session, self.user, content)
        self.ws.send(frame)
        return msg_id

    def until_idle(self, msg_id: str, seen: list[dict[str, Any]] | None = None) -> None:
        """Read (and collect into ``seen``) until the kernel is idle after ``msg_id``."""
        while True:
            msg = self.recv()
            if seen is not None and parent_id(msg) == msg_id:
                seen.append(msg)
            if is_idle_of(msg, msg_id):
                return

    def kernel_info(self, deadline: float) -> None:
        """Ask for kernel_info until answered (a fresh kernel may miss the first request)."""
        while time.monotonic() < deadline:
            msg_id = self.request("kernel_info_request", {})
            self.ws.settimeout(3)
            try:
                while True:
                    msg = self.recv()
                    if msg_type(msg) == "kernel_info_reply" and parent_id(msg) == msg_id:
                        return
            except websocket.WebSocketTimeoutException:
                continue
            finally:
                self.ws.settimeout(60)
        raise BenchError(f"kernel websocket via {self.route}: no kernel_info_reply")

    def run(self, code: str) -> str:
        """Run ``code`` (untimed); its stdout. BenchError if the cell raised."""
        msg_id = self.request(
            "execute_request",
            {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
        )
        seen: list[dict[str, Any]] = []
        self.until_idle(msg_id, seen)
        while not any(msg_type(msg) == "execute_reply" for msg in seen):  # it may come after idle
            msg = self.recv()
            if parent_id(msg) == msg_id:
                seen.append(msg)
        out = []
        for msg in seen:
            content = msg.get("content") or {}
            if msg_type(msg) == "stream":
                out.append(content.get("text", ""))
            elif msg_type(msg) == "error" or (
                msg_type(msg) == "execute_reply" and content.get("status") != "ok"
            ):
                raise BenchError(f"kernel: {content.get('ename')}: {content.get('evalue')}")
        return "".join(out)

    def timed_execute(self) -> tuple[float, str]:
        """(seconds from sending an execute_request of ``pass`` to its execute_reply, msg_id).

        Afterwards reads on (untimed) until the kernel has reported idle for it too, so that this
        connection holds nothing unread before its next sample.
        """
        msg_id, frame = message(
            "execute_request",
            self.session,
            self.user,
            {"code": "pass", "silent": False, "store_history": False, "allow_stdin": False},
        )
        idle = False
        started = time.perf_counter()
        self.ws.send(frame)
        while True:
            msg = self.recv()
            if msg_type(msg) == "execute_reply" and parent_id(msg) == msg_id:
                elapsed = time.perf_counter() - started
                break
            # The reply (shell) and the status (iopub) travel on different channels: either may
            # reach the websocket first.
            idle = idle or is_idle_of(msg, msg_id)
        if (msg.get("content") or {}).get("status") != "ok":
            raise BenchError(f"kernel via {self.route}: execute_reply {msg.get('content')}")
        if not idle:
            self.until_idle(msg_id)
        return elapsed, msg_id

    def drain(self, msg_id: str, timeout: float) -> bool:
        """Read the other connection's broadcast (iopub) of ``msg_id`` up to its idle; False on timeout."""
        self.ws.settimeout(timeout)
        try:
            self.until_idle(msg_id)
            return True
        except websocket.WebSocketTimeoutException:
            return False
        finally:
            self.ws.settimeout(60)


# --- The run -----------------------------------------------------------------------------------------


def log(text: str) -> None:
    print(f"[on-frontdoor] {text}", file=sys.stderr, flush=True)


WRITE_FILE = """\
import hashlib, os
sha = hashlib.sha256()
left = {size}
with open({name!r}, "wb") as f:
    while left:
        block = os.urandom(min(left, 1 << 20))
        sha.update(block)
        f.write(block)
        left -= len(block)
print(sha.hexdigest())
"""

REMOVE_FILE = """\
import os
if os.path.lexists({name!r}):
    os.remove({name!r})
"""


@dataclass
class Bench:
    """The state shared by the steps: what was created, so that the end removes exactly that."""

    args: argparse.Namespace
    http: Http
    user: str
    hub_api: str  # e.g. /node/hub1/hub/api
    token: str = ""
    token_id: str = ""
    started_server: bool = False
    server_path: str = ""  # e.g. /node/hub1/user/juser1/
    kernel_id: str = ""
    channels: dict[str, KernelChannel] = field(default_factory=dict)
    file_written: bool = False
    # Whether the kernel's broadcast (iopub) of a request sent on one connection reaches the other.
    iopub_shared: bool = False

    def api(self, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, Any]:
        return self.http.call("direct", method, self.hub_api + path, token or self.token or None, body)

    def take_token(self, password: str) -> None:
        status, reply = self.http.call(
            "direct",
            "POST",
            f"{self.hub_api}/users/{self.user}/tokens",
            None,
            {
                "auth": {"username": self.user, "password": password},
                "note": "bench/proxy",
                "expires_in": 3600,
            },
        )
        if status != 201:
            raise BenchError(
                f"POST {self.hub_api}/users/{self.user}/tokens with the user's password: HTTP {status} "
                f"({reply}); wrong password, or the hub's authenticator takes no password"
            )
        self.token, self.token_id = str(reply["token"]), str(reply["id"])

    def ensure_server(self, timeout: float) -> None:
        status, model = self.api("GET", f"/users/{self.user}")
        if status != 200:
            raise BenchError(f"GET {self.hub_api}/users/{self.user}: HTTP {status} ({model})")
        server = (model.get("servers") or {}).get("")
        if not (server and server.get("ready")):
            if server is None:
                status, reply = self.api("POST", f"/users/{self.user}/server")
                if status not in (201, 202):
                    raise BenchError(f"starting {self.user}'s server: HTTP {status} ({reply})")
                self.started_server = True
                log(f"started {self.user}'s server")
            deadline = time.monotonic() + timeout
            while True:
                status, model = self.api("GET", f"/users/{self.user}")
                server = (model.get("servers") or {}).get("") if status == 200 else None
                if server and server.get("ready"):
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.user}'s server is not ready after {timeout:.0f} s: {server}")
                time.sleep(1)
        self.server_path = str(server["url"])
        if not self.server_path.endswith("/"):
            self.server_path += "/"

    def start_kernel(self) -> None:
        status, reply = self.http.call(
            "direct", "POST", f"{self.server_path}api/kernels", self.token, {"path": ""}
        )
        if status != 201:
            raise BenchError(f"POST {self.server_path}api/kernels: HTTP {status} ({reply})")
        self.kernel_id = str(reply["id"])

    def connect_kernel(self, route: str) -> KernelChannel:
        path = f"{self.server_path}api/kernels/{self.kernel_id}/channels?session_id={uuid.uuid4().hex}"
        try:
            ws = self.http.routes[route].websocket(path, self.token, timeout=60)
        except (websocket.WebSocketException, OSError) as error:
            raise BenchError(f"kernel websocket via {route}: {error}") from error
        channel = KernelChannel(route, ws, self.user)
        channel.kernel_info(time.monotonic() + 60)
        self.channels[route] = channel
        return channel

    def drain_others(self, route: str, msg_id: str) -> None:
        """After a sample on ``route``: read the other connections up to the same idle (untimed)."""
        if not self.iopub_shared:
            return
        for other, channel in self.channels.items():
            if other != route and not channel.drain(msg_id, 10):
                raise BenchError(f"the kernel's broadcast of a request via {route} never reached {other}")

    def close_channels(self) -> None:
        for channel in self.channels.values():
            with contextlib.suppress(websocket.WebSocketException, OSError):
                channel.ws.close()
        self.channels.clear()

    def cleanup(self) -> list[str]:
        """Remove what the run created; what could not be removed, as messages."""
        problems: list[str] = []
        name = self.args.file_name
        if self.file_written:
            try:
                channel = self.channels.get("direct") or self.connect_kernel("direct")
                channel.ws.settimeout(60)
                channel.run(REMOVE_FILE.format(name=name))
            except (BenchError, websocket.WebSocketException, OSError) as error:
                problems.append(f"the file {name} in {self.user}'s server root: {error}")
        self.close_channels()
        steps: list[tuple[str, str, str]] = []
        if self.kernel_id:
            steps.append(("kernel", "DELETE", f"{self.server_path}api/kernels/{self.kernel_id}"))
        if self.started_server:
            steps.append(("server", "DELETE", f"{self.hub_api}/users/{self.user}/server"))
        if self.token_id:
            steps.append(("token", "DELETE", f"{self.hub_api}/users/{self.user}/tokens/{self.token_id}"))
        for what, method, path in steps:
            try:
                status, reply = self.http.call("direct", method, path, self.token)
                if status not in (202, 204):
                    problems.append(f"{what}: {method} {path}: HTTP {status} ({reply})")
            except (OSError, http.client.HTTPException) as error:
                problems.append(f"{what}: {method} {path}: {error}")
        self.http.close_all()
        return problems


def measure_round(bench: Bench, index: int) -> dict[str, Any]:
    """One round: requests, executes, downloads; each path in turn, first path alternating."""
    args, http_, token = bench.args, bench.http, bench.token
    order = round_order(index)
    request_ms: dict[str, list[float]] = {r: [] for r in ROUTES}
    execute_ms: dict[str, list[float]] = {r: [] for r in ROUTES}
    download_mbps: dict[str, list[float]] = {r: [] for r in ROUTES}
    http_.close_all()
    status_path = f"{bench.server_path}api/status"
    for _ in range(args.warmup):
        for route in order:
            timed_get(http_, route, status_path, token)
    http_.reset_counts()
    for _ in range(args.requests):
        for route in order:
            request_ms[route].append(timed_get(http_, route, status_path, token) * 1000)
    request_connections = http_.counts()

    bench.close_channels()
    for route in ROUTES:
        bench.connect_kernel(route)
    for i in range(args.warmup + args.executes):
        for route in order:
            seconds, msg_id = bench.channels[route].timed_execute()
            if i >= args.warmup:
                execute_ms[route].append(seconds * 1000)
            bench.drain_others(route, msg_id)

    # The kernel section leaves the HTTP connections idle for seconds: a server may have closed
    # them meanwhile (node's default keep-alive timeout is 5 s). New ones, before any clock starts.
    http_.close_all()
    http_.reset_counts()
    files_path = f"{bench.server_path}files/{args.file_name}"
    for _ in range(args.downloads):
        for route in order:
            seconds, _ = timed_download(http_, route, files_path, token, args.file_bytes)
            download_mbps[route].append(args.file_bytes / seconds / 1e6)
    return {
        "round": index + 1,
        "order": list(order),
        "request_ms": request_ms,
        "execute_ms": execute_ms,
        "download_mbps": download_mbps,
        "request_connections": request_connections,
        "download_connections": http_.counts(),
    }


def run(bench: Bench, password: str) -> dict[str, Any]:
    args = bench.args
    log(f"token for {bench.user} via the hub's API ({bench.hub_api})")
    bench.take_token(password)
    bench.ensure_server(args.server_timeout)
    log(f"{bench.user}'s server at {bench.server_path}; starting a kernel")
    bench.start_kernel()
    direct = bench.connect_kernel("direct")
    proxied = bench.connect_kernel("proxied")

    # Does a request on one connection reach the other as a broadcast (iopub)? jupyter_server gives
    # each connection its own subscription to the kernel's iopub, so it should; then each sample
    # is followed by reading the other connection up to the same idle, untimed.
    _, msg_id = direct.timed_execute()
    bench.iopub_shared = proxied.drain(msg_id, 10)
    log(f"the kernel's broadcast reaches both connections: {bench.iopub_shared}")

    log(f"writing {args.file_bytes / 1e6:.0f} MB into {args.file_name} from the kernel")
    direct.ws.settimeout(300)
    bench.file_written = True  # from here on the end removes it (also when writing failed midway)
    digest = direct.run(WRITE_FILE.format(size=args.file_bytes, name=args.file_name)).strip()
    direct.ws.settimeout(60)
    bench.close_channels()  # each round opens its own
    files_path = f"{bench.server_path}files/{args.file_name}"
    for route in ROUTES:  # the same bytes both ways (also the download warm-up)
        _, got = timed_download(bench.http, route, files_path, bench.token, args.file_bytes, digest=True)
        if got != digest:
            raise BenchError(
                f"the file downloaded via {route} differs from the one written ({got} != {digest})"
            )

    rounds = []
    load = [os.getloadavg()[0]]
    for index in range(args.rounds):
        log(f"round {index + 1}/{args.rounds}")
        rounds.append(measure_round(bench, index))
        load.append(os.getloadavg()[0])
    return {
        "server_path": bench.server_path,
        "started_server": bench.started_server,
        "iopub_shared": bench.iopub_shared,
        "loadavg_1min": load,
        "rounds": rounds,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure a user's server directly and through the front door's proxy (on a front door).",
    )
    parser.add_argument("--user", default="juser1")
    parser.add_argument("--hub", default="hub1", help="the hub's inventory name (host name, prefix)")
    parser.add_argument("--hub-port", type=int, default=8000, help="the hub's TLS port")
    parser.add_argument(
        "--hub-prefix", default=None, help="the hub's base_url without the final / (default /node/HUB)"
    )
    parser.add_argument("--hub-ca", default="/etc/multijhub/frontdoor/hub-ca.crt", help="the internal CA")
    parser.add_argument("--public-url", default="https://127.0.0.1:18443", help="the address users see")
    parser.add_argument("--proxy-addr", default="127.0.0.1:8443", help="where nginx listens on this host")
    parser.add_argument(
        "--public-ca",
        default="/etc/multijhub/frontdoor/tls/frontdoor.crt",
        help="verifies nginx's certificate",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="small requests per path and round")
    parser.add_argument("--executes", type=int, default=200, help="execute round trips per path and round")
    parser.add_argument("--downloads", type=int, default=3, help="downloads per path and round")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests/executes per path and round")
    parser.add_argument(
        "--file-mb", type=int, default=100, help="size of the downloaded file, MB (10**6 bytes)"
    )
    parser.add_argument("--file-name", default="mjbench-proxy-download.bin")
    parser.add_argument("--server-timeout", type=float, default=180, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    for name in ("rounds", "requests", "executes", "downloads", "file_mb"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if "/" in args.file_name or args.file_name.startswith("."):
        parser.error("--file-name: a plain, not hidden, file name (the server's root directory)")
    if args.hub_prefix is None:
        args.hub_prefix = f"/node/{args.hub}"
    if not args.hub_prefix.startswith("/") or args.hub_prefix.endswith("/"):
        parser.error("--hub-prefix: a path starting with / and not ending with /")
    args.file_bytes = args.file_mb * 10**6
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Every connection here goes straight to the cluster's hosts: no HTTP proxy from the environment
    # (websocket-client would honour one).
    for key in list(os.environ):
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del os.environ[key]
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("on_frontdoor: the user's password must be the first line of stdin", file=sys.stderr)
        return 2
    try:
        proxy_host, proxy_port = split_addr(args.proxy_addr, "--proxy-addr")
        host_header, public_name = public_host(args.public_url)
        routes = {
            "direct": Route(
                "direct",
                args.hub,
                args.hub_port,
                tls_context(args.hub_ca),
                f"{args.hub}:{args.hub_port}",
                args.hub,
            ),
            "proxied": Route(
                "proxied",
                proxy_host,
                proxy_port,
                tls_context(args.public_ca),
                host_header,
                public_name,
            ),
        }
    except BenchError as bad:
        print(f"on_frontdoor: {bad}", file=sys.stderr)
        return 2
    bench = Bench(args, Http(routes, timeout=60), args.user, f"{args.hub_prefix}/hub/api")
    result: dict[str, Any] = {}
    error: BaseException | None = None
    try:
        result = run(bench, password)
    except (BenchError, OSError, http.client.HTTPException, websocket.WebSocketException, ValueError) as exc:
        error = exc
    finally:
        problems = bench.cleanup()
    for problem in problems:
        log(f"left behind: {problem}")
    if error is not None:
        print(f"on_frontdoor: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    result["left_behind"] = problems
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
