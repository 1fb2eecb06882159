"""Issue 16 on the cluster: a typo at where.yml, answers that read as answers, homes that differ
between hosts or are links, and named servers refused before anything changes."""

from __future__ import annotations

import json

import pytest
from conftest import frontdoor_login, login_and_spawn, recap, stop_server

ANSWERS = "multijhub.cluster.answers"


def last_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


def test_a_typo_at_where_yml_is_no_such_user_on_every_hub(playbook, tmp_path):
    out = tmp_path / "where.json"
    result = playbook.run("where.yml", "-e", "user=juser9", "-e", f"where_json={out}", callback=ANSWERS)
    assert result.returncode == 2, result.stdout[-3000:]
    assert last_line(result.stdout) == "no such user juser9 on hub1, hub2"
    # No red blocks: the hubs answered, and the exit status task is silent.
    assert "FAILED!" not in result.stdout and "UNREACHABLE!" not in result.stdout
    assert "[ERROR]" not in result.stdout
    assert json.loads(out.read_text())["state"] == "no_such_user"


RUNTIME = "/home/juser2/.local/share/jupyter/runtime"


def test_clock_skew_never_makes_a_live_server_stale(playbook, home, hub1, hub2, tmp_path):
    """The home host's clock 10 s behind hub2's: the file's mtime is before the process start."""
    for hub in (hub1, hub2):
        stop_server(hub, "juser2")
    login_and_spawn(hub2, "juser2")
    try:
        out = tmp_path / "where.json"
        playbook.run("where.yml", "-e", "user=juser2", "-e", f"where_json={out}")
        decision = json.loads(out.read_text())
        assert decision["state"] == "running", decision
        server = next(s for s in decision["servers"]["hub2"] if s["source"] == "runtime")
        name, start = server["file"], server["process"]["start_time"]
        home.run_expect([0], f"touch -m -d @{start - 10:.0f} {RUNTIME}/{name}")

        result = playbook.run(
            "where.yml", "-e", "user=juser2", "-e", "prune=true", "-e", f"where_json={out}", callback=ANSWERS
        )
        assert result.returncode == 0, result.stdout[-3000:]
        decision = json.loads(out.read_text())
        assert (decision["state"], decision["nodes"], decision["stale"]) == ("running", ["hub2"], [])
        assert home.file(f"{RUNTIME}/{name}").exists, "a live server's file was pruned"
        assert last_line(result.stdout).startswith("juser2: running on hub2")
        assert "the clocks of hub2 and the host holding the homes differ" in result.stdout
    finally:
        stop_server(hub2, "juser2")


def test_jupyter_server_list_on_another_hub_does_not_hide_a_server(playbook, hub1, hub2, home):
    """A user's own `jupyter server list` on hub1 deletes hub2's live runtime file (shared home)."""
    for hub in (hub1, hub2):
        stop_server(hub, "juser2")
    login_and_spawn(hub2, "juser2")
    try:
        files = home.run_test(f"ls {RUNTIME}").stdout.split()
        assert any(name.startswith("jpserver-") for name in files), files
        hub1.run_test("runuser -u juser2 -- /opt/multijhub/jupyterhub/bin/jupyter server list")
        files = home.run_test(f"ls {RUNTIME}").stdout.split()
        assert not any(name.startswith("jpserver-") for name in files), f"the fault did not happen: {files}"

        result = playbook.run("where.yml", "-e", "user=juser2", callback=ANSWERS)
        assert result.returncode == 0, result.stdout[-3000:]
        assert last_line(result.stdout).startswith("juser2: running on hub2 (pid "), result.stdout[-2000:]
        assert "no runtime file" in last_line(result.stdout)
    finally:
        stop_server(hub2, "juser2")


def test_chmod_700_on_a_home_does_not_lock_the_user_out_of_the_front_door(playbook, home, hub1, hub2):
    for hub in (hub1, hub2):
        stop_server(hub, "juser2")
    login_and_spawn(hub2, "juser2")
    home.run_test("chmod 700 /home/juser2")
    try:
        # The fault is real: the front door's probe account can no longer list the directory.
        denied = hub2.run(f"runuser -u multijhub-probe -- ls {RUNTIME}")
        assert denied.rc != 0 and "Permission denied" in denied.stderr
        _, landing = frontdoor_login("juser2")
        assert landing.status == 200 and landing.hub == "hub2", (landing.status, landing.response.text[:500])
        stop_server(hub2, "juser2")
        _, landing = frontdoor_login("juser2")  # no server: placed, not "cannot tell" (503)
        assert landing.status == 200 and landing.hub in ("hub1", "hub2"), landing.response.text[:500]
    finally:
        stop_server(hub2, "juser2")
        repair = playbook.run(
            "molecule/default/tests/playbooks/apply_role.yml",
            "-e",
            json.dumps({"target": "home", "role": "runtime_acl"}),
        )
        assert repair.returncode == 0, repair.stdout[-3000:]
    assert hub2.run(f"runuser -u multijhub-probe -- ls {RUNTIME}").rc == 0


USERS = ["juser1", "juser2", "jadmin"]


@pytest.fixture
def odd_homes(cluster):
    """juser4: home a link on the home host; juser5: another home path on hub2 (same UID)."""
    for name, host in cluster.items():
        home5 = "/srv/juser5" if name == "hub2" else "/home/juser5"
        host.run_expect([0], "useradd -M -u 2094 -d /home/juser4 -s /bin/bash juser4")
        host.run_expect([0], f"useradd -M -u 2095 -d {home5} -s /bin/bash juser5")
    cluster["home1"].run_expect(
        [0], "mkdir -p /home/big/juser4 /home/juser5 && ln -s big/juser4 /home/juser4"
    )
    yield
    for host in cluster.values():
        host.run("userdel juser4; userdel juser5")
    cluster["home1"].run("rm -rf /home/juser4 /home/big /home/juser5")


def test_preflight_names_homes_that_differ_or_are_links(playbook, odd_homes):
    args = {
        "target": "home:hubs:frontdoor",
        "role": "common",
        "multijhub_users": [*USERS, "juser4", "juser5"],
    }
    result = playbook.run("molecule/default/tests/playbooks/apply_role.yml", "-e", json.dumps(args))
    assert result.returncode != 0
    out = result.stdout
    assert "Preflight failed, nothing was changed" in out, out[-3000:]
    assert "user juser4: home /home/juser4 on home1 is a symbolic link to /home/big/juser4" in out
    assert "user juser5 has a different home directory across hosts:" in out
    assert "hub2=/srv/juser5" in out and "hub1=/home/juser5" in out
    assert all(stats["changed"] == 0 for stats in recap(out).values())


def test_named_servers_are_refused_before_anything_changes(playbook):
    args = {
        "target": "hubs",
        "role": "jupyterhub",
        "jupyterhub_extra_config": "c.JupyterHub.allow_named_servers = True\n",
    }
    result = playbook.run("molecule/default/tests/playbooks/apply_role.yml", "-e", json.dumps(args))
    assert result.returncode != 0
    assert "turns on c.JupyterHub.allow_named_servers, which multijhub does not support" in result.stdout
    assert all(stats["changed"] == 0 for stats in recap(result.stdout).values())
