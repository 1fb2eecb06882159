"""Issue 16 on the cluster: a typo at where.yml, answers that read as answers, homes that differ
between hosts or are links, named servers refused before anything changes, and one frozen node
that holds up only the users whose server may be on it."""

from __future__ import annotations

import html
import json
import re
import subprocess

import pytest
from conftest import FRONTDOOR, frontdoor_login, login_and_spawn, recap, stop_server, web

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
        # Reported: a metric per node, the admin page with the repair, and where.yml (run as root,
        # whose own listing works) names the grant the probe lacks.
        metrics = web().get(f"{FRONTDOOR}/metrics", timeout=10).text
        assert re.search(r'multijhub_frontdoor_broken_grants_total\{node="hub2"\} [1-9]', metrics), metrics[
            -2000:
        ]
        admin, _ = frontdoor_login("jadmin", visit=False)  # no placement of jadmin
        grants = admin.get(f"{FRONTDOOR}/admin", timeout=30).text.split('id="grants"', 1)[1]
        assert "<td>juser2</td><td>hub2</td>" in grants and "ansible-playbook site.yml --limit home" in grants
        where = playbook.run("where.yml", "-e", "user=juser2", callback=ANSWERS)
        assert where.returncode == 0, where.stdout[-3000:]
        assert "hub2: broken listing grant: the service group" in where.stdout, where.stdout[-3000:]
        assert "repair: ansible-playbook site.yml --limit home" in where.stdout
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


STORE = "/var/lib/multijhub/frontdoor/assignments.sqlite3"


def recent_nodes(frontdoor, user: str) -> set[str]:
    """The front door store's recent nodes of ``user`` (read-only)."""
    script = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
        " print(' '.join(r[0] for r in c.execute('SELECT node FROM user_nodes WHERE user = ?', (sys.argv[2],))))"
    )
    return set(frontdoor.run_test(f"python3 -c {json.dumps(script)} {STORE} {user}").stdout.split())


@pytest.fixture
def hub2_frozen(playbook):
    """hub2 frozen (podman pause: every process stopped, the address still there); then thawed and
    taken back (drain.yml -e undrain=true also clears a down mark)."""
    subprocess.run(["podman", "pause", "hub2"], check=True)
    try:
        yield
    finally:
        subprocess.run(["podman", "unpause", "hub2"], check=False)
        undrained = playbook.run("drain.yml", "-e", "node=hub2", "-e", "undrain=true")
        assert undrained.returncode == 0, undrained.stdout[-3000:]


@pytest.fixture
def juser2_on_hub2(hub1, hub2, frontdoor):
    """juser2's server runs on hub2, started at the hub itself; the front door has seen hub2 list it."""
    for hub in (hub1, hub2):
        stop_server(hub, "juser2")
        stop_server(hub, "jadmin")
    login_and_spawn(hub2, "juser2")
    try:
        _, found = frontdoor_login("juser2")
        assert found.hub == "hub2"
        yield
    finally:
        subprocess.run(["podman", "unpause", "hub2"], check=False)  # in case the test stopped frozen
        stop_server(hub2, "juser2")
        stop_server(hub1, "juser2")


def test_one_frozen_node_holds_up_only_the_users_who_may_have_a_server_there(
    playbook, frontdoor, juser2_on_hub2, hub2_frozen
):
    """Case 9: with hub2 frozen, jadmin (no server there) is placed on hub1 and the page says hub2
    was silent; juser2, whose server runs on hub2, is told "cannot tell" with a retry; after
    drain.yml -e down=true juser2 is placed on hub1 too, told that the server on hub2 is lost or
    cannot be reached. drain.yml says hub2 did not answer, with no made-up error, exit 0."""
    assert "hub2" in recent_nodes(frontdoor, "juser2")
    assert "hub2" not in recent_nodes(frontdoor, "jadmin"), "precondition: jadmin was placed on hub2 just now"

    _, landing = frontdoor_login("jadmin")
    assert landing.status == 200 and landing.hub == "hub1", (landing.status, landing.response.text[:800])
    assert "hub2 did not answer; you had no server there" in landing.response.text

    _, landing = frontdoor_login("juser2")
    assert landing.status == 503, (landing.status, landing.response.text[:800])
    assert "Cannot tell where your server is" in landing.response.text and "hub2" in landing.response.text
    assert "Try again" in landing.response.text and landing.response.headers.get("Retry-After")

    checked = playbook.run("drain.yml", "-e", "node=hub2", "-e", "down=true", "--check")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert recap(checked.stdout)["frontdoor1"]["changed"] == 1
    _, landing = frontdoor_login("juser2")
    assert landing.status == 503  # check mode changed nothing

    down = playbook.run("drain.yml", "-e", "node=hub2", "-e", "down=true")
    assert down.returncode == 0, down.stdout[-3000:]
    assert 'down ["hub2"]' in down.stdout
    assert "hub2: UNKNOWN - did not answer" in down.stdout
    assert "/dev/null" not in down.stdout and "fatal: [localhost]" not in down.stdout
    again = playbook.run("drain.yml", "-e", "node=hub2", "-e", "down=true")
    assert recap(again.stdout)["frontdoor1"]["changed"] == 0, again.stdout[-2000:]

    _, landing = frontdoor_login("juser2")
    assert landing.status == 200 and landing.hub == "hub1", (landing.status, landing.response.text[:800])
    page = html.unescape(landing.response.text)
    assert "hub2 is marked down by the operators: a server you had there is lost or cannot be reached" in page
    assert "A new server is started for you on hub1." in page
