"""Issue 5: where.yml on the cluster (module on every hub, lookup on the controller)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import hub_user, login_and_spawn, stop_server

RUNTIME = "/home/juser1/.local/share/jupyter/runtime"


def where(playbook, *args: str, tmp_path=None):
    extra = []
    if tmp_path is not None:
        extra = ["-e", f"where_json={tmp_path / 'where.json'}"]
    result = playbook.run("where.yml", *args, *extra)
    data = (
        json.loads((tmp_path / "where.json").read_text())
        if tmp_path and (tmp_path / "where.json").exists()
        else None
    )
    return result, data


@pytest.fixture
def juser1_on_hub2(hub2):
    login_and_spawn(hub2, "juser1")
    pid = int(hub2.run_test("systemctl show -p MainPID --value jupyter-juser1-singleuser.service").stdout)
    for _ in range(30):
        if hub2.file(f"{RUNTIME}/jpserver-{pid}.json").exists:
            break
        time.sleep(1)
    yield pid
    # Through the hub even after a SIGKILL: the hub must learn that the server is gone.
    stop_server(hub2, "juser1")


def test_where_finds_the_server_on_hub2(playbook, juser1_on_hub2, tmp_path):
    result, data = where(playbook, "-e", "user=juser1", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "juser1: running on hub2" in result.stdout
    assert f"pid {juser1_on_hub2}" in result.stdout
    assert data["state"] == "running" and data["nodes"] == ["hub2"]


def test_killed_server_is_not_running_its_file_stale_and_prune_removes_it(
    playbook, hub2, juser1_on_hub2, tmp_path
):
    pid = juser1_on_hub2
    hub2.run_test("systemctl kill -s KILL jupyter-juser1-singleuser.service")
    time.sleep(2)
    stale = f"jpserver-{pid}.json"
    assert hub2.file(f"{RUNTIME}/{stale}").exists, "SIGKILL leaves the runtime file behind"
    # where.yml asks the hub's API too, the authority for the servers it spawned: until the hub's
    # next poll of its spawner (Spawner.poll_interval, 30 s) it still calls the server ready, and
    # where.yml then answers "running" (as the front door would). Wait for the hub to notice.
    deadline = time.monotonic() + 120
    while hub_user(hub2, "juser1").get("servers", {}).get("") and time.monotonic() < deadline:
        time.sleep(2)
    assert not hub_user(hub2, "juser1").get("servers", {}).get(""), "the hub never noticed the dead server"
    result, data = where(playbook, "-e", "user=juser1", tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout[-3000:]
    assert "juser1: no running server" in result.stdout
    assert stale in result.stdout and "prune=true" in result.stdout
    assert data["state"] == "not_running" and stale in data["stale"]
    pruned = playbook.run("where.yml", "-e", "user=juser1", "-e", "prune=true")
    assert stale in pruned.stdout
    assert not hub2.file(f"{RUNTIME}/{stale}").exists


def test_reverse_question_lists_users_on_a_node(playbook, juser1_on_hub2):
    result = playbook.run("where.yml", "-e", "node=hub2")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "juser1" in result.stdout


@pytest.mark.parametrize("bad", ["../etc", "juser1;id", "*", "a b", "x" * 40])
def test_bad_names_stop_at_once_touching_no_host(playbook, bad):
    result = playbook.run("where.yml", "-e", json.dumps({"user": bad}))
    assert result.returncode == 2
    assert "hub1" not in result.stdout.split("PLAY RECAP")[-1]


def test_without_a_user_it_shows_the_usage(playbook):
    result = playbook.run("where.yml")
    assert result.returncode == 2
    assert "give either -e user=NAME or -e node=HUB" in result.stdout


@pytest.fixture
def hub1_paused():
    subprocess.run(["podman", "pause", "hub1"], check=True)
    yield
    subprocess.run(["podman", "unpause", "hub1"], check=True)


def test_a_silent_hub_makes_an_unknown_answer_but_a_server_elsewhere_is_found(
    playbook, juser1_on_hub2, hub1_paused, tmp_path
):
    result, data = where(playbook, "-e", "user=juser2", tmp_path=tmp_path)
    assert result.returncode == 4, result.stdout[-3000:]
    assert "juser2: UNKNOWN - hub1 did not answer" in result.stdout
    assert data["state"] == "unknown" and "hub1" in data["unanswered"]
    (tmp_path / "where.json").unlink()
    found, data = where(playbook, "-e", "user=juser1", tmp_path=tmp_path)
    assert found.returncode == 0, found.stdout[-3000:]
    assert "juser1: running on hub2" in found.stdout
