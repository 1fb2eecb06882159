"""Issue 3: the NFS export of /home and the service group's ACL grants."""

from __future__ import annotations

import json
import time

import pytest
from conftest import recap

RUNTIME = "/home/juser1/.local/share/jupyter/runtime"
NFS = "nfs://home1/home"


def as_user(host, user, command):
    return host.run(f"runuser -u {user} -- sh -c {json.dumps(command)}")


@pytest.fixture(scope="module")
def svcprobe(frontdoor):
    """A member of the service group on the front door host (the front door's own user is one too)."""
    frontdoor.run("useradd --system --no-create-home --gid flask_users --uid 2990 svcprobe")
    yield "svcprobe"
    frontdoor.run("userdel svcprobe")


# --- NFS over the real protocol (NFS-Ganesha on home1, libnfs clients) ---------------------------------


@pytest.fixture(scope="module")
def nfs_file(home):
    home.run_test("install -o juser1 -g juser1 -m 0600 /dev/null /home/juser1/nfs-probe.txt")
    home.run_test("echo served-over-nfs > /home/juser1/nfs-probe.txt")
    yield "juser1/nfs-probe.txt"
    home.run("rm -f /home/juser1/nfs-probe.txt")


def test_nfs_export_serves_a_file_to_a_hub(hub1, nfs_file):
    out = hub1.run(f"timeout 20 nfs-cat '{NFS}/{nfs_file}?version=4&uid=2001&gid=2001'")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "served-over-nfs"


def test_nfs_export_lists_for_the_front_door(frontdoor):
    out = frontdoor.run(f"timeout 20 nfs-ls '{NFS}?version=4&uid=2001&gid=2001'")
    assert out.rc == 0, out.stderr
    assert "juser1" in out.stdout


def test_nfs_export_refuses_a_host_outside_the_cluster(outsider, nfs_file):
    # Dropped by the home host's firewall and refused by the export: either way, nothing is served.
    out = outsider.run(f"timeout 20 nfs-cat '{NFS}/{nfs_file}?version=4&uid=2001&gid=2001'")
    assert out.rc != 0
    assert "served-over-nfs" not in out.stdout


def test_nfs_export_refuses_a_client_address_not_in_its_list(home, nfs_file):
    # The home host itself is not an NFS client of the cluster: its own address is not in the
    # export's list, and its firewall lets its own traffic through, so this is the export refusing.
    out = home.run(f"timeout 20 nfs-cat '{NFS}/{nfs_file}?version=4&uid=2001&gid=2001'")
    assert out.rc != 0
    assert "served-over-nfs" not in out.stdout
    # The same request from a listed client is served (see the test above): the list decides.


def test_nfs_root_is_squashed(hub1, nfs_file):
    out = hub1.run(f"timeout 20 nfs-cat '{NFS}/{nfs_file}?version=4&uid=0&gid=0'")
    assert out.rc != 0, "root on a client read a 0600 file of juser1: root is not squashed"
    assert "served-over-nfs" not in out.stdout


def test_ganesha_config_exports_to_cluster_hosts_only(home, hub1, hub2, frontdoor, outsider):
    conf = home.file("/etc/ganesha/ganesha.conf").content_string
    for host in (hub1, hub2, frontdoor):
        assert host.interface("eth0").addresses[0] in conf
    assert outsider.interface("eth0").addresses[0] not in conf
    assert "Squash = Root_Squash;" in conf


# --- ACLs: list, never read ---------------------------------------------------------------------------


def test_service_group_lists_the_runtime_dir_but_nothing_else(frontdoor, svcprobe):
    assert as_user(frontdoor, svcprobe, f"ls {RUNTIME}").rc == 0
    assert as_user(frontdoor, svcprobe, "ls /home/juser1/.local/share/jupyter").rc != 0
    assert as_user(frontdoor, svcprobe, "ls /home/juser1/.local").rc != 0


def test_second_user_cannot_list_first_users_runtime_dir(hub1):
    out = as_user(hub1, "juser2", f"ls {RUNTIME}")
    assert out.rc != 0
    assert "Permission denied" in out.stderr


def test_runtime_dir_is_private_with_the_group_grant(home):
    acl = home.run_test(f"getfacl -p {RUNTIME}").stdout
    for entry in (
        "user::rwx",
        "group::---",
        "group:flask_users:r-x",
        "other::---",
        "default:group::---",
        "default:other::---",
        "default:group:flask_users:---",
    ):
        assert entry in acl.splitlines(), (entry, acl)
    assert home.file(RUNTIME).user == "juser1"


@pytest.fixture(scope="module")
def hand_started_server(hub1):
    """A Jupyter server started by hand as juser1 with umask 022, writing its -open.html on purpose."""
    jupyter = "/opt/multijhub/jupyterhub/bin/jupyter-server"
    hub1.run("pkill -u juser1 -f 'jupyter-server --port=8190' || true")
    hub1.run_test(
        "runuser -u juser1 -- sh -c 'umask 022; cd /home/juser1; nohup "
        f"{jupyter} --port=8190 --no-browser --ServerApp.no_browser_open_file=False "
        ">/tmp/juser1-server.log 2>&1 &'"
    )
    for _ in range(60):
        pid = hub1.run("pgrep -u juser1 -f 'jupyter-server --port=8190'").stdout.split()
        if pid and hub1.file(f"{RUNTIME}/jpserver-{pid[0]}.json").exists:
            break
        time.sleep(1)
    else:
        pytest.fail(
            "the hand-started Jupyter server wrote no runtime file: "
            + hub1.run("cat /tmp/juser1-server.log").stdout[-2000:]
        )
    yield int(pid[0])
    hub1.run(f"kill {pid[0]}")


def test_real_server_writes_private_runtime_files(hub1, hand_started_server):
    pid = hand_started_server
    info = hub1.file(f"{RUNTIME}/jpserver-{pid}.json")
    assert info.mode == 0o600
    html = hub1.file(f"{RUNTIME}/jpserver-{pid}-open.html")
    assert html.exists, "the server was asked to write its -open.html"
    # umask 022 would have made it 0644: the default ACL keeps it private.
    assert html.mode & 0o077 == 0, oct(html.mode)


def test_service_group_sees_the_name_but_cannot_read_the_token(
    frontdoor, hub2, svcprobe, hand_started_server
):
    pid = hand_started_server
    listing = as_user(frontdoor, svcprobe, f"ls {RUNTIME}")
    assert f"jpserver-{pid}.json" in listing.stdout
    for name in (f"jpserver-{pid}.json", f"jpserver-{pid}-open.html"):
        out = as_user(frontdoor, svcprobe, f"cat {RUNTIME}/{name}")
        assert out.rc != 0 and "Permission denied" in out.stderr, (name, out.stdout[:80])
    # The other hub sees the file name too (shared home).
    assert hub2.file(f"{RUNTIME}/jpserver-{pid}.json").exists


def test_system_config_turns_off_the_open_html(hub1):
    conf = hub1.file("/etc/jupyter/jupyter_server_config.py").content_string
    assert "c.ServerApp.no_browser_open_file = True" in conf


# --- Check mode, repair, users added and removed ----------------------------------------------------


def test_check_mode_reports_a_lost_grant_without_changing_it_and_a_run_repairs_it(home, playbook):
    runtime2 = "/home/juser2/.local/share/jupyter/runtime"
    home.run_test(f"setfacl -x g:flask_users {runtime2}")
    check = playbook.run("site.yml", "--check", "--diff", "--tags", "runtime_acl")
    assert check.returncode == 0, check.stdout[-3000:]
    assert recap(check.stdout)["home1"]["changed"] > 0
    assert "group:flask_users:r-x" not in home.run(f"getfacl -p {runtime2}").stdout
    fix = playbook.run("site.yml", "--tags", "runtime_acl")
    assert fix.returncode == 0, fix.stdout[-3000:]
    assert "group:flask_users:r-x" in home.run(f"getfacl -p {runtime2}").stdout
    again = playbook.run("site.yml", "--tags", "runtime_acl")
    assert recap(again.stdout)["home1"]["changed"] == 0, again.stdout[-3000:]


def test_a_user_added_later_gets_the_grants_and_loses_them_when_removed(home, playbook):
    home.run_test("useradd --create-home --uid 2004 --user-group juser3")
    try:
        users = '{"multijhub_users": ["juser1", "juser2", "juser3"]}'
        added = playbook.run("site.yml", "--tags", "runtime_acl", "-e", users)
        assert added.returncode == 0, added.stdout[-3000:]
        acl = home.run_test("getfacl -p /home/juser3/.local/share/jupyter/runtime").stdout
        assert "group:flask_users:r-x" in acl
        removed = playbook.run("site.yml", "--tags", "runtime_acl")
        assert removed.returncode == 0, removed.stdout[-3000:]
        for path in ("/home/juser3", "/home/juser3/.local/share/jupyter/runtime"):
            assert "flask_users" not in home.run_test(f"getfacl -p {path}").stdout, path
        assert "flask_users" in home.run_test(f"getfacl -p {RUNTIME}").stdout
    finally:
        home.run("userdel -r juser3")


# --- Bad input: a clear error, nothing changed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "extra", "message"),
    [
        ("runtime_acl", {"runtime_acl_users": ["juser1", "nosuchuser"]}, "unknown users: ['nosuchuser']"),
        ("runtime_acl", {"runtime_acl_home_root": "/etc/hostname"}, "is not a directory"),
        (
            "nfs_server",
            {"nfs_server_client_groups": [], "nfs_server_extra_clients": []},
            "the client list must not be empty",
        ),
        ("nfs_server", {"nfs_server_export_path": "/etc/hostname"}, "is not a directory"),
    ],
)
def test_bad_input_fails_early_and_changes_nothing(playbook, role, extra, message):
    extra = {"target": "home", "role": role, **extra}
    result = playbook.run("molecule/default/tests/playbooks/apply_role.yml", "-e", json.dumps(extra))
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert recap(result.stdout)["home1"]["changed"] == 0
