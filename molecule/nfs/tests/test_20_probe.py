"""The front door's probe account, as the redirector role creates it on the hubs, through the
real NFS mount: it lists a user's runtime directory and reads nothing in it; another user cannot
list it. With the distribution's NFS server configuration plus only the nfs_server role's drop-in."""

from __future__ import annotations

import json
import shlex

import pytest

RUNTIME = "/home/juser1/.local/share/jupyter/runtime"
PROBE = "multijhub-probe"
# The forced command of roles/redirector/templates/authorized_keys.j2, for node nfs-hub.
PROBE_COMMAND = "/opt/multijhub/jupyterhub/bin/python -m multijhub.core.probe --node nfs-hub"


def as_user(user: str, command: str) -> str:
    return f"runuser -u {user} -- sh -c {shlex.quote(command)}"


@pytest.fixture(scope="module")
def runtime_files(front) -> list[str]:
    """Files made by juser1 on the front door (another client than the hub), umask 022."""
    names = ["jpserver-4242.json", "jpserver-4242-open.html", "notes.txt"]
    for name in names:
        front.run_test(as_user("juser1", f"umask 022; echo secret-token > {RUNTIME}/{name}"))
    return names


def drop_caches(host) -> None:
    """Forget what the client cached (a refused access stays cached until then)."""
    host.run_test("sync; echo 3 > /proc/sys/vm/drop_caches")


def test_the_probe_account_is_the_roles(hub) -> None:
    entry = hub.user(PROBE)
    assert entry.exists and entry.uid < 1000  # a system account, with whatever UID the hub gave it
    assert "flask_users" in entry.groups
    assert hub.group("flask_users").gid == 1990
    assert entry.home == "/var/lib/multijhub-probe"


def test_the_probe_account_does_not_exist_on_the_home_host(home) -> None:
    """The design: the server is told the groups by the client (manage-gids off)."""
    assert not home.user(PROBE).exists


def test_the_probe_lists_the_runtime_directory_and_reads_nothing(hub, runtime_files) -> None:
    drop_caches(hub)
    listing = hub.run_test(as_user(PROBE, f"ls -1 {RUNTIME}")).stdout.split()
    assert set(runtime_files) <= set(listing)
    for name in runtime_files:
        read = hub.run(as_user(PROBE, f"cat {RUNTIME}/{name}"))
        assert read.rc != 0 and "Permission denied" in read.stderr, (name, read)
        assert "secret-token" not in read.stdout


def test_another_user_cannot_list_the_runtime_directory(hub, runtime_files) -> None:
    denied = hub.run(as_user("juser2", f"ls {RUNTIME}"))
    assert denied.rc != 0 and "Permission denied" in denied.stderr, denied


def test_the_probe_command_answers_through_the_mount(hub, runtime_files) -> None:
    """As sshd runs the forced command: the request in SSH_ORIGINAL_COMMAND, --node from the key."""
    result = hub.run(as_user(PROBE, f"SSH_ORIGINAL_COMMAND=juser1 {PROBE_COMMAND}"))
    assert result.rc == 0, result
    report = json.loads(result.stdout)
    assert report["node"] == "nfs-hub" and report["user"] == "juser1"
    assert report["runtime_dir"] == RUNTIME
    files = {ev["file"].rsplit("/", 1)[-1]: ev for ev in report["evidence"]}
    assert "jpserver-4242.json" in files, report
    # No process 4242 of juser1's on the hub.
    assert files["jpserver-4242.json"]["verdict"] == "not-here"


def test_distribution_nfs_conf_is_as_installed(home) -> None:
    """/etc/nfs.conf is the package's (dpkg verifies it), and it sets manage-gids=y: only the role's
    drop-in turns it off."""
    assert home.run_test("dpkg --verify nfs-common nfs-kernel-server").stdout == ""
    assert home.run_test("sed -n '/^\\[mountd\\]/,/^\\[/p' /etc/nfs.conf").stdout.count("manage-gids=y") == 1
    assert home.run_test("nfsconf --get mountd manage-gids").stdout.strip() == "n"
    assert home.file("/etc/nfs.conf.d/multijhub.conf").contains("^manage-gids = n$")


def test_without_the_roles_drop_in_the_probe_is_refused(home, hub, runtime_files) -> None:
    """The fault the drop-in fixes: with Debian's manage-gids=y the server looks the probe's UID up
    in its own user database, where the account does not exist, and refuses the listing."""
    conf = "/etc/nfs.conf.d/multijhub.conf"
    home.run_test(f"mv {conf} {conf}.off && systemctl restart nfs-mountd && exportfs -f")
    try:
        assert home.run_test("nfsconf --get mountd manage-gids").stdout.strip() == "y"
        drop_caches(hub)
        refused = hub.run(as_user(PROBE, f"ls {RUNTIME}"))
        assert refused.rc != 0 and "Permission denied" in refused.stderr, refused
    finally:
        home.run_test(f"mv {conf}.off {conf} && systemctl restart nfs-mountd && exportfs -f")
    drop_caches(hub)
    assert "jpserver-4242.json" in hub.run_test(as_user(PROBE, f"ls {RUNTIME}")).stdout
