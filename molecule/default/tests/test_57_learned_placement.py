"""Issue 19 on the cluster: a new server is placed by learned sizes, not by the free memory now.

The hubs are containers that see the host's /proc/meminfo, so each node's memory is what its own
cgroup allows (the probe reads the limit at the root of the node's cgroup namespace): the test
gives each hub a real limit, a few hundred MiB above what it uses, for the one placement.

The learned sizes come from real sessions: a process in the user's server needs more than the
server's memory limit (200M here) until the kernel kills it, so the unit's peak is the limit; a
front door resolution records it (the probe reports every unit). juser1 has two such sessions on
hub1, its previous node. Then juser2 and jadmin run servers on hub1 that peaked at their limit
and now use about half of it (the rest is promised to them), and juser1 logs in at the front door.

hub1 has the most free memory now and is juser1's previous node: a front door that counted servers
at their memory now (or juser1 at mem_per_server without the growth still due on hub1) keeps
juser1 there. With learned sizes, hub1's free memory minus what its running servers are still
expected to take is less than juser1's size, and hub2 has room for it: juser1 goes to hub2.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Iterator

import pytest
from conftest import frontdoor_login, hub_user, login_and_spawn, stop_server

MiB = 1024**2
UNIT = "jupyter-{user}-singleuser.service"
NODE_MEMORY = "/sys/fs/cgroup/memory"  # the root of the hub container's own hierarchy (cgroup v1)


def unit_cgroup(hub, user: str) -> str:
    """The unit's memory cgroup directory on ``hub`` (v1 or v2)."""
    path = hub.run_test(f"systemctl show -p ControlGroup --value {UNIT.format(user=user)}").stdout.strip()
    for candidate in (f"/sys/fs/cgroup/memory{path}", f"/sys/fs/cgroup{path}"):
        if hub.file(f"{candidate}/cgroup.procs").exists:
            return candidate
    raise AssertionError(f"no memory cgroup for {user}'s unit on {hub.backend.hostname}: {path}")


def read_int(hub, path: str) -> int:
    return int(hub.run_test(f"cat {path}").stdout.split()[0])


def unit_limit(hub, user: str) -> int:
    return int(hub.run_test(f"systemctl show -p MemoryMax --value {UNIT.format(user=user)}").stdout.strip())


def unit_usage(hub, user: str) -> int:
    cgroup = unit_cgroup(hub, user)
    name = "memory.usage_in_bytes" if hub.file(f"{cgroup}/memory.usage_in_bytes").exists else "memory.current"
    return read_int(hub, f"{cgroup}/{name}")


def unit_peak(hub, user: str) -> int:
    cgroup = unit_cgroup(hub, user)
    name = (
        "memory.max_usage_in_bytes"
        if hub.file(f"{cgroup}/memory.max_usage_in_bytes").exists
        else "memory.peak"
    )
    return read_int(hub, f"{cgroup}/{name}")


def peak_near_the_limit(hub, user: str) -> int:
    """Run a process in ``user``'s unit that takes it to about 20 MiB under its memory limit, and
    ends (over the limit the OOM killer would kill it and systemd stop the unit: its peak would
    never be reported); the unit's peak after it, as the kernel keeps it."""
    room = unit_limit(hub, user) - unit_usage(hub, user) - 32 * MiB
    assert room > 16 * MiB, (user, room)
    hog = f"python3 -c 'b = bytearray({room}); b[::4096] = bytes(len(b[::4096])); print(\"done\")'"
    procs = f"{unit_cgroup(hub, user)}/cgroup.procs"
    ran = hub.run("sh -c " + shlex.quote(f"echo $$ > {procs}; exec runuser -u {user} -- {hog}"))
    assert ran.rc == 0 and "done" in ran.stdout, (ran.rc, ran.stdout, ran.stderr)
    return unit_peak(hub, user)


def node_used(hub) -> int:
    """What the hub container uses, as the probe counts it: usage minus inactive file cache."""
    usage = read_int(hub, f"{NODE_MEMORY}/memory.usage_in_bytes")
    stat = hub.run_test(f"cat {NODE_MEMORY}/memory.stat").stdout
    inactive = next(
        int(line.split()[1]) for line in stat.splitlines() if line.startswith("total_inactive_file ")
    )
    return usage - inactive


def set_node_limit(hub, limit: int | None) -> None:
    """Give the hub container (its cgroup namespace's root) a memory limit; None removes it."""
    hub.run_test(f"echo {-1 if limit is None else limit} > {NODE_MEMORY}/memory.limit_in_bytes")


def spawn_all(pairs: list[tuple[object, str]], then=None) -> dict[str, int]:
    """Start these servers at once (the scenario's culler stops a server idle for 45 s), each
    followed by ``then(hub, user)``; its results by user."""
    errors: list[BaseException] = []
    results: dict[str, int] = {}

    def spawn(hub, user: str) -> None:
        try:
            login_and_spawn(hub, user)
            if then is not None:
                results[user] = then(hub, user)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spawn, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def servers_stopped(hub1, hub2) -> Iterator[None]:
    """Stop every server this test starts, and take the limits off the hubs, whatever happens."""
    yield
    for hub in (hub1, hub2):
        hub.run(f"echo -1 > {NODE_MEMORY}/memory.limit_in_bytes")
        for user in ("juser1", "juser2", "jadmin"):
            if hub_user(hub, user).get("servers", {}).get(""):
                stop_server(hub, user)


def test_a_user_whose_last_session_peaked_high_goes_where_there_is_room_for_it(hub1, hub2, servers_stopped):
    for hub in (hub1, hub2):
        for user in ("juser1", "juser2", "jadmin"):
            if hub_user(hub, user).get("servers", {}).get(""):
                stop_server(hub, user)
    # 1. juser1's sessions peak near their limit. Its size is the 0.9 quantile of its last 10
    # sessions, at least the second largest: two such sessions, the last on hub1 (its previous node;
    # found running on another node than before, any recent placement of juser1 is over).
    limit = 0
    high = []
    for hub, name in ((hub2, "hub2"), (hub1, "hub1")):
        high.append(spawn_all([(hub, "juser1")], then=peak_near_the_limit)["juser1"])
        limit = unit_limit(hub, "juser1")
        # A resolution probes every hub: the front door records the unit's peak, and where it runs.
        _, seen = frontdoor_login("juser1")
        assert seen.hub == name, (seen.status, seen.response.text[:500])
        stop_server(hub, "juser1")
    size = min(high)  # juser1's learned size is at least this (at most the limit)
    assert size >= limit - 48 * MiB, (limit, high)

    # 2. juser2's and jadmin's servers on hub1 have peaked near their limit in this session and use
    # less now: the front door counts each at least at its peak so far, the rest is promised.
    peaks = spawn_all([(hub1, "juser2"), (hub1, "jadmin")], then=peak_near_the_limit)
    _, seen = frontdoor_login("juser2")  # a running server is found where it runs
    assert seen.hub == "hub1", (seen.status, seen.response.text[:500])
    promised = sum(peaks[user] - unit_usage(hub1, user) for user in ("juser2", "jadmin"))
    assert promised >= 90 * MiB, (peaks, promised)  # what they use once the big process ended
    margin = promised // 3
    # hub1: the most free memory now, but not enough for juser1 once its servers' growth is counted;
    # hub2: less free memory now, room for juser1's learned size (or the most left over: size - margin).
    free = {"hub1": size + 2 * margin, "hub2": size + margin}
    assert free["hub1"] >= limit  # a front door counting juser1 at mem_per_server (the limit) keeps hub1
    set_node_limit(hub1, node_used(hub1) + free["hub1"])
    set_node_limit(hub2, node_used(hub2) + free["hub2"])

    _, placed = frontdoor_login("juser1")

    assert placed.status == 200 and placed.proof, (placed.status, placed.response.text[:500])
    assert placed.hub == "hub2", (
        f"juser1 (learned size at least {size / MiB:.0f} MiB, previous node hub1) was placed on "
        f"{placed.hub}: hub1 had {free['hub1'] / MiB:.0f} MiB free with {promised / MiB:.0f} MiB "
        f"promised to its running servers, hub2 {free['hub2'] / MiB:.0f} MiB"
    )
