#!/usr/bin/env python3
"""Emulated hubs for the front door benchmark, run as a child process.

    fakehubs.py SPEC.json

One real HTTP/1.1 server (keep-alive, a thread per connection) per healthy node,
answering ``GET /hub/api/user`` (the token's scopes) and ``GET /hub/api/users/<name>``
like JupyterHub; for each black-holed node a TCP listener that accepts and never
answers (one for its hub API, one for its sshd). Everything binds 127.0.0.1 only.
Prints ``{"hubs": {node: port}, "silent": {node: {"http": port, "ssh": port}}}`` on one
line, then serves until stdin closes (the parent exits or closes the pipe) or after
``max_seconds``.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USER_PATH = re.compile(r"/hub/api/users/([a-z_][a-z0-9_.-]{0,31})")


class HubHandler(BaseHTTPRequestHandler):
    """One hub's REST API: whoami of the service token and one user's model."""

    protocol_version = "HTTP/1.1"
    # One write per response, as JupyterHub's tornado sends headers and body together: with
    # http.server's default (headers, then body, unbuffered) Nagle's algorithm holds the body
    # until the client's delayed ACK, about 40 ms on every request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    token = ""
    node = ""
    servers: dict[str, dict[str, Any]] = {}  # noqa: RUF012 - set per subclass

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"token {self.token}":
            self._send(403, {"status": 403, "message": "Forbidden"})
            return
        if self.path == "/hub/api/user":
            scopes = ["read:servers", "read:users", "read:users:name"]
            self._send(200, {"kind": "service", "name": "frontdoor", "scopes": scopes})
            return
        match = USER_PATH.fullmatch(self.path)
        if not match:
            self._send(404, {"status": 404, "message": "Not Found"})
            return
        user = match.group(1)
        server = self.servers.get(user)
        model = {"kind": "user", "name": user, "servers": {"": server} if server else {}}
        self._send(200, model)


class HubServer(ThreadingHTTPServer):
    """A hub: a thread per connection, a deep accept queue for bursts."""

    daemon_threads = True
    request_queue_size = 256


def silent_listener(held: list[socket.socket], stop: threading.Event) -> int:
    """A TCP port that accepts connections and never sends a byte."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=256)
    sock.settimeout(0.2)

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # kept open, never read, never answered
        sock.close()

    threading.Thread(target=loop, daemon=True).start()
    return sock.getsockname()[1]


def server_model(user: str) -> dict[str, Any]:
    """JupyterHub's model of a ready default server."""
    return {
        "name": "",
        "ready": True,
        "pending": None,
        "url": f"/user/{user}/",
        "started": "2026-01-01T00:00:00.000000Z",
        "last_activity": "2026-01-01T00:00:00.000000Z",
    }


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    stop = threading.Event()
    held: list[socket.socket] = []
    hubs: dict[str, int] = {}
    silent: dict[str, dict[str, int]] = {}
    servers: list[HubServer] = []
    for node in spec["nodes"]:
        name = node["name"]
        if node.get("blackhole"):
            silent[name] = {"http": silent_listener(held, stop), "ssh": silent_listener(held, stop)}
            continue
        running = {user: server_model(user) for user in node.get("running", [])}
        handler = type(
            f"Hub_{name}", (HubHandler,), {"token": spec["token"], "node": name, "servers": running}
        )
        server = HubServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        servers.append(server)
        hubs[name] = server.server_address[1]
    sys.stdout.write(json.dumps({"hubs": hubs, "silent": silent}) + "\n")
    sys.stdout.flush()
    # Serve until the parent closes our stdin, bounded in time in any case.
    watcher = threading.Thread(target=sys.stdin.read, daemon=True)
    watcher.start()
    watcher.join(timeout=float(spec.get("max_seconds", 600)))
    stop.set()
    for server in servers:
        server.shutdown()
        server.server_close()
    for conn in held:
        conn.close()
    time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
