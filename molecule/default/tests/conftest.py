"""Fixtures for the verify step: the cluster's hosts, reached with `podman exec` (fast), and a
helper that runs playbooks against molecule's inventory."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

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


# --- JupyterHub helpers (HTTP from the machine running the tests to the containers) ----------------

PASSWORDS = {"juser1": "juser1-Test-pw", "juser2": "juser2-Test-pw", "jadmin": "jadmin-Test-pw"}
TOKEN_FILE = "/var/lib/multijhub/jupyterhub/frontdoor.token"


def address(host) -> str:
    return host.interface("eth0").addresses[0]


def hub_url(host) -> str:
    return f"http://{address(host)}:8000"


def hub_token(host) -> str:
    return host.run_test(f"cat {TOKEN_FILE}").stdout.strip()


def hub_user(host, user: str) -> dict:
    reply = requests.get(
        f"{hub_url(host)}/hub/api/users/{user}",
        headers={"Authorization": f"token {hub_token(host)}"},
        timeout=10,
    )
    reply.raise_for_status()
    return reply.json()


def login_and_spawn(host, user: str, timeout: float = 90):
    """Log in through the hub's login form (with its _xsrf) and wait until the user's server is ready."""
    session = requests.Session()
    base = hub_url(host)
    session.get(f"{base}/hub/login", timeout=10).raise_for_status()
    xsrf = session.cookies.get("_xsrf", "")
    reply = session.post(
        f"{base}/hub/login?next=/hub/spawn",
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
    requests.delete(f"{hub_url(host)}/hub/api/users/{user}/server", headers=headers, timeout=30)
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


# --- The front door, over HTTP from the machine running the tests ---------------------------------------

FRONTDOOR = f"http://127.0.0.1:{os.environ.get('MULTIJHUB_FRONTDOOR_PORT', '18080')}"
PUBLIC_HUBS = {"http://127.0.0.2:8000": "hub1", "http://127.0.0.3:8000": "hub2"}  # test inventory


class Landing:
    """Where the front door sent a user: the hub, and the proof form (or redirect) that goes there."""

    def __init__(self, response) -> None:
        self.response = response
        self.status = response.status_code
        self.hub: str | None = None
        self.action: str | None = None
        self.proof: str | None = None
        if self.status == 200 and 'id="handoff"' in response.text:
            self.action = re.search(
                r'<form id="handoff" method="post" action="([^"]+)"', response.text
            ).group(1)
            self.proof = re.search(r'name="proof" value="([^"]+)"', response.text).group(1)
        elif self.status in (301, 302, 303):
            self.action = response.headers["Location"]
        if self.action:
            self.hub = next(
                (name for base, name in PUBLIC_HUBS.items() if self.action.startswith(base + "/")), None
            )


def frontdoor_login(user: str, password: str | None = None, *, visit: bool = True):
    """Log in at the front door (CSRF token from the form) and follow to the resolution answer
    (with ``visit=False`` only log in: no resolution, no placement; the Landing is None)."""
    session = requests.Session()
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


def follow_to_hub(landing: Landing, timeout: float = 90):
    """Submit the proof to the hub (as the page's script does) and wait for the user's server."""
    session = requests.Session()
    if landing.proof:
        reply = session.post(landing.action, data={"proof": landing.proof}, timeout=60)
    else:
        reply = session.get(landing.action, timeout=60)
    return session, reply
