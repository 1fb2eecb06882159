"""Issue 4: a JupyterHub on every node (memory limits, port range, culler, token) and the firewall."""

from __future__ import annotations

import json
import shlex
import signal
import time
from pathlib import Path

import pytest
from conftest import (
    address,
    hub_token,
    hub_url,
    hub_user,
    login_and_spawn,
    recap,
    server_port,
    stop_server,
    web,
)

RUNTIME = "/home/{user}/.local/share/jupyter/runtime"


@pytest.mark.parametrize("name", ["hub1", "hub2"])
def test_each_hub_answers_health(cluster, name):
    reply = web().get(f"{hub_url(cluster[name])}/hub/health", timeout=10)
    assert reply.status_code == 200


@pytest.fixture(scope="module")
def juser1_on_hub1(hub1):
    login_and_spawn(hub1, "juser1")
    yield
    stop_server(hub1, "juser1")


def test_login_spawns_a_server_whose_port_is_in_the_range(hub1, juser1_on_hub1):
    port = server_port(hub1, "juser1")
    assert 8100 <= port <= 8199, port
    assert hub1.socket(f"tcp://127.0.0.1:{port}").is_listening


def test_runtime_file_is_visible_from_the_other_hub_and_the_front_door(hub1, hub2, frontdoor, juser1_on_hub1):
    pid = hub1.run_test("systemctl show -p MainPID --value jupyter-juser1-singleuser.service").stdout.strip()
    name = f"{RUNTIME.format(user='juser1')}/jpserver-{pid}.json"
    for _ in range(30):
        if hub1.file(name).exists:
            break
        time.sleep(1)
    assert hub1.file(name).exists
    assert hub2.file(name).exists
    assert frontdoor.file(name).exists
    assert not hub1.file(f"{RUNTIME.format(user='juser1')}/jpserver-{pid}-open.html").exists


def test_server_runs_under_the_memory_limit(hub1, juser1_on_hub1):
    shown = hub1.run_test(
        "systemctl show -p MemoryMax --value jupyter-juser1-singleuser.service"
    ).stdout.strip()
    assert shown == str(200 * 1024 * 1024)


HOG = 'python3 -c \'b = bytearray(300 * 1024 * 1024); b[::4096] = b"x" * len(b[::4096]); print("survived")\''


def _oom_kills(host, events: str) -> int | None:
    """The unit's out-of-memory kills so far (cgroup v2 memory.events), None without that file."""
    if not host.file(events).exists:
        return None
    for line in host.file(events).content_string.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return None


def test_a_process_over_the_limit_is_killed_and_the_rest_keeps_running(hub1, hub2, juser1_on_hub1):
    login_and_spawn(hub2, "juser2")
    try:
        # Control: the same allocation outside the user's unit survives.
        assert "survived" in hub1.run_test(f"runuser -u juser1 -- {HOG}").stdout
        cgroup = hub1.run_test(
            "systemctl show -p ControlGroup --value jupyter-juser1-singleuser.service"
        ).stdout.strip()
        procs = next(
            p
            for p in (f"/sys/fs/cgroup/memory{cgroup}/cgroup.procs", f"/sys/fs/cgroup{cgroup}/cgroup.procs")
            if hub1.file(p).exists
        )
        events = Path(procs).with_name("memory.events").as_posix()
        kills_before = _oom_kills(hub1, events)
        # The shell moves itself into the server's unit, then becomes the hog (quoted as one argument:
        # the hog's own quotes once broke this command, and a shell error passed for a kill).
        hog = hub1.run("sh -c " + shlex.quote(f"echo $$ > {procs}; exec runuser -u juser1 -- {HOG}"))
        assert "survived" not in hog.stdout
        assert hog.rc == 128 + signal.SIGKILL, (hog.rc, hog.stderr)
        if kills_before is not None:
            assert _oom_kills(hub1, events) > kills_before
        assert web().get(f"{hub_url(hub1)}/hub/health", timeout=10).status_code == 200
        assert hub_user(hub2, "juser2")["servers"][""]["ready"]
        assert hub1.service("jupyterhub").is_running
    finally:
        stop_server(hub2, "juser2")


@pytest.mark.parametrize("name", ["hub1", "hub2"])
def test_front_door_token_reads_but_cannot_start_or_stop(cluster, name):
    host = cluster[name]
    headers = {"Authorization": f"token {hub_token(host)}"}
    base = f"{hub_url(host)}/hub/api"
    assert web().get(f"{base}/users", headers=headers, timeout=10).status_code == 200
    assert web().get(f"{base}/users/juser1", headers=headers, timeout=10).status_code == 200
    assert web().post(f"{base}/users/juser2/server", headers=headers, timeout=10).status_code == 403
    assert web().delete(f"{base}/users/juser1/server", headers=headers, timeout=10).status_code == 403


@pytest.mark.parametrize("name", ["hub1", "hub2"])
def test_secrets_stay_on_local_disk_and_private(cluster, name):
    host = cluster[name]
    for path in (
        "/var/lib/multijhub/jupyterhub/frontdoor.token",
        "/var/lib/multijhub/jupyterhub/jupyterhub_cookie_secret",
    ):
        assert host.file(path).mode == 0o600
        assert not host.file(path).linked_to.startswith("/home")
    assert "/home" not in host.run_test("findmnt -n -o TARGET -T /var/lib/multijhub").stdout


def test_culler_stops_an_idle_server(hub2):
    login_and_spawn(hub2, "juser2")
    deadline = time.monotonic() + 150  # test inventory: timeout 45 s, checked every 10 s
    while time.monotonic() < deadline:
        if not hub_user(hub2, "juser2").get("servers", {}).get(""):
            break
        time.sleep(5)
    else:
        pytest.fail("the idle culler did not stop juser2's idle server within 150 s")
    assert not hub2.service("jupyter-juser2-singleuser").is_running


# --- Firewall ----------------------------------------------------------------------------------------


def test_firewall_opens_the_hub_port_and_nothing_unasked(hub1, frontdoor):
    hub1.run("systemd-run --unit=fwprobe python3 -m http.server 9999")
    try:
        for _ in range(20):
            if hub1.socket("tcp://0.0.0.0:9999").is_listening:
                break
            time.sleep(0.5)
        probe = "python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)'"
        assert frontdoor.run(f"{probe} {address(hub1)} 8000").rc == 0
        assert frontdoor.run(f"{probe} {address(hub1)} 9999").rc != 0
        assert hub1.run(f"{probe} 127.0.0.1 9999").rc == 0, "the probe listener itself must work"
    finally:
        hub1.run("systemctl stop fwprobe")


def test_ansible_ssh_connection_survives_applying_the_firewall(hub1, playbook):
    # The test inventory reaches every host over ssh with a shared connection (ControlPersist):
    # removing the table and applying the role again must keep that connection working.
    hub1.run_test("nft delete table inet multijhub")
    result = playbook.run(
        "molecule/default/tests/playbooks/apply_role.yml",
        "-e",
        "target=home:hubs:frontdoor",
        "-e",
        "role=firewall",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result.stdout)["hub1"]["changed"] > 0
    assert recap(result.stdout)["hub1"]["unreachable"] == 0
    assert "table inet multijhub" in hub1.run_test("nft list tables").stdout
    again = playbook.run(
        "molecule/default/tests/playbooks/apply_role.yml", "-e", "target=hub1", "-e", "role=common"
    )
    assert again.returncode == 0, again.stdout[-3000:]


# --- Idempotence of the whole site and bad input --------------------------------------------------------


def test_second_site_run_changes_and_restarts_nothing(hub1, playbook):
    before = hub1.run_test("systemctl show -p ExecMainStartTimestampMonotonic --value jupyterhub").stdout
    result = playbook.run("site.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(stats["changed"] == 0 for stats in recap(result.stdout).values()), recap(result.stdout)
    after = hub1.run_test("systemctl show -p ExecMainStartTimestampMonotonic --value jupyterhub").stdout
    assert before == after


@pytest.mark.parametrize(
    "extra",
    [
        {"jupyterhub_port_range": "8100:8199"},
        {"jupyterhub_port_range": "8199-8100"},
        {"jupyterhub_port_range": "7900-8100"},
        {"jupyterhub_spawner": "kubernetes"},
        {"jupyterhub_mem_limit": "lots"},
    ],
    ids=["malformed-range", "inverted-range", "range-overlaps-hub-port", "unknown-spawner", "bad-memory"],
)
def test_bad_hub_input_fails_early_with_the_variable_named(playbook, extra):
    args = {"target": "hubs", "role": "jupyterhub", **extra}
    result = playbook.run("molecule/default/tests/playbooks/apply_role.yml", "-e", json.dumps(args))
    assert result.returncode != 0
    name = next(iter(extra))
    assert name in result.stdout, result.stdout[-3000:]
    assert all(stats["changed"] == 0 for stats in recap(result.stdout).values())
