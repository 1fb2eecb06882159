"""Issue 2: the cluster itself and the common role's preflight."""

from __future__ import annotations

import pytest
from conftest import recap

CLUSTER = ["home1", "hub1", "hub2", "frontdoor1"]


@pytest.mark.parametrize("name", CLUSTER)
def test_every_host_boots_systemd_and_runs_sshd(cluster, name):
    host = cluster[name]
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    assert host.service("ssh").is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening


@pytest.mark.parametrize("name", ["hub1", "hub2"])
def test_hubs_have_a_private_cgroup_namespace(cluster, name):
    # In a private namespace the container's systemd sees its own cgroup tree as the root (paths like
    # /init.scope, not /libpod_parent/libpod-...): it can then enforce MemoryMax=.
    lines = cluster[name].file("/proc/1/cgroup").content_string.splitlines()
    memory = [line for line in lines if ":memory:" in line]
    assert memory, lines
    assert not any("libpod" in line for line in lines), lines


@pytest.mark.parametrize("name", CLUSTER)
def test_users_and_service_group_are_the_same_everywhere(cluster, name):
    host = cluster[name]
    assert host.user("juser1").uid == 2001
    assert host.user("juser2").uid == 2002
    assert host.group("flask_users").gid == 1990


def test_home_is_shared(home, hub1, frontdoor):
    home.run_test("echo shared-$(hostname) > /home/juser1/.shared-probe")
    assert hub1.file("/home/juser1/.shared-probe").content_string.strip() == "shared-home1"
    assert frontdoor.file("/home/juser1/.shared-probe").exists
    home.run("rm -f /home/juser1/.shared-probe")


def test_preflight_stops_on_a_uid_mismatch_and_changes_nothing(hub2, playbook, restore_uid):
    hub2.run_test("usermod -u 2902 juser2")
    result = playbook.run("site.yml")
    assert result.returncode != 0
    out = result.stdout
    assert "Preflight failed, nothing was changed" in out
    assert "user juser2 has different UID:GID across hosts" in out
    assert "hub2=2902:2002" in out
    assert all(stats["changed"] == 0 for stats in recap(out).values()), recap(out)


def test_preflight_names_an_empty_inventory_group(playbook):
    result = playbook.run(
        "site.yml", "-e", '{"common_required_groups": ["home", "hubs", "frontdoor", "nosuchgroup"]}'
    )
    assert result.returncode != 0
    assert "Inventory group 'nosuchgroup' is empty or missing" in result.stdout
    assert all(stats["changed"] == 0 for stats in recap(result.stdout).values())
