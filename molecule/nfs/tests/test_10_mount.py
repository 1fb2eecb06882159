"""The export and the mounts, as the roles left them with their defaults: the kernel NFS server
on the home host, an NFSv4.2 mount on the hub and the front door."""

from __future__ import annotations

import pytest


def test_kernel_server_exports_home_to_the_cluster_only(home) -> None:
    assert home.service("nfs-server").is_enabled
    assert home.service("nfs-server").is_running
    exports = home.run_test("exportfs -v").stdout
    clients = sorted(
        line.split()[-1].split("(")[0] for line in exports.splitlines() if line.startswith("/home")
    )
    assert clients == ["10.77.1.2", "10.77.2.2"], exports
    assert "root_squash" in exports and "no_root_squash" not in exports


@pytest.mark.parametrize("name", ["nfs-hub", "nfs-front"])
def test_mounted_with_the_roles_options(request, name: str) -> None:
    host = request.getfixturevalue({"nfs-hub": "hub", "nfs-front": "front"}[name])
    fstype, source, options = host.run_test("findmnt -n -o FSTYPE,SOURCE,OPTIONS /home").stdout.split()
    opts = set(options.split(","))
    assert (fstype, source) == ("nfs4", "nfs-home:/home")
    # nfs_client's defaults: vers 4.2, hard, TCP, acdirmin 1, acdirmax 3.
    assert {"rw", "vers=4.2", "hard", "proto=tcp", "acdirmin=1", "acdirmax=3"} <= opts, options
    fstab = host.file("/etc/fstab").content_string
    assert "nfs-home:/home /home nfs rw,hard,proto=tcp,vers=4.2,acdirmin=1,acdirmax=3,_netdev" in fstab


def test_a_host_outside_the_cluster_list_is_refused(hub) -> None:
    """Another address on the hub's private link (its own network namespace) may not mount."""
    link = hub.run_test("ip -o -4 addr show to 10.77.1.2/32").stdout.split()[1]
    hub.run("ip netns del multijhub-outsider")
    try:
        hub.run_test("ip netns add multijhub-outsider")
        hub.run_test(f"ip link add outsider0 link {link} type macvlan mode bridge")
        hub.run_test("ip link set outsider0 netns multijhub-outsider")
        hub.run_test("ip -n multijhub-outsider addr add 10.77.1.9/24 dev outsider0")
        hub.run_test("ip -n multijhub-outsider link set outsider0 up")
        hub.run_test("ip -n multijhub-outsider link set lo up")
        hub.run_test("mkdir -p /mnt/outsider")
        # The server answers from there, and refuses (a path that does not work would time out).
        refused = hub.run(
            "ip netns exec multijhub-outsider timeout 60 mount -t nfs -o vers=4.2 10.77.1.1:/home /mnt/outsider"
        )
        assert refused.rc == 32, refused
        assert "access denied by server" in refused.stderr
    finally:
        hub.run("umount /mnt/outsider")
        hub.run("ip netns del multijhub-outsider")


def test_the_server_itself_is_not_a_client(home) -> None:
    home.run_test("mkdir -p /mnt/self")
    refused = home.run("timeout 60 mount -t nfs -o vers=4.2 10.77.1.1:/home /mnt/self")
    home.run("umount /mnt/self")
    assert refused.rc == 32, refused
    assert "access denied by server" in refused.stderr


@pytest.mark.parametrize("name", ["nfs-hub", "nfs-front"])
def test_root_on_a_client_is_squashed(request, name: str) -> None:
    host = request.getfixturevalue({"nfs-hub": "hub", "nfs-front": "front"}[name])
    denied = host.run("touch /home/made-by-client-root")
    assert denied.rc != 0 and "Permission denied" in denied.stderr, denied
    # The runtime directory (0700 + ACL) is closed to root on a client as well.
    listing = host.run("ls /home/juser1/.local/share/jupyter/runtime")
    assert listing.rc != 0 and "Permission denied" in listing.stderr, listing
