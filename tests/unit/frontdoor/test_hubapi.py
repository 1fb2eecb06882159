"""The hub REST API client against a real local HTTP server."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from frontdoor_env import TOKEN

from multijhub.frontdoor.hubapi import HubApi, HubApiError


def api(hubs, node: str = "hub1", token: str = TOKEN) -> HubApi:
    return HubApi(node, f"http://127.0.0.1:{hubs.port}/{node}/", token)


def test_ready_server(hubs):
    hubs.set_server("hub1", "juser1")
    server = api(hubs).user_server("juser1", 1.0)
    assert server is not None and server["ready"] is True


def test_user_without_server_and_unknown_user(hubs):
    hubs.set_user("hub1", "juser1")
    client = api(hubs)
    assert client.user_server("juser1", 1.0) is None
    assert client.user_server("nobody", 1.0) is None  # 404


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error", "HTTP 500"),
        ("garbage", "not JSON"),
        ("noscope", "lacks scope read:servers"),
        ("noservers", "no servers"),
    ],
)
def test_failures_raise(hubs, mode, message):
    hubs.set_server("hub1", "juser1")
    hubs.mode["hub1"] = mode
    with pytest.raises(HubApiError, match=message):
        api(hubs).user_server("juser1", 1.0)


def test_wrong_token_is_an_error_not_a_404(hubs):
    with pytest.raises(HubApiError, match="HTTP 403"):
        api(hubs, token="wrong").user_server("juser1", 1.0)


def test_timeout(hubs):
    hubs.mode["hub1"] = "blackhole"
    with pytest.raises(HubApiError, match="timed out"):
        api(hubs).user_server("juser1", 0.2)


def test_unreachable():
    client = HubApi("hub9", "http://127.0.0.1:9/", TOKEN)
    with pytest.raises(HubApiError, match="unreachable"):
        client.user_server("juser1", 0.5)


def test_scopes_checked_once_then_keep_alive(hubs):
    hubs.set_server("hub1", "juser1")
    client = api(hubs)
    for _ in range(5):
        client.user_server("juser1", 1.0)
    paths = [path for _, path, _ in hubs.requests]
    assert paths == ["/hub1/hub/api/user"] + ["/hub1/hub/api/users/juser1"] * 5
    assert len({port for _, _, port in hubs.requests}) == 1  # one connection, reused


def test_a_404_is_not_believed_without_the_scopes(hubs):
    hubs.mode["hub1"] = "noscope"
    with pytest.raises(HubApiError, match="lacks scope"):
        api(hubs).user_server("juser1", 1.0)


def test_username_is_quoted_into_the_path(hubs):
    api(hubs).user_server("a.b-c_d", 1.0)
    assert hubs.requests[-1][1] == "/hub1/hub/api/users/a.b-c_d"


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, written as PEM files."""

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "hub.crt", tmp_path / "hub.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def https_hub(tmp_path):
    """A real HTTPS server answering like a hub (scopes, then a user without a server)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            doc = (
                {"scopes": ["read:servers", "read:users"]}
                if self.path.endswith("/hub/api/user")
                else {
                    "name": "juser1",
                    "servers": {},
                }
            )
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    cert_file, key_file = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", cert_file
    server.shutdown()
    server.server_close()


def test_https_checks_the_hubs_certificate(https_hub):

    url, cert_file = https_hub
    with pytest.raises(HubApiError, match="unreachable: SSLCertVerificationError"):
        HubApi("hub1", url, TOKEN).user_server("juser1", 2.0)  # not in the system's trust store
    trusted = ssl.create_default_context(cafile=str(cert_file))
    client = HubApi("hub1", url, TOKEN, ssl_context=trusted)
    assert client.user_server("juser1", 2.0) is None
    assert client.user_server("juser1", 2.0) is None  # again, over the kept-alive connection
    client.close()


@pytest.mark.parametrize("bad", ["ftp://hub1/", "hub1:8000", "http:///x"])
def test_bad_api_url_is_refused(bad):
    with pytest.raises(ValueError, match="must be http"):
        HubApi("hub1", bad, TOKEN)


class _RestartingHub:
    """A hub API on loopback that can 'restart': after it, the connections it kept alive get no
    answer at all (as after a node's reboot, whose firewall drops what the new kernel does not
    know), while new connections are answered."""

    def __init__(self) -> None:
        self.restarted = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[object] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, self.restarted.is_set()), daemon=True).start()

    def _serve(self, conn, after_restart: bool) -> None:  # type: ignore[no-untyped-def]
        body = json.dumps({"name": "juser1", "servers": {"": {"ready": True}}}).encode()
        scopes = json.dumps({"scopes": ["list:users", "read:users", "read:servers"]}).encode()
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if self.restarted.is_set() and not after_restart:
                    continue  # a connection of before the restart: silence
                answer = scopes if b" /hub/api/user " in data else body
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(answer)).encode()
                    + b"\r\n\r\n"
                    + answer
                )

    def close(self) -> None:
        self.sock.close()


def test_a_restarted_hub_costs_no_request_its_deadline():
    hub = _RestartingHub()
    try:
        client = HubApi("hub1", f"http://127.0.0.1:{hub.port}/", TOKEN)
        assert client.user_server("juser1", 2.0) == {"ready": True}
        assert client.user_server("juser1", 2.0) == {"ready": True}
        assert len(hub.conns) == 1  # kept alive
        hub.restarted.set()
        started = time.monotonic()
        assert client.user_server("juser1", 2.0) == {"ready": True}  # on a new connection
        assert time.monotonic() - started < 1.5
        assert len(hub.conns) == 2
        started = time.monotonic()
        assert client.user_server("juser1", 2.0) == {"ready": True}
        assert time.monotonic() - started < 0.4  # the dead connections were forgotten
    finally:
        hub.close()
