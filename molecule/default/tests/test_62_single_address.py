"""Issue 18: one HTTPS address for the whole cluster, and what that address must not do.

The front door's nginx proxies ``/node/<hub>/`` to each hub over TLS from the cluster's internal CA;
the hubs' port is open to the front doors only. Here, from the machine running the tests (the
outside) and from the cluster's own hosts:

- isolation: paths that climb out of a hub's prefix (raw, %2e-encoded, encoded slashes), an
  unknown hub, absolute-form request targets, foreign Host headers and CONNECT get a 4xx and never
  reach a hub (each request carries a unique marker; a control request proves that a request that
  does reach a hub leaves its marker in the hub's journal); nginx is no open proxy (a listener on
  the outsider host, which a forwarded request would reach, sees nothing);
- cookies: the hub's cookies are scoped to its prefix and a browser's jar sends none of them to the
  other hub; the front door's own session cookie never reaches a hub;
- TLS and the firewall: the hub port refuses every host but the front doors; the front door checks
  the hub's certificate against the internal CA on every connection; the keys are 0600 on local disk;
- site.yml's preflight names a wrong setting of the one address.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import shlex
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from conftest import (
    FRONTDOOR,
    HUB_NAMES,
    PUBLIC_PORT,
    address,
    follow_to_hub,
    frontdoor_ca,
    frontdoor_login,
    hub_user,
    recap,
    stop_server,
    web,
)

# A certificate that is not from the cluster's CA (the cryptography package makes it).
x509 = pytest.importorskip("cryptography.x509")
hashes = pytest.importorskip("cryptography.hazmat.primitives.hashes")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")

PUBLIC = f"127.0.0.1:{PUBLIC_PORT}"  # the Host of the public address
FRONTDOOR_COOKIE = "multijhub-frontdoor"
CA_DIR = "/var/lib/multijhub-ca"  # on the first front door host: the internal CA
HUB_CA = "/etc/multijhub/frontdoor/hub-ca.crt"  # on each front door: the CA it checks hubs with
HUB_TLS = "/etc/multijhub/jupyterhub/tls"  # on each hub
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"
PROXY_ENV = "/var/lib/multijhub/jupyterhub/proxy.env"  # CONFIGPROXY_AUTH_TOKEN of the hub's proxy
PROXY_API = "http://127.0.0.1:8001/api/routes"  # configurable-http-proxy's REST API (loopback)
HUB_UNITS = "-u jupyterhub -u jupyterhub-proxy"


# --- Raw HTTP over TLS to the public address: the request line exactly as written ---------------


def raw(target: str, *, method: str = "GET", host: str = PUBLIC, headers: dict | None = None):
    """Send ``method target HTTP/1.1`` with ``Host: host`` to the public address over TLS (the front
    door's certificate verified) with http.client, which sends the target byte for byte (no
    normalisation, no encoding). Returns (status, body); (0, reason) if nginx closed without an answer.
    """
    context = ssl.create_default_context(cafile=frontdoor_ca())
    connection = http.client.HTTPSConnection("127.0.0.1", int(PUBLIC_PORT), context=context, timeout=20)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            reply = connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError) as error:
            return 0, str(error)
        return reply.status, reply.read().decode(errors="replace")
    finally:
        connection.close()


def journal_lines(hosts, since: float, *needles: str) -> list[str]:
    """Lines of the hubs' JupyterHub and proxy journals since ``since`` (epoch s) that hold a needle.

    JupyterHub logs every request it answers with a 4xx or 5xx (its log_request, level warning), the
    proxy's error page too: a request for ``/hub/api/users/<marker>`` that reached a hub is there.
    """
    found = []
    for host in hosts:
        out = host.run(f"journalctl {HUB_UNITS} --since @{int(since) - 1} --no-pager -o cat").stdout
        found += [
            f"{host.backend.hostname}: {line}" for line in out.splitlines() if any(n in line for n in needles)
        ]
    return found


def marker() -> str:
    return f"m{uuid.uuid4().hex[:16]}"


# Each target names the users API (a 403 JupyterHub logs) with a marker; {m} is filled in.
CLIMBING = {
    "dot-dot": "/node/hub1/../hub2/hub/api/users/{m}",
    "dot-dot-twice": "/node/hub1/../../node/hub2/hub/api/users/{m}",
    "dot-dot-encoded": "/node/hub1/%2e%2e/hub2/hub/api/users/{m}",
    "dot-dot-encoded-upper": "/node/hub1/%2E%2E/hub2/hub/api/users/{m}",
    "dot-dot-half-encoded": "/node/hub1/.%2e/hub2/hub/api/users/{m}",
    "slash-encoded": "/node/hub1%2f..%2fhub2/hub/api/users/{m}",
    "slash-encoded-upper": "/node/hub1/..%2Fhub2/hub/api/users/{m}",
    "slash-encoded-in-prefix": "/node/hub1/hub%2fapi/users/{m}",
    # Not a hub's prefix as written: no slash merging into one.
    "double-slash-first": "//node/hub2/hub/api/users/{m}",
    "double-slash-inside": "/node//hub2/hub/api/users/{m}",
}


@pytest.mark.parametrize("name", sorted(CLIMBING))
def test_a_path_that_leaves_its_hubs_prefix_gets_a_4xx_and_reaches_no_hub(cluster, name):
    since = time.time()
    mark = marker()
    status, body = raw(CLIMBING[name].format(m=mark))
    assert 400 <= status < 500, (status, body[:300])
    assert_reached_no_hub_but_a_control_does(cluster, since, [mark])


def assert_reached_no_hub_but_a_control_does(cluster, since: float, marks: list[str]) -> None:
    """None of ``marks`` is in a hub's journal, while a control request sent afterwards through the
    front door to hub2's users API (a 403) is: the check can see a request that got through."""
    hubs = [cluster[name] for name in HUB_NAMES]
    control = marker()
    status, _ = raw(f"/node/hub2/hub/api/users/{control}")
    assert status == 403, status
    deadline = time.monotonic() + 15
    while not journal_lines([cluster["hub2"]], since, control):
        assert time.monotonic() < deadline, "the control request is not in hub2's journal: the check is blind"
        time.sleep(0.5)
    assert journal_lines(hubs, since, *marks) == []


def test_an_unknown_hub_name_gets_a_404_and_reaches_no_hub(cluster):
    since = time.time()
    marks = [marker(), marker()]
    status, body = raw(f"/node/nosuchhub/hub/api/users/{marks[0]}")
    assert status == 404, (status, body[:300])
    status, body = raw(f"/node/nosuchhub/hub/login?next={marks[1]}")
    assert status == 404, (status, body[:300])
    assert_reached_no_hub_but_a_control_does(cluster, since, marks)


ABSOLUTE_FORM = {
    "hub-http": "http://hub1:8000/node/hub1/hub/api/users/{m}",
    "hub-https": "https://hub2:8000/node/hub2/hub/api/users/{m}",
    "hub-address": "http://10.89.77.11:8000/node/hub1/hub/api/users/{m}",
    "the-public-address": f"https://{PUBLIC}/node/hub1/hub/api/users/{{m}}",
}


@pytest.mark.parametrize("name", sorted(ABSOLUTE_FORM))
def test_an_absolute_form_request_target_gets_a_4xx_and_reaches_no_hub(cluster, name):
    since = time.time()
    mark = marker()
    status, body = raw(ABSOLUTE_FORM[name].format(m=mark))
    assert 400 <= status < 500, (status, body[:300])
    assert_reached_no_hub_but_a_control_does(cluster, since, [mark])


def test_an_absolute_form_target_after_two_spaces_gets_a_4xx_and_reaches_no_hub(cluster):
    """nginx reads any number of spaces after the method: "GET  https://..." is absolute-form too
    (http.client puts the method, then one space: a method ending in a space makes two)."""
    since = time.time()
    mark = marker()
    target = f"https://{PUBLIC}/node/hub1/hub/api/users/{mark}"
    status, body = raw(target, method="GET ", host="evil.example")
    assert 400 <= status < 500, (status, body[:300])
    assert_reached_no_hub_but_a_control_does(cluster, since, [mark])


@pytest.mark.parametrize("host", ["evil.example", "hub1:8000", "hub2", "frontdoor1", "10.89.77.13:8443"])
def test_a_foreign_host_header_gets_a_4xx_and_reaches_no_hub(cluster, host):
    since = time.time()
    mark = marker()
    status, body = raw(f"/node/hub1/hub/api/users/{mark}", host=host)
    assert 400 <= status < 500, (status, body[:300])
    assert_reached_no_hub_but_a_control_does(cluster, since, [mark])


@pytest.mark.parametrize("target", ["hub1:8000", "10.89.77.12:8000", "127.0.0.1:8080"])
def test_connect_gets_a_4xx(target):
    status, body = raw(target, method="CONNECT", host=target)
    assert 400 <= status < 500, (status, body[:300])


# --- No open proxy: a listener outside the cluster that a forwarded request would reach -----------

OUTSIDE_PORT = 8088


@pytest.fixture
def outside_listener(outsider, frontdoor) -> Iterator[str]:
    """An HTTP server on the outsider host (no firewall there) serving a secret; the front door host
    can reach it (checked at /ready), so only nginx's refusal keeps a request from it. Yields the
    secret; the server's request log is the journal of unit ``test62-outside``."""
    secret = uuid.uuid4().hex
    outsider.run("systemctl stop test62-outside; systemctl reset-failed test62-outside")
    outsider.run_expect(
        [0],
        f"mkdir -p /srv/test62 && echo {secret} > /srv/test62/index.html && echo {secret} > /srv/test62/ready",
    )
    outsider.run_expect(
        [0],
        f"systemd-run --unit=test62-outside python3 -m http.server {OUTSIDE_PORT} --directory /srv/test62",
    )
    try:
        fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        deadline = time.monotonic() + 20
        while True:
            seen = frontdoor.run(f"python3 -c {shlex.quote(fetch)} http://outsider:{OUTSIDE_PORT}/ready")
            if secret in seen.stdout:
                break
            assert time.monotonic() < deadline, f"the outsider's listener is not reachable: {seen.stderr}"
            time.sleep(0.5)
        yield secret
    finally:
        outsider.run("systemctl stop test62-outside; rm -rf /srv/test62")


def test_the_front_door_is_not_an_open_proxy(outsider, outside_listener):
    mark = marker()
    answers = {
        "absolute-form": raw(f"http://outsider:{OUTSIDE_PORT}/{mark}", host=f"outsider:{OUTSIDE_PORT}"),
        "absolute-form-public-host": raw(f"http://outsider:{OUTSIDE_PORT}/{mark}"),
        "host-header": raw(f"/{mark}", host=f"outsider:{OUTSIDE_PORT}"),
        "connect": raw(f"outsider:{OUTSIDE_PORT}", method="CONNECT", host=f"outsider:{OUTSIDE_PORT}"),
    }
    for name, (status, body) in answers.items():
        assert 400 <= status < 500, (name, status, body[:300])
        assert outside_listener not in body, name
    time.sleep(1)
    log = outsider.run("journalctl -u test62-outside --no-pager -o cat").stdout.splitlines()
    asked = [line for line in log if '"GET /ready ' in line]
    assert asked, f"the listener's log shows not even the front door's check: {log}"
    assert [line for line in log if ('"' in line and line not in asked) or mark in line] == []


# --- The request URI and the front door's cookie, as a hub's proxy receives them -------------------

ECHO = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
"""
ECHO_PORT = 8097
ECHO_PREFIX = "/node/hub1/test62-echo"


@pytest.fixture
def echo_on_hub1(hub1) -> Iterator[str]:
    """A server on hub1 that answers with the request it got, routed by hub1's own proxy (a route
    added through configurable-http-proxy's API, as JupyterHub adds a user's) at ECHO_PREFIX: what
    comes out of the front door and the TLS hop is what a hub receives. Yields the prefix."""
    hub1.run("systemctl stop test62-echo; systemctl reset-failed test62-echo")
    hub1.run_expect([0], f"systemd-run --unit=test62-echo python3 -c {shlex.quote(ECHO)} {ECHO_PORT}")
    route = json.dumps({"target": f"http://127.0.0.1:{ECHO_PORT}"})
    # configurable-http-proxy's REST API with its token, by Python's standard library on hub1.
    python_api = (
        "import json, os, sys, urllib.request;"
        " token = dict(l.strip().split('=', 1) for l in open(sys.argv[1]) if '=' in l)['CONFIGPROXY_AUTH_TOKEN'];"
        " r = urllib.request.Request(sys.argv[2], data=sys.argv[4].encode() if sys.argv[3] == 'POST' else None,"
        " method=sys.argv[3], headers={'Authorization': 'token ' + token.strip(chr(34))});"
        " print(urllib.request.urlopen(r, timeout=5).status)"
    )

    def proxy_api(method: str) -> None:
        hub1.run_expect(
            [0],
            f"python3 -c {shlex.quote(python_api)} {PROXY_ENV} {PROXY_API}{ECHO_PREFIX} {method}"
            f" {shlex.quote(route)}",
        )

    try:
        proxy_api("POST")
        deadline = time.monotonic() + 20
        while web().get(f"{FRONTDOOR}{ECHO_PREFIX}/ready", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the echo route through hub1's proxy does not answer"
            time.sleep(0.5)
        yield ECHO_PREFIX
    finally:
        hub1.run(
            f"python3 -c {shlex.quote(python_api)} {PROXY_ENV} {PROXY_API}{ECHO_PREFIX} DELETE {shlex.quote(route)}"
        )
        hub1.run("systemctl stop test62-echo")


def echoed(path: str, cookie: str) -> dict:
    reply = web().get(f"{FRONTDOOR}{path}", headers={"Cookie": cookie}, timeout=15)
    assert reply.status_code == 200, (reply.status_code, reply.text[:300])
    got = reply.json()
    got["cookie"] = "; ".join(value for name, value in got["headers"] if name.lower() == "cookie")
    return got


def cookie_pairs(header: str) -> list[str]:
    """The name=value pairs of a Cookie header, in order (whatever the separators' spacing)."""
    return [part.strip() for part in header.split(";") if part.strip()]


@pytest.mark.parametrize(
    "cookie",
    [
        f"{FRONTDOOR_COOKIE}=s3cret-session; probe=kept",
        f"probe=kept; {FRONTDOOR_COOKIE}=s3cret-session",
        f"probe=kept; {FRONTDOOR_COOKIE}=s3cret-session; other=kept-too",
        f"probe=kept;{FRONTDOOR_COOKIE}=s3cret-session;x{FRONTDOOR_COOKIE}=kept-lookalike",
        # Two of them (a browser sends both when a page under a hub's prefix set one of that name).
        f"{FRONTDOOR_COOKIE}=s3cret-session; probe=kept; {FRONTDOOR_COOKIE}=s3cret-session-2",
    ],
    ids=["first", "last", "middle", "no-spaces-and-a-lookalike", "twice"],
)
def test_the_front_doors_session_cookie_never_reaches_a_hub(echo_on_hub1, cookie):
    got = echoed(f"{echo_on_hub1}/x", cookie)
    assert "s3cret-session" not in json.dumps(got), got["cookie"]
    # The hub's own cookies pass, all of them, in order.
    kept = [pair for pair in cookie_pairs(cookie) if not pair.startswith(f"{FRONTDOOR_COOKIE}=")]
    assert cookie_pairs(got["cookie"]) == kept, got["cookie"]
    alone = echoed(f"{echo_on_hub1}/y", f"{FRONTDOOR_COOKIE}=s3cret-session")
    assert "s3cret-session" not in json.dumps(alone), alone["cookie"]


def test_the_request_uri_reaches_the_hub_unchanged(echo_on_hub1):
    path = f"{echo_on_hub1}/a%20b/c%3Bd/%C3%A9?q=x%20y&r=%3D&s"
    assert echoed(path, "probe=1")["path"] == path
    # A query may carry an encoded URL (JupyterHub's next= and OAuth's redirect_uri=): only the path
    # is checked for dot segments and encoded slashes.
    oauth = f"{echo_on_hub1}/authorize?redirect_uri=%2Fnode%2Fhub1%2Fuser%2Fj%2Foauth_callback&next=%2F..%2Fx"
    assert echoed(oauth, "probe=1")["path"] == oauth


def test_more_front_door_cookies_than_are_removed_get_a_400_and_reach_no_hub(echo_on_hub1):
    """Two are removed; a request that carries a third is refused rather than passed with it."""
    cookie = "; ".join(f"{FRONTDOOR_COOKIE}=s3cret-{n}" for n in range(3))
    reply = web().get(f"{FRONTDOOR}{echo_on_hub1}/z", headers={"Cookie": cookie}, timeout=15)
    assert reply.status_code == 400, (reply.status_code, reply.text[:300])
    assert "s3cret" not in reply.text


# --- Hub cookies are scoped by each hub's prefix -------------------------------------------------


def cookie_attributes(header: str) -> tuple[str, dict[str, str]]:
    """A Set-Cookie header's name and its attributes (lower-case names; flags map to "")."""
    first, *attributes = header.split(";")
    pairs = (part.partition("=") for part in attributes)
    return first.partition("=")[0].strip(), {k.strip().lower(): v.strip() for k, _, v in pairs}


def cookie_names(header: str) -> set[str]:
    """The names in a Cookie request header."""
    return {part.partition("=")[0].strip() for part in header.split(";") if part.strip()}


class SetCookies:
    """Every Set-Cookie a session received, with the URL that set it (a requests response hook)."""

    def __init__(self, session: requests.Session) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        session.hooks["response"].append(self.record)

    def record(self, response: requests.Response, *args, **kwargs) -> None:
        for header in response.raw.headers.getlist("Set-Cookie"):
            self.seen.append((response.url, *cookie_attributes(header)))


def wait_ready(host, user: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not (hub_user(host, user).get("servers", {}).get("") or {}).get("ready"):
        assert time.monotonic() < deadline, f"{user}'s server on {host.backend.hostname} is not ready"
        time.sleep(1)


@pytest.fixture
def juser2_at_a_hub(cluster) -> Iterator[tuple[str, requests.Session, SetCookies]]:
    """juser2 logged in once at the front door and handed over to the hub it was placed on, in one
    session (a browser's single cookie jar), up to JupyterLab. Yields (hub, session, Set-Cookies)."""
    session, landing = frontdoor_login("juser2")
    assert landing.hub in HUB_NAMES and landing.proof, (landing.status, landing.response.text[:500])
    cookies = SetCookies(session)
    _, reply = follow_to_hub(landing, session=session)
    assert reply.status_code < 400, (reply.status_code, reply.text[:300])
    # The hub's redirects after the proof stay under its prefix on the one address.
    for step in (*reply.history, reply):
        assert step.url.startswith(f"{FRONTDOOR}/node/{landing.hub}/"), [r.url for r in reply.history]
    wait_ready(cluster[landing.hub], "juser2")
    lab = session.get(f"{FRONTDOOR}/node/{landing.hub}/user/juser2/lab", timeout=60)
    assert lab.status_code == 200 and lab.url.startswith(f"{FRONTDOOR}/node/{landing.hub}/user/juser2/lab")
    try:
        yield landing.hub, session, cookies
    finally:
        stop_server(cluster[landing.hub], "juser2")


def test_hub_cookies_are_scoped_to_the_hubs_prefix_and_not_sent_to_the_other_hub(juser2_at_a_hub):
    hub, session, cookies = juser2_at_a_hub
    other = next(name for name in HUB_NAMES if name != hub)
    from_hub = [(url, n, a) for url, n, a in cookies.seen if url.startswith(f"{FRONTDOOR}/node/{hub}/")]
    # The hub's login, its session id and the user server's own cookie: all were set here.
    names = {name for _, name, _ in from_hub}
    assert {"jupyterhub-hub-login", "jupyterhub-session-id", "jupyterhub-user-juser2"} <= names, names
    for url, name, attributes in from_hub:
        assert attributes.get("path", "").startswith(f"/node/{hub}/"), (url, name, attributes)
    # Everything in the jar but the front door's own cookies lives under the hub's prefix.
    for cookie in session.cookies:
        if cookie.path == "/":
            assert cookie.name.startswith("multijhub"), cookie
        else:
            assert cookie.path.startswith(f"/node/{hub}/") and cookie.path_specified, cookie

    # The same jar: the hub knows the user; the other hub gets none of those cookies and knows no one.
    mine = session.get(f"{FRONTDOOR}/node/{hub}/hub/api/user", timeout=15)
    assert mine.status_code == 200 and mine.json()["name"] == "juser2", (mine.status_code, mine.text[:300])
    assert "jupyterhub-hub-login" in cookie_names(mine.request.headers.get("Cookie", ""))
    theirs = session.get(f"{FRONTDOOR}/node/{other}/hub/api/user", timeout=15)
    sent = cookie_names(theirs.request.headers.get("Cookie", ""))
    assert FRONTDOOR_COOKIE in sent, "the front door's session (path /) should be in the jar and sent"
    assert sent == {FRONTDOOR_COOKIE}, theirs.request.headers.get("Cookie")
    assert theirs.status_code == 403, (theirs.status_code, theirs.text[:300])


# --- The hub port: open to the front doors only; TLS from the internal CA, checked -----------------

PROBE = "python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)'"
FETCH = (
    "import ssl, sys, urllib.request;"
    " context = ssl.create_default_context(cafile=sys.argv[2]);"
    " reply = urllib.request.urlopen(sys.argv[1], context=context, timeout=10);"
    " print(reply.status)"
)


def fetch_from(host, url: str, cafile: str):
    """GET ``url`` on ``host`` with Python's TLS verifying against ``cafile`` only (stdout: status)."""
    return host.run(f"python3 -c {shlex.quote(FETCH)} {shlex.quote(url)} {shlex.quote(cafile)}")


def test_only_the_public_address_is_published_to_the_machine_running_the_tests():
    published = {
        name: subprocess.run(
            ["podman", "port", name], capture_output=True, text=True, check=True
        ).stdout.split()
        for name in ("home1", "hub1", "hub2", "frontdoor1", "outsider")
    }
    assert published == {
        "home1": [],
        "hub1": [],
        "hub2": [],
        "frontdoor1": ["8443/tcp", "->", PUBLIC],
        "outsider": [],
    }


@pytest.mark.parametrize("name", HUB_NAMES)
def test_the_hub_port_is_closed_to_the_outsider_and_the_machine_running_the_tests(cluster, outsider, name):
    hub = cluster[name]
    # From the outsider host: nothing on the hub port; ssh on the same host answers (the path works).
    assert outsider.run(f"{PROBE} {name} 22").rc == 0
    refused = outsider.run(f"{PROBE} {name} 8000")
    assert refused.rc != 0, "the outsider reached the hub port"
    # From the machine running the tests, on the cluster network (not through the front door).
    with socket.create_connection((address(hub), 22), timeout=3):
        pass
    with pytest.raises(OSError):
        socket.create_connection((address(hub), 8000), timeout=3).close()


@pytest.mark.parametrize("name", HUB_NAMES)
def test_the_front_door_reaches_the_hub_over_tls_from_the_internal_ca_only(frontdoor, name):
    url = f"https://{name}:8000/node/{name}/hub/health"
    ok = fetch_from(frontdoor, url, HUB_CA)
    assert ok.rc == 0 and ok.stdout.strip() == "200", ok.stderr[-1000:]
    # The public CAs do not vouch for a hub: its certificate is the cluster's own.
    refused = fetch_from(frontdoor, url, SYSTEM_CAS)
    assert refused.rc != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr[-1000:]
    # Plain HTTP is not served on the hub port.
    plain = frontdoor.run(
        "python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)'"
        f" http://{name}:8000/node/{name}/hub/health"
    )
    assert plain.rc != 0


def self_signed(name: str, ip: str) -> tuple[str, str]:
    """A key and a certificate for ``name`` with the names a hub's has, but signed by itself: the
    right names, the wrong issuer. PEM (key, certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = [x509.DNSName(name), x509.DNSName("localhost")]
    san += [x509.IPAddress(ipaddress.ip_address(ip)), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem_key, cert.public_bytes(serialization.Encoding.PEM).decode()


def wait_hub_answers(name: str, want: int, timeout: float = 90) -> None:
    """Wait until ``/node/<name>/hub/health`` through the front door answers ``want``."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = web().get(f"{FRONTDOOR}/node/{name}/hub/health", timeout=10).status_code
        except requests.RequestException as error:
            seen = repr(error)
        if seen == want:
            return
        time.sleep(1)
    raise AssertionError(f"/node/{name}/hub/health answered {seen}, not {want}, for {timeout} s")


@pytest.fixture
def hub1_with_a_foreign_certificate(hub1) -> Iterator[str]:
    """hub1's proxy serves a self-signed certificate with hub1's names (its own key and certificate
    kept aside, the files' owners and modes untouched); put back and the proxy restarted afterwards.
    Yields the foreign certificate (PEM)."""
    key, cert = self_signed("hub1", address(hub1))
    keep = f"cp -p {HUB_TLS}/hub.key {HUB_TLS}/hub.key.test62 && cp -p {HUB_TLS}/hub.crt {HUB_TLS}/hub.crt.test62"
    hub1.run_expect([0], keep)
    try:
        hub1.run_expect(
            [0],
            f"printf %s {shlex.quote(key)} > {HUB_TLS}/hub.key && printf %s {shlex.quote(cert)} > {HUB_TLS}/hub.crt",
        )
        hub1.run_expect([0], "systemctl restart jupyterhub-proxy")
        yield cert
    finally:
        hub1.run_expect(
            [0],
            f"cat {HUB_TLS}/hub.key.test62 > {HUB_TLS}/hub.key && cat {HUB_TLS}/hub.crt.test62 > {HUB_TLS}/hub.crt"
            f" && rm -f {HUB_TLS}/hub.key.test62 {HUB_TLS}/hub.crt.test62",
        )
        hub1.run_expect([0], "systemctl restart jupyterhub-proxy")
        wait_hub_answers("hub1", 200)


FOREIGN = "/tmp/test62-foreign.crt"  # on the front door host


def test_the_front_door_checks_the_hubs_certificate_on_every_connection(
    frontdoor, hub1_with_a_foreign_certificate
):
    """hub1 up and healthy behind a certificate with the right names from the wrong issuer: the
    front door's nginx refuses the hop (502) and logs why; hub2 is served as before."""
    frontdoor.run_expect([0], f"printf %s {shlex.quote(hub1_with_a_foreign_certificate)} > {FOREIGN}")
    try:
        url = "https://hub1:8000/node/hub1/hub/health"
        deadline = time.monotonic() + 90
        while (seen := fetch_from(frontdoor, url, FOREIGN)).stdout.strip() != "200":
            assert time.monotonic() < deadline, (
                f"hub1 does not answer with the foreign certificate: {seen.stderr}"
            )
            time.sleep(1)
        refused = fetch_from(frontdoor, url, HUB_CA)
        assert refused.rc != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr[-1000:]
        for _ in range(3):  # new connections each (a new session each): every one is checked
            assert web().get(f"{FRONTDOOR}/node/hub1/hub/health", timeout=10).status_code == 502
        assert web().get(f"{FRONTDOOR}/node/hub2/hub/health", timeout=10).status_code == 200
        errors = frontdoor.run_test("tail -n 200 /var/log/nginx/error.log").stdout
        assert "upstream SSL certificate verify error" in errors, errors[-2000:]
    finally:
        frontdoor.run(f"rm -f {FOREIGN}")


def test_the_internal_ca_key_and_the_hub_keys_are_private_and_on_local_disk(cluster, frontdoor):
    ca = frontdoor.file(CA_DIR)
    assert ca.is_directory and (ca.mode, ca.user) == (0o700, "root")
    key = frontdoor.file(f"{CA_DIR}/ca.key")
    assert key.is_file and not key.is_symlink and (key.mode, key.user) == (0o600, "root")
    assert "/home" not in frontdoor.run_test(f"findmnt -n -o TARGET -T {CA_DIR}").stdout
    # The front door checks hubs with exactly the CA's certificate.
    assert frontdoor.file(HUB_CA).content_string == frontdoor.file(f"{CA_DIR}/ca.crt").content_string
    for name in HUB_NAMES:
        hub = cluster[name]
        hub_key = hub.file(f"{HUB_TLS}/hub.key")
        assert hub_key.is_file and not hub_key.is_symlink and hub_key.mode == 0o600, name
        assert "/home" not in hub.run_test(f"findmnt -n -o TARGET -T {HUB_TLS}").stdout
        assert not hub.file(f"{CA_DIR}/ca.key").exists, f"{name} holds the CA's key"


# --- site.yml's preflight: the one address's settings ---------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"multijhub_public_url": "https://127.0.0.1:18443/jupyter"}, "multijhub_public_url"),
        ({"multijhub_public_url": "http://127.0.0.1:18443"}, "multijhub_public_url"),
        ({"jupyterhub_public_url": "http://127.0.0.2:8000"}, "jupyterhub_public_url"),
    ],
    ids=["public-url-with-a-path", "public-url-not-https", "a-hub-url-beside-the-public-url"],
)
def test_preflight_names_a_wrong_setting_of_the_one_address_and_changes_nothing(playbook, extra, named):
    result = playbook.run("site.yml", "-e", json.dumps(extra))
    assert result.returncode != 0
    assert named in result.stdout, result.stdout[-3000:]
    assert all(stats["changed"] == 0 for stats in recap(result.stdout).values())
