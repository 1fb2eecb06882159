"""The SQLite assignment store and placement through the core's choose_node."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
from frontdoor_env import GiB
from multijhub_core.placement import NodeLoad
from multijhub_frontdoor.config import LimitsConfig
from multijhub_frontdoor.placing import effective_loads, place_user
from multijhub_frontdoor.store import AssignmentStore, PlacementContext, SqliteStore

LIMITS = LimitsConfig(mem_per_server=2 * GiB, pending_seconds=60, sticky_headroom=0.1)


def loads(**free_gib: float) -> list[NodeLoad]:
    return [NodeLoad(name, int(gib * GiB), 16 * GiB) for name, gib in sorted(free_gib.items())]


@pytest.fixture
def store(tmp_path) -> SqliteStore:
    return SqliteStore(str(tmp_path / "a.sqlite3"))


def test_is_an_assignment_store(store):
    def takes(s: AssignmentStore) -> AssignmentStore:
        return s

    assert takes(store) is store


def test_previous_and_record_running(store):
    assert store.previous_node("juser1") is None
    store.record_running("juser1", "hub1")
    assert store.previous_node("juser1") == "hub1"
    store.record_running("juser1", "hub2")
    assert store.previous_node("juser1") == "hub2"


def test_place_records_and_counts_pending(store):
    p = store.place("juser1", lambda ctx: "hub1", window=60, now=1000.0)
    assert p is not None and (p.node, p.reused) == ("hub1", False)
    store.place("juser2", lambda ctx: "hub1", window=60, now=1001.0)
    store.place("juser3", lambda ctx: "hub2", window=60, now=1002.0)
    assert store.pending_counts(window=60, now=1030.0) == {"hub1": 2, "hub2": 1}
    assert store.pending_counts(window=60, now=1030.0, exclude="juser1") == {"hub1": 1, "hub2": 1}
    assert store.pending_counts(window=60, now=1200.0) == {}


def test_context_offers_recent_placement_within_window(store):
    seen: list[PlacementContext] = []

    def chooser(node):
        def choose(ctx):
            seen.append(ctx)
            return node

        return choose

    store.place("juser1", chooser("hub1"), window=60, now=1000.0)
    again = store.place("juser1", chooser("hub1"), window=60, now=1010.0)
    assert again is not None and again.reused and again.placed_at == 1000.0
    assert (seen[1].previous, seen[1].recent) == ("hub1", "hub1")
    later = store.place("juser1", chooser("hub2"), window=60, now=2000.0)
    assert later is not None and not later.reused
    assert (seen[2].previous, seen[2].recent) == ("hub1", None)
    assert [(u, n) for u, n, _ in store.placements("juser1")] == [("juser1", "hub1"), ("juser1", "hub2")]


def test_chooser_returning_none_records_nothing(store):
    assert store.place("juser1", lambda ctx: None, window=60) is None
    assert store.previous_node("juser1") is None


def test_chooser_exception_rolls_back(store):
    def boom(ctx):
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        store.place("juser1", boom, window=60)
    assert store.placements() == []
    assert store.place("juser1", lambda ctx: "hub1", window=60) is not None


def test_drained(store):
    assert store.drained_nodes() == frozenset()
    store.set_drained("hub2", True, by="admin")
    store.set_drained("hub2", True, by="admin")
    assert store.drained_nodes() == frozenset({"hub2"})
    store.set_drained("hub2", False)
    assert store.drained_nodes() == frozenset()


# ----------------------------------------------------------------------------- placement policy


def test_most_free_memory(store):
    p = place_user(store, "juser1", loads(hub1=4, hub2=9), drained=(), limits=LIMITS)
    assert p is not None and p.node == "hub2"


def test_pending_reservations_shift_the_choice(store):
    now = 1000.0
    assert place_user(store, "a", loads(hub1=9, hub2=8), drained=(), limits=LIMITS, now=now).node == "hub1"
    assert place_user(store, "b", loads(hub1=9, hub2=8), drained=(), limits=LIMITS, now=now).node == "hub2"
    assert place_user(store, "c", loads(hub1=9, hub2=8), drained=(), limits=LIMITS, now=now).node == "hub1"
    # Past the window the reservations no longer count.
    later = now + LIMITS.pending_seconds + 1
    assert place_user(store, "d", loads(hub1=9, hub2=8), drained=(), limits=LIMITS, now=later).node == "hub1"


def test_sticky_previous_with_room(store):
    store.record_running("juser1", "hub1")
    p = place_user(store, "juser1", loads(hub1=6, hub2=12), drained=(), limits=LIMITS)
    assert p.node == "hub1"


def test_not_sticky_without_headroom(store):
    store.record_running("juser1", "hub1")
    # need 2 GiB + 10 % of 16 GiB = 3.6 GiB
    p = place_user(store, "juser1", loads(hub1=3.5, hub2=12), drained=(), limits=LIMITS)
    assert p.node == "hub2"


def test_drained_and_unhealthy_are_never_chosen(store):
    nodes = loads(hub1=1, hub2=15, hub3=14)
    nodes[2] = NodeLoad("hub3", 14 * GiB, 16 * GiB, healthy=False)
    p = place_user(store, "juser1", nodes, drained={"hub2"}, limits=LIMITS)
    assert p.node == "hub1"
    assert place_user(store, "juser2", nodes[:2], drained={"hub1", "hub2"}, limits=LIMITS) is None


def test_recent_placement_kept_only_while_eligible(store):
    first = place_user(store, "juser1", loads(hub1=9, hub2=8), drained=(), limits=LIMITS)
    assert first.node == "hub1"
    again = place_user(store, "juser1", loads(hub1=1, hub2=15), drained=(), limits=LIMITS)
    assert (again.node, again.reused) == ("hub1", True)
    moved = place_user(store, "juser1", loads(hub1=9, hub2=8), drained={"hub1"}, limits=LIMITS)
    assert (moved.node, moved.reused) == ("hub2", False)


def test_login_failures_in_a_moving_window(store):
    """Issue 17: failed logins counted in the store (every worker and front door sees them)."""
    for t in (100.0, 110.0, 120.0):
        store.record_login_failures(["user:juser1", "addr:192.0.2.1"], now=t)
    store.record_login_failures(["addr:192.0.2.1"], now=121.0)
    # The 3rd most recent failure (t=100) keeps the name blocked until 100 + 60.
    assert store.login_failure_block("user:juser1", 3, 60.0, now=125.0) == 160.0
    assert store.login_failure_block("user:juser1", 4, 60.0, now=125.0) is None
    assert store.login_failure_block("user:juser1", 3, 60.0, now=161.0) is None
    assert store.login_failure_block("addr:192.0.2.1", 4, 60.0, now=125.0) == 160.0
    assert store.login_failure_block("user:juser2", 1, 60.0, now=125.0) is None
    store.clear_login_failures("user:juser1")
    assert store.login_failure_block("user:juser1", 1, 60.0, now=125.0) is None
    assert store.login_failure_block("addr:192.0.2.1", 1, 60.0, now=125.0) == 181.0
    # Failures older than a day are dropped when new ones are written.
    store.record_login_failures(["user:juser3"], now=100.0 + 2 * 86400)
    assert store.login_failure_block("addr:192.0.2.1", 1, 3 * 86400.0, now=100.0 + 2 * 86400) is None


def test_effective_loads():
    out = effective_loads(loads(hub1=4, hub2=4), drained={"hub2"}, pending={"hub1": 2}, mem_per_server=GiB)
    assert [(n.name, n.drained, n.pending) for n in out] == [("hub1", False, 2 * GiB), ("hub2", True, 0)]


# ----------------------------------------------------------------------------- races


def test_concurrent_first_logins_threads(tmp_path):
    """Many threads, each with its own store object on one file, place one user at once."""
    path = str(tmp_path / "race.sqlite3")
    SqliteStore(path)
    n = 16
    barrier = threading.Barrier(n)
    results: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        store = SqliteStore(path)
        # Each thread sees a different "best" node: only the lock can make them agree.
        mine = loads(hub1=8 + (i % 2), hub2=8 + ((i + 1) % 2))
        barrier.wait()

        p = place_user(store, "juser1", mine, drained=(), limits=LIMITS)
        with lock:
            results.append(p.node)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == n
    assert len(set(results)) == 1
    assert len(SqliteStore(path).placements("juser1")) == 1


def test_lock_is_held_across_read_decide_write(tmp_path):
    path = str(tmp_path / "race.sqlite3")
    store = SqliteStore(path)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def slow(ctx):
        inside.set()
        release.wait(5)
        order.append("first")
        return "hub1"

    t = threading.Thread(target=lambda: store.place("juser1", slow, window=60))
    t.start()
    assert inside.wait(5)

    def second(ctx):
        order.append(f"second saw recent={ctx.recent}")
        return ctx.recent or "hub2"

    t2 = threading.Thread(target=lambda: SqliteStore(path).place("juser1", second, window=60))
    t2.start()
    time.sleep(0.2)
    assert order == []  # the second waits for the first's transaction
    release.set()
    t.join(5)
    t2.join(5)
    assert order == ["first", "second saw recent=hub1"]


def _process_worker(path: str, i: int, start: float, queue) -> None:
    store = SqliteStore(path)
    mine = loads(hub1=8 + (i % 2), hub2=8 + ((i + 1) % 2))
    while time.time() < start:
        time.sleep(0.001)
    p = place_user(store, "juser1", mine, drained=(), limits=LIMITS)
    queue.put(p.node)


def test_concurrent_first_logins_processes(tmp_path):
    """Like several gunicorn workers: separate processes on one SQLite file."""
    path = str(tmp_path / "race.sqlite3")
    SqliteStore(path)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start = time.time() + 0.5
    procs = [ctx.Process(target=_process_worker, args=(path, i, start, queue)) for i in range(6)]
    for p in procs:
        p.start()
    nodes = [queue.get(timeout=20) for _ in procs]
    for p in procs:
        p.join(10)
    assert len(set(nodes)) == 1
    assert len(SqliteStore(path).placements("juser1")) == 1
