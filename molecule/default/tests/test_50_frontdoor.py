"""Issues 6 and 7 on the cluster: the front door finds the node, places new servers, and logs the
user in at the hub without a second password."""

from __future__ import annotations

import subprocess
import time

import pytest
from conftest import FRONTDOOR, follow_to_hub, frontdoor_login, hub_user, login_and_spawn, stop_server, web


def wait_ready(cluster, hub: str, user: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = hub_user(cluster[hub], user).get("servers", {}).get("")
        if server and server.get("ready"):
            return
        time.sleep(1)
    pytest.fail(f"{user}'s server on {hub} was not ready within {timeout} s")


def wait_gone(cluster, hub: str, user: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not hub_user(cluster[hub], user).get("servers", {}).get(""):
            return
        time.sleep(2)
    pytest.fail(f"{hub} still lists {user}'s server after {timeout} s")


def test_frontdoor_is_healthy_and_serves_the_login_form():
    assert web().get(f"{FRONTDOOR}/healthz", timeout=10).json() == {"status": "ok"}
    page = web().get(f"{FRONTDOOR}/login", timeout=10)
    assert page.status_code == 200 and "csrf_token" in page.text


def test_wrong_password_gets_the_login_page_again():
    with pytest.raises(AssertionError):
        frontdoor_login("juser1", "not-the-password")


@pytest.fixture(scope="module")
def juser1_landing(cluster):
    _, landing = frontdoor_login("juser1")
    assert landing.hub in ("hub1", "hub2"), (landing.status, landing.response.text[:800])
    session, reply = follow_to_hub(landing)
    assert reply.status_code == 200, reply.text[:500]
    wait_ready(cluster, landing.hub, "juser1")
    yield landing, session, reply
    stop_server(cluster[landing.hub], "juser1")


def test_login_once_lands_in_jupyterlab_without_a_second_password(juser1_landing):
    landing, session, reply = juser1_landing
    assert landing.proof, "the front door must hand over with a login proof, not a plain redirect"
    assert "/hub/login" not in reply.url
    origin = landing.action.split("/hub/", 1)[0]
    lab = session.get(f"{origin}/user/juser1/lab", timeout=60)
    assert lab.status_code == 200
    assert lab.url.startswith(f"{origin}/user/juser1/lab"), lab.url
    assert "JupyterLab" in lab.text


def test_a_new_login_resolves_to_the_same_node(juser1_landing):
    landing, _, _ = juser1_landing
    _, again = frontdoor_login("juser1")
    assert again.hub == landing.hub


def test_a_replayed_proof_is_refused(juser1_landing):
    landing, _, _ = juser1_landing
    replay = web().post(landing.action, data={"proof": landing.proof}, timeout=30)
    assert replay.status_code == 403


def probe_sessions(hub) -> set[int]:
    """PIDs of the probe processes running on ``hub`` (persistent sessions of the front door)."""
    out = hub.run("pgrep -u multijhub-probe -f '^[^ ]*python[^ ]* -m multijhub[.]core[.]probe'").stdout
    return {int(pid) for pid in out.split()}


def test_resolutions_reuse_the_persistent_probe_sessions(cluster):
    """Logins do not start an ssh session or a probe per request: each worker keeps one per hub."""
    session, _ = frontdoor_login("jadmin")
    for _ in range(8):  # every gunicorn worker resolves at least once (and opens its sessions)
        assert session.get(f"{FRONTDOOR}/", allow_redirects=False, timeout=30).status_code == 200
    before = {name: probe_sessions(cluster[name]) for name in ("hub1", "hub2")}
    for _ in range(12):
        assert session.get(f"{FRONTDOOR}/", allow_redirects=False, timeout=30).status_code == 200
    after = {name: probe_sessions(cluster[name]) for name in ("hub1", "hub2")}
    assert after == before
    for name, pids in after.items():
        # redirector_workers (2 here) x redirector_probe_channels (1): never one per request.
        assert 1 <= len(pids) <= 2, (name, pids)


def test_after_sigkill_the_user_is_placed_again(cluster, juser1_landing):
    landing, _, _ = juser1_landing
    hub = cluster[landing.hub]
    hub.run_test("systemctl kill -s KILL jupyter-juser1-singleuser.service")
    wait_gone(cluster, landing.hub, "juser1")
    _, placed = frontdoor_login("juser1")
    assert placed.hub in ("hub1", "hub2")
    assert placed.proof


def test_with_hub1_silent_a_server_on_hub2_is_still_found(cluster):
    login_and_spawn(cluster["hub2"], "juser2")
    try:
        subprocess.run(["podman", "pause", "hub1"], check=True)
        try:
            started = time.monotonic()
            _, found = frontdoor_login("juser2")
            elapsed = time.monotonic() - started
        finally:
            subprocess.run(["podman", "unpause", "hub1"], check=True)
        assert found.hub == "hub2"
        assert elapsed < 15, elapsed
    finally:
        stop_server(cluster["hub2"], "juser2")


def test_with_hub1_silent_a_user_whose_server_may_be_there_gets_unknown_and_retry(cluster):
    """jadmin's server runs on hub1 (the front door saw hub1 list it): while hub1 is silent, jadmin
    is told "cannot tell" with a retry, never placed elsewhere (issue 16: only users whose recent
    nodes include the silent node wait for it)."""
    login_and_spawn(cluster["hub1"], "jadmin")
    try:
        _, found = frontdoor_login("jadmin")
        assert found.hub == "hub1"
        subprocess.run(["podman", "pause", "hub1"], check=True)
        try:
            _, landing = frontdoor_login("jadmin")
        finally:
            subprocess.run(["podman", "unpause", "hub1"], check=True)
        assert landing.status == 503
        assert "hub1" in landing.response.text and "Try again" in landing.response.text
        assert landing.response.headers.get("Retry-After")
    finally:
        stop_server(cluster["hub1"], "jadmin")
