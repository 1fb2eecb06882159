"""The proxy benchmark's parts that run without the cluster: its figures, its options, its TLS checks.

The measurement itself needs the test cluster (make bench-proxy); here: the arithmetic and the
goals' PASS/MISS lines, that both scripts agree on their options, that bad options are refused,
and, against real TLS servers on 127.0.0.1, that the client checks the certificate's name (not
the address it connects to) and reopens a kept-alive connection the server closed, untimed.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import importlib.util
import io
import json
import ssl
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BENCH = Path(__file__).resolve().parents[3] / "bench" / "proxy"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


proxy_bench = load("proxy_bench")
client = load("on_frontdoor")


# --- Figures ---------------------------------------------------------------------------------------


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]
    assert proxy_bench.percentile(values, 50) == 50
    assert proxy_bench.percentile(values, 95) == 95
    assert proxy_bench.percentile(values, 100) == 100
    assert proxy_bench.percentile([7.0], 95) == 7
    assert proxy_bench.percentile([1.0, 2.0, 3.0], 50) == 2
    with pytest.raises(ValueError):
        proxy_bench.percentile([], 50)
    with pytest.raises(ValueError):
        proxy_bench.percentile([1.0], 0)


def a_round(number, request, execute, download):
    """A round as on_frontdoor.py reports it: (direct, proxied) samples per metric."""
    return {
        "round": number,
        "order": ["direct", "proxied"] if number % 2 else ["proxied", "direct"],
        "request_ms": {"direct": request[0], "proxied": request[1]},
        "execute_ms": {"direct": execute[0], "proxied": execute[1]},
        "download_mbps": {"direct": download[0], "proxied": download[1]},
        "request_connections": {
            route: {"opened_untimed": 1, "opened_in_sample": 0, "found_dropped": 0, "tls_resumed": 0}
            for route in ("direct", "proxied")
        },
    }


def result_of(rounds):
    return {
        "rounds": rounds,
        "loadavg_1min": [0.5] * (len(rounds) + 1),
        "server_path": "/node/hub1/user/juser1/",
    }


def goals(summary):
    return {goal["goal"].split(":")[0]: goal["pass"] for goal in summary["goals"]}


def test_summary_pools_the_rounds_and_judges_the_goals():
    rounds = [
        a_round(1, ([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]), ([4.0, 5.0], [5.5, 7.5]), ([500.0], [400.0])),
        a_round(2, ([1.0, 2.0, 3.0], [1.5, 2.5, 9.5]), ([4.0, 5.0], [5.5, 7.5]), ([300.0], [240.0])),
    ]
    summary = proxy_bench.summarize(result_of(rounds))
    assert summary["request_ms"]["direct"]["p50"] == 2.0
    assert summary["request_ms"]["proxied"]["p50"] == 2.5
    assert summary["request_ms"]["added_p50_ms"] == pytest.approx(0.5)
    assert summary["request_ms"]["proxied"]["p95"] == 9.5
    assert summary["request_ms"]["direct"]["n"] == 6
    assert summary["request_ms"]["proxied"]["round_p50s"] == [2.5, 2.5]
    assert summary["execute_ms"]["added_p50_ms"] == pytest.approx(1.5)
    assert summary["download_mbps"]["direct"]["median"] == 400
    assert summary["download_mbps"]["ratio"] == pytest.approx(320 / 400)
    assert goals(summary) == {
        "small request": True,  # 0.5 ms added
        "execute round trip": False,  # 1.5 ms added
        "download": True,  # exactly 80 %
    }


def test_a_slower_proxy_misses_and_the_lines_say_so():
    rounds = [a_round(1, ([1.0], [2.5]), ([4.0], [4.5]), ([500.0], [350.0]))]
    summary = proxy_bench.summarize(result_of(rounds))
    assert goals(summary) == {"small request": False, "execute round trip": True, "download": False}
    config = {"file_mb": 100, "requests": 1, "executes": 1, "downloads": 1, "warmup": 0}
    text = proxy_bench.render(summary, result_of(rounds), config)
    assert "| metric | direct | proxied | difference |" in text
    assert "| small request (GET api/status) p50, ms | 1.00 | 2.50 | +1.50 ms |" in text
    assert "MISS  small request: at most 1 ms added at p50: +1.50 ms" in text
    assert "PASS  execute round trip: at most 1 ms added at p50: +0.50 ms" in text
    assert "MISS  download: at least 80% of the direct throughput: 70%" in text
    assert "round 1 (direct first, proxied second)" in text


# --- Options ---------------------------------------------------------------------------------------


def test_both_scripts_agree_on_the_options():
    ours = proxy_bench.parse_args(["--rounds", "2", "--file-mb", "5", "--hub", "hub2", "--warmup", "0"])
    theirs = client.parse_args(proxy_bench.client_args(ours))
    assert (theirs.rounds, theirs.file_bytes, theirs.hub, theirs.hub_prefix, theirs.warmup) == (
        2,
        5_000_000,
        "hub2",
        "/node/hub2",
        0,
    )
    assert theirs.public_url == "https://127.0.0.1:18443"
    assert theirs.proxy_addr == "127.0.0.1:8443"
    assert theirs.hub_ca == "/etc/multijhub/frontdoor/hub-ca.crt"
    assert theirs.public_ca == "/etc/multijhub/frontdoor/tls/frontdoor.crt"


@pytest.mark.parametrize(
    "argv",
    [
        ["--rounds", "0"],
        ["--requests", "-1"],
        ["--warmup", "-1"],
        ["--public-url", "http://127.0.0.1:18443"],
        ["--public-url", "https://127.0.0.1:18443/jupyter"],
        ["--public-url", "https://user@127.0.0.1"],
        ["--proxy-addr", "127.0.0.1"],
        ["--hub-prefix", "/node/hub1/"],
        ["--hub-prefix", "node/hub1"],
    ],
)
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        proxy_bench.parse_args(argv)
    assert exit_.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--file-name", "../x"], ["--file-name", ".hidden"], ["--downloads", "0"], ["--hub-prefix", "/x/"]],
)
def test_the_client_refuses_bad_options(argv):
    with pytest.raises(SystemExit):
        client.parse_args(argv)


def test_public_url_and_addresses():
    assert client.public_host("https://127.0.0.1:18443") == ("127.0.0.1:18443", "127.0.0.1")
    assert client.public_host("https://jupyter.example.org/") == (
        "jupyter.example.org",
        "jupyter.example.org",
    )
    for bad in ("http://x", "https://x/path", "https://u@x", "https://x:port", "https://x?q=1"):
        with pytest.raises(client.BenchError, match="--public-url"):
            client.public_host(bad)
    assert client.split_addr("127.0.0.1:8443", "--proxy-addr") == ("127.0.0.1", 8443)
    for bad in ("127.0.0.1", ":8443", "x:0", "x:70000"):
        with pytest.raises(client.BenchError, match="--proxy-addr"):
            client.split_addr(bad, "--proxy-addr")


def test_the_first_path_alternates_between_rounds():
    assert [client.round_order(i) for i in range(3)] == [
        ("direct", "proxied"),
        ("proxied", "direct"),
        ("direct", "proxied"),
    ]


def test_pins_and_passwords_come_from_their_one_place(tmp_path):
    assert proxy_bench.pinned("websocket-client").startswith("websocket-client==")
    with pytest.raises(proxy_bench.BenchError, match="not pinned"):
        proxy_bench.pinned("no-such-package")
    assert proxy_bench.password_of("juser1")
    with pytest.raises(proxy_bench.BenchError, match="not a test user"):
        proxy_bench.password_of("nobody")


def test_the_client_wants_the_password_on_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert client.main([]) == 2
    assert "first line of stdin" in capsys.readouterr().err


def test_a_kernel_request_is_a_protocol_5_message():
    msg_id, frame = client.message("execute_request", "s1", "juser1", {"code": "pass"})
    msg = json.loads(frame)
    assert msg["header"]["msg_id"] == msg_id
    assert msg["header"]["version"] == "5.3"
    assert (msg["header"]["msg_type"], msg["header"]["session"], msg["channel"]) == (
        "execute_request",
        "s1",
        "shell",
    )
    idle = {"msg_type": "status", "parent_header": {"msg_id": msg_id}, "content": {"execution_state": "idle"}}
    assert client.is_idle_of(idle, msg_id)
    assert not client.is_idle_of(idle, "other")
    assert not client.is_idle_of({**idle, "content": {"execution_state": "busy"}}, msg_id)


# --- TLS and kept-alive connections, against real servers on 127.0.0.1 -------------------------------


def certificate(tmp_path: Path, dns: str) -> tuple[Path, Path]:
    """A self-signed certificate for DNS:<dns> only (not 127.0.0.1), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


BODY = b"x" * 100_000


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen_hosts: list[str] = []  # noqa: RUF012
    drop_after_each = False
    close_after_each = False

    def do_GET(self):
        type(self).seen_hosts.append(self.headers["Host"])
        body = BODY if self.path == "/file" else b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if type(self).close_after_each:
            self.send_header("Connection", "close")  # as configurable-http-proxy 4.5 answers
        self.end_headers()
        self.wfile.write(body)
        # A server whose keep-alive timeout passed: it closes without saying so in the answer.
        self.close_connection = type(self).drop_after_each

    def log_message(self, *args):
        pass


@pytest.fixture
def tls_server(tmp_path):
    cert_file, key_file = certificate(tmp_path, "hub1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    Handler.seen_hosts = []
    Handler.drop_after_each = False
    Handler.close_after_each = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert_file
    server.shutdown()
    server.server_close()


def route(port: int, cafile: Path, name: str):
    return client.Route("direct", "127.0.0.1", port, client.tls_context(str(cafile)), "hub1:8000", name)


def test_the_certificate_must_carry_the_name_not_the_address(tls_server):
    port, cafile = tls_server
    http_ = client.Http({"direct": route(port, cafile, "hub1")}, timeout=10)
    assert client.timed_get(http_, "direct", "/api/status", "t") > 0
    assert Handler.seen_hosts == ["hub1:8000"]
    wrong = client.Http({"direct": route(port, cafile, "hub2")}, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.timed_get(wrong, "direct", "/api/status", "t")
    with pytest.raises(client.BenchError, match="CA file"):
        client.tls_context(str(cafile.with_name("missing.pem")))


def test_a_connection_the_server_closed_is_reopened_and_counted(tls_server):
    port, cafile = tls_server
    http_ = client.Http({"direct": route(port, cafile, "hub1")}, timeout=10)
    client.timed_get(http_, "direct", "/api/status", "t")
    client.timed_get(http_, "direct", "/api/status", "t")
    assert (http_.opened, http_.stale) == ({"direct": 1}, {})
    Handler.drop_after_each = True
    for _ in range(3):
        client.timed_get(http_, "direct", "/api/status", "t")
    assert http_.stale["direct"] >= 2
    assert http_.opened["direct"] == 1 + http_.stale["direct"]
    assert http_.opened_timed == {}


def test_a_connection_closed_by_the_answer_is_reopened_inside_the_next_sample(tls_server):
    port, cafile = tls_server
    Handler.close_after_each = True
    http_ = client.Http({"direct": route(port, cafile, "hub1")}, timeout=10)
    for _ in range(4):
        client.timed_get(http_, "direct", "/api/status", "t")
    counts = http_.counts()["direct"]
    assert (counts["opened_untimed"], counts["opened_in_sample"], counts["found_dropped"]) == (1, 3, 0)
    assert counts["tls_resumed"] == 3  # the session of the connection before, as a browser resumes it
    http_.close_all()
    client.timed_get(http_, "direct", "/api/status", "t")
    assert http_.opened["direct"] == 2  # a first connection again: before the clock


def test_a_download_is_read_to_its_length(tls_server):
    port, cafile = tls_server
    http_ = client.Http({"direct": route(port, cafile, "hub1")}, timeout=10)
    seconds, digest = client.timed_download(http_, "direct", "/file", "t", len(BODY), digest=True)
    assert seconds > 0

    assert digest == hashlib.sha256(BODY).hexdigest()
    with pytest.raises(client.BenchError, match="100000 bytes"):
        client.timed_download(http_, "direct", "/file", "t", len(BODY) + 1)
