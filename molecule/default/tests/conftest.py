"""Fixtures for the verify step: the cluster's hosts, reached with `podman exec` (fast), a helper
that runs playbooks against molecule's inventory, and HTTP helpers that reach the cluster the way
users do: through its one public address (the front door's nginx, HTTPS), never a hub directly."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import testinfra

REPO = Path(__file__).resolve().parents[3]
HOSTS = ("home1", "hub1", "hub2", "frontdoor1", "outsider")


def _host(name: str) -> testinfra.host.Host:
    return testinfra.get_host(f"podman://{name}")


@pytest.fixture(scope="session")
def home() -> testinfra.host.Host:
    return _host("home1")


@pytest.fixture(scope="session")
def hub1() -> testinfra.host.Host:
    return _host("hub1")


@pytest.fixture(scope="session")
def hub2() -> testinfra.host.Host:
    return _host("hub2")


@pytest.fixture(scope="session")
def frontdoor() -> testinfra.host.Host:
    return _host("frontdoor1")


@pytest.fixture(scope="session")
def outsider() -> testinfra.host.Host:
    return _host("outsider")


@pytest.fixture(scope="session")
def hubs(hub1: testinfra.host.Host, hub2: testinfra.host.Host) -> list[testinfra.host.Host]:
    return [hub1, hub2]


@pytest.fixture(scope="session")
def cluster(home, hub1, hub2, frontdoor) -> dict[str, testinfra.host.Host]:
    return {"home1": home, "hub1": hub1, "hub2": hub2, "frontdoor1": frontdoor}


class Playbook:
    """Runs ansible-playbook from the repository against molecule's inventory."""

    def __init__(self) -> None:
        inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
        if not inventory:
            pytest.fail(
                "MOLECULE_INVENTORY_FILE is not set: run the verify step through molecule (make test)"
            )
        self.inventory = inventory

    def run(
        self, playbook: str, *args: str, timeout: int = 900, callback: str = "ansible.builtin.default"
    ) -> subprocess.CompletedProcess[str]:
        """Runs it; ``callback="multijhub.cluster.answers"`` shows what an operator reads."""
        env = dict(os.environ)
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "collections")
        env["ANSIBLE_STDOUT_CALLBACK"] = callback
        env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "yaml"
        env["ANSIBLE_FORCE_COLOR"] = "0"
        env["ANSIBLE_NOCOLOR"] = "1"
        return subprocess.run(
            ["ansible-playbook", "-i", self.inventory, str(REPO / playbook), *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="session")
def playbook() -> Playbook:
    return Playbook()


def recap(output: str) -> dict[str, dict[str, int]]:
    """Parse PLAY RECAP lines into {host: {ok: n, changed: n, ...}}."""
    hosts: dict[str, dict[str, int]] = {}
    lines = output.split("PLAY RECAP", 1)[-1].splitlines()
    for line in lines:
        parts = line.split()
        if len(parts) > 2 and parts[1] == ":":
            hosts[parts[0]] = {k: int(v) for k, v in (p.split("=") for p in parts[2:] if "=" in p)}
    return hosts


@pytest.fixture
def restore_uid(hub2: testinfra.host.Host) -> Iterator[None]:
    yield
    hub2.run("usermod -u 2002 juser2")


# --- The one public address: HTTPS to the front door's nginx, its self-signed certificate ----------

PUBLIC_PORT = os.environ.get("MULTIJHUB_PUBLIC_PORT", "18443")
# molecule/cluster.yml: multijhub_public_url, published by frontdoor1 (nginx, TLS) and nothing else.
FRONTDOOR = f"https://127.0.0.1:{PUBLIC_PORT}"
HUB_NAMES = ("hub1", "hub2")
# Each hub's public URL: its fixed prefix under the one address (hub_url below).
PUBLIC_HUBS = {f"{FRONTDOOR}/node/{name}": name for name in HUB_NAMES}
FRONTDOOR_CERT = "/etc/multijhub/frontdoor/tls/frontdoor.crt"  # on frontdoor1; self-signed
_CA_DIR: list[Path] = []


def frontdoor_ca() -> str:
    """Path of a local copy of the front door's public certificate (PEM), fetched once per test
    session from frontdoor1: the one certificate every HTTPS call of the tests trusts."""
    if not _CA_DIR:
        pem = _host("frontdoor1").file(FRONTDOOR_CERT).content_string
        assert "BEGIN CERTIFICATE" in pem, f"frontdoor1:{FRONTDOOR_CERT} holds no certificate"
        _CA_DIR.append(Path(tempfile.mkdtemp(prefix="multijhub-frontdoor-ca-")))
        (_CA_DIR[0] / "frontdoor.crt").write_text(pem)
    return str(_CA_DIR[0] / "frontdoor.crt")


@pytest.fixture(scope="session", autouse=True)
def _forget_frontdoor_ca() -> Iterator[None]:
    yield
    for directory in _CA_DIR:
        shutil.rmtree(directory, ignore_errors=True)


def web() -> requests.Session:
    """A requests session for the public address that verifies the front door's certificate.

    ``trust_env`` is off: with it, requests lets ``REQUESTS_CA_BUNDLE`` from the environment (set
    on the build machines) override the session's ``verify``, and would take proxies from it too.
    """
    session = requests.Session()
    session.trust_env = False
    session.verify = frontdoor_ca()
    # As a browser on the front door's pages sends it: over HTTPS, Flask-WTF's CSRF check also
    # requires a Referer of the same origin.
    session.headers["Referer"] = f"{FRONTDOOR}/"
    return session


def absolute(url: str) -> str:
    """``url`` (absolute, or a path as the front door's pages may give it) on the public address."""
    return urljoin(FRONTDOOR + "/", url)


# --- JupyterHub helpers (HTTPS from the machine running the tests, through the front door) ---------

PASSWORDS = {"juser1": "juser1-Test-pw", "juser2": "juser2-Test-pw", "jadmin": "jadmin-Test-pw"}
TOKEN_FILE = "/var/lib/multijhub/jupyterhub/frontdoor.token"


def address(host) -> str:
    return host.interface("eth0").addresses[0]


def hub_url(host) -> str:
    """The hub's public URL (its base_url under the one address): the hubs' own ports are firewalled
    to the front doors and published nowhere."""
    return f"{FRONTDOOR}/node/{host.backend.hostname}"


def hub_token(host) -> str:
    return host.run_test(f"cat {TOKEN_FILE}").stdout.strip()


def hub_user(host, user: str) -> dict:
    reply = web().get(
        f"{hub_url(host)}/hub/api/users/{user}",
        headers={"Authorization": f"token {hub_token(host)}"},
        timeout=10,
    )
    reply.raise_for_status()
    return reply.json()


def login_and_spawn(host, user: str, timeout: float = 90):
    """Log in through the hub's login form (with its _xsrf) and wait until the user's server is ready."""
    session = web()
    base = hub_url(host)
    session.get(f"{base}/hub/login", timeout=10).raise_for_status()
    xsrf = session.cookies.get("_xsrf", "")
    reply = session.post(
        f"{base}/hub/login?next={urlsplit(base).path}/hub/spawn",
        data={"username": user, "password": PASSWORDS[user], "_xsrf": xsrf},
        timeout=60,
    )
    assert reply.status_code < 400, reply.text[:500]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = hub_user(host, user).get("servers", {}).get("")
        if server and server.get("ready"):
            return session
        time.sleep(1)
    raise AssertionError(f"{user}'s server on {host.backend.hostname} was not ready within {timeout} s")


ADMIN_TOKEN = "molecule-tests-admin-token-5d41402abc4b2a76"  # test inventory only


def stop_server(host, user: str, timeout: float = 60) -> None:
    """Stop the user's server through the hub's API (test-only admin service) and wait until it is gone."""
    headers = {"Authorization": f"token {ADMIN_TOKEN}"}
    web().delete(f"{hub_url(host)}/hub/api/users/{user}/server", headers=headers, timeout=30)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not hub_user(host, user).get("servers", {}).get(""):
            return
        time.sleep(1)
    raise AssertionError(f"{user}'s server on {host.backend.hostname} did not stop within {timeout} s")


def server_port(host, user: str) -> int:
    """The TCP port the user's single-user server (its unit's main process) listens on."""
    pid = host.run_test(f"systemctl show -p MainPID --value jupyter-{user}-singleuser.service").stdout.strip()
    listening = host.run_test("ss -Hltnp").stdout
    for line in listening.splitlines():
        if f"pid={pid}," in line:
            return int(line.split()[3].rsplit(":", 1)[1])
    raise AssertionError(f"the server of {user} (pid {pid}) listens on no TCP port: {listening}")


# --- The front door, over HTTPS from the machine running the tests --------------------------------------


class Landing:
    """Where the front door sent a user: the hub, and the proof form (or redirect) that goes there."""

    def __init__(self, response) -> None:
        self.response = response
        self.status = response.status_code
        self.hub: str | None = None
        self.action: str | None = None
        self.proof: str | None = None
        if self.status == 200 and 'id="handoff"' in response.text:
            self.action = absolute(
                html.unescape(
                    re.search(r'<form id="handoff" method="post" action="([^"]+)"', response.text).group(1)
                )
            )
            self.proof = re.search(r'name="proof" value="([^"]+)"', response.text).group(1)
        elif self.status in (301, 302, 303):
            self.action = absolute(response.headers["Location"])
        if self.action:
            self.hub = next(
                (name for base, name in PUBLIC_HUBS.items() if self.action.startswith(base + "/")), None
            )


def frontdoor_login(user: str, password: str | None = None, *, visit: bool = True):
    """Log in at the front door (CSRF token from the form) and follow to the resolution answer
    (with ``visit=False`` only log in: no resolution, no placement; the Landing is None)."""
    session = web()
    page = session.get(f"{FRONTDOOR}/login", timeout=10)
    page.raise_for_status()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    token = token or re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    assert token, page.text[:1000]
    reply = session.post(
        f"{FRONTDOOR}/login",
        data={"username": user, "password": password or PASSWORDS[user], "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    assert reply.status_code == 303, (reply.status_code, reply.text[:500])
    if not visit:
        return session, None
    answer = session.get(f"{FRONTDOOR}/", allow_redirects=False, timeout=30)
    return session, Landing(answer)


def follow_to_hub(landing: Landing, timeout: float = 90, session: requests.Session | None = None):
    """Submit the proof to the hub (as the page's script does) and wait for the user's server.

    ``session``: the front door's login session, as a browser's one cookie jar (default: a new one).
    """
    session = session or web()
    if landing.proof:
        reply = session.post(landing.action, data={"proof": landing.proof}, timeout=60)
    else:
        reply = session.get(landing.action, timeout=60)
    return session, reply
