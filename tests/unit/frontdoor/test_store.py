"""The SQLite assignment store and placement through the core's choose_node."""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import replace

import pytest
from frontdoor_env import GiB
from multijhub.core.decision import NodeHistory
from multijhub.core.placement import NodeLoad

from multijhub.frontdoor.config import LimitsConfig
from multijhub.frontdoor.placing import effective_loads, place_user
from multijhub.frontdoor.store import AssignmentStore, PlacementContext, SqliteStore

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


# Learned sizes (issue 19): session peaks in the store, and placement by them.

from multijhub.core.cgroupmem import UnitMemory  # noqa: E402

from multijhub.frontdoor.placing import learned_sizes, observe, size_rule  # noqa: E402


def unit(
    user: str, current: float, peak: float | None = None, *, session: str = "1", oom: int = 0
) -> UnitMemory:
    return UnitMemory(user, int(current * GiB), int((peak or current) * GiB), oom, session, 2)


def test_record_memory_keeps_each_sessions_peak_and_new_oom_kills(store):
    assert store.record_memory({"hub1": [unit("ann", 1, 3)]}, now=100.0) == []
    # the same session later: the peak only grows; one OOM kill is reported once
    kills = store.record_memory({"hub1": [unit("ann", 2, 2.5, oom=1)]}, now=200.0)
    assert [(k.user, k.node, k.kills) for k in kills] == [("ann", "hub1", 1)]
    assert store.record_memory({"hub1": [unit("ann", 2, 2.5, oom=1)]}, now=300.0) == []
    store.record_memory({"hub2": [unit("ann", 1, session="2", oom=2)]}, now=400.0)  # a new server
    peaks = store.session_peaks(["ann"])["ann"]
    assert [(s.node, s.peak / GiB) for s in peaks] == [("hub2", 1.0), ("hub1", 3.0)]  # newest first
    assert [(k.user, k.node, k.kills) for k in store.oom_kills()] == [("ann", "hub2", 2), ("ann", "hub1", 1)]


def test_record_memory_history_bound_forgetting_and_unknown_not_absent(store):
    for i in range(5):
        store.record_memory({"hub1": [unit("ann", 1 + i, session=str(i))]}, now=100.0 + i, history=3)
    assert [s.peak // GiB for s in store.session_peaks(["ann"])["ann"]] == [5, 4, 3]
    store.record_memory({"hub1": [unit("bob", 1, oom=1)]}, now=1000.0, forget=500.0)
    # ann was last seen at 104: forgotten; bob's report did not mention her, which alone forgets nothing
    assert set(store.session_peaks()) == {"bob"}
    store.record_memory({"hub2": [unit("cy", 1)]}, now=1001.0, forget=500.0)
    assert set(store.session_peaks()) == {"bob", "cy"}  # bob not in this report: kept
    assert [k.user for k in store.oom_kills()] == ["bob"]


def test_observe_skips_nodes_that_did_not_answer(store):
    limits = LimitsConfig(mem_per_server=2 * GiB)
    down = NodeLoad("hub2", 0, 16 * GiB, healthy=False, units=(unit("bob", 1),))
    up = NodeLoad("hub1", 8 * GiB, 16 * GiB, units=(unit("ann", 1, oom=1),))
    kills = observe(store, [up, down], limits=limits, now=10.0)
    assert [k.user for k in kills] == ["ann"]
    assert set(store.session_peaks()) == {"ann"}


def test_learned_sizes_from_the_store(store):
    rule = size_rule(LimitsConfig(mem_per_server=2 * GiB, learned_cap=6 * GiB))
    store.record_memory({"hub1": [unit("ann", 1, 3, session="a"), unit("bob", 1, 9)]}, now=1.0)
    assert learned_sizes(store, ["ann", "bob", "cy"], rule) == {"ann": 3 * GiB, "bob": 6 * GiB, "cy": 2 * GiB}
    # a running server counts at least at its own peak; its own session is not its history
    live = {"bob": unit("bob", 1, 9)}
    assert learned_sizes(store, ["bob"], rule, live) == {"bob": 9 * GiB}


def test_returning_user_placed_where_their_learned_size_fits(store):
    """hub1 has the most free memory now, but its servers are known to grow; ann peaked at 6 GiB."""
    limits = LimitsConfig(mem_per_server=2 * GiB, sticky_headroom=0.1)
    # earlier: ann's session peaked at 6 GiB; bob's server on hub1 peaked at 8 GiB and is small now
    store.record_memory({"hub3": [unit("ann", 1, 6, session="old")]}, now=10.0)
    hub1 = NodeLoad("hub1", 9 * GiB, 16 * GiB, units=(unit("bob", 1, 8, session="b"),))
    hub2 = NodeLoad("hub2", 7 * GiB, 16 * GiB, units=(unit("cy", 2, 2, session="c"),))
    observe(store, [hub1, hub2], limits=limits, now=20.0)
    p = place_user(store, "ann", [hub1, hub2], drained=(), limits=limits, now=30.0)
    assert p is not None and p.node == "hub2"  # hub1: 9 free - 7 still promised to bob = 2 < 7
    # the old policy (no units: nothing learned about running servers) picks hub1
    plain = [NodeLoad("hub1", 9 * GiB, 16 * GiB), NodeLoad("hub2", 7 * GiB, 16 * GiB)]
    assert place_user(store, "dan", plain, drained=(), limits=limits, now=31.0).node == "hub1"


def test_pending_users_count_at_their_learned_size(store):
    limits = LimitsConfig(mem_per_server=1 * GiB, pending_seconds=60, sticky_headroom=0.0)
    store.record_memory({"hub1": [unit("big", 0.1, 6, session="x")]}, now=1.0)
    nodes = [NodeLoad("hub1", 10 * GiB, 16 * GiB), NodeLoad("hub2", 9 * GiB, 16 * GiB)]
    assert place_user(store, "big", nodes, drained=(), limits=limits, now=100.0).node == "hub1"
    # big's server does not show yet: hub1 counts 6 GiB pending, not mem_per_server's 1 GiB
    assert place_user(store, "ann", nodes, drained=(), limits=limits, now=110.0).node == "hub2"
    # once it shows among hub1's units it is counted there, not twice
    shown = [NodeLoad("hub1", 10 * GiB, 16 * GiB, units=(unit("big", 0.1, 6, session="y"),)), nodes[1]]
    out = effective_loads(shown, drained=(), pending_users={"hub1": ("big",)}, sizes={"big": 6 * GiB})
    assert (out[0].pending, out[0].reserved) == (0, 6 * GiB - int(0.1 * GiB))


# Recent nodes (issue 16, case 9): where each user may have a server.


def test_recent_nodes_from_placements_findings_and_listings(store):
    assert store.node_history("ann", now=1000.0) == NodeHistory()
    store.place("ann", lambda ctx: "hub1", window=60, now=1000.0)
    store.record_running("bob", "hub2", now=1000.0)
    # hub1 lists no server (ann's placement is younger than the grace: kept); hub2 lists cy's
    store.record_listing({"hub1": set(), "hub2": {"bob", "cy"}}, grace=60, now=1010.0)
    assert store.node_history("ann", now=1010.0) == NodeHistory(
        watched=frozenset({"hub1", "hub2"}), recent=frozenset({"hub1"})
    )
    assert store.node_history("cy", now=1010.0).recent == {"hub2"}
    # later: ann's server never showed on hub1 and bob's is gone from hub2: dropped
    store.record_listing({"hub1": set(), "hub2": {"cy"}}, grace=60, now=1100.0)
    assert store.node_history("ann", now=1100.0).recent == frozenset()
    assert store.node_history("bob", now=1100.0).recent == frozenset()
    assert store.node_history("cy", now=1100.0).recent == {"hub2"}


def test_a_silent_node_keeps_its_users_for_the_retention_only(store):
    store.record_listing({"hub1": {"ann"}, "hub2": {"bob"}}, grace=60, now=1000.0)
    # hub2 goes silent: only hub1 answers from now on; ann's entry is refreshed, bob's is not
    for now in (2000.0, 3000.0):
        store.record_listing({"hub1": {"ann"}}, grace=60, retention=2500.0, now=now)
    assert store.node_history("bob", retention=2500.0, now=3400.0).recent == {"hub2"}
    assert store.node_history("bob", retention=2500.0, now=3600.0).recent == frozenset()
    store.record_listing({"hub1": {"ann"}}, grace=60, retention=2500.0, now=4000.0)
    assert store.node_history("bob", now=4000.0).recent == frozenset()  # and forgotten
    assert store.node_history("ann", retention=2500.0, now=4000.0).recent == {"hub1"}


def test_an_unchanged_listing_writes_nothing(store):
    store.record_listing({"hub1": {"ann"}}, grace=60, now=1000.0)
    calls = []
    real_tx = store._tx

    def counting_tx():
        calls.append(1)
        return real_tx()

    store._tx = counting_tx
    store.record_listing({"hub1": {"ann"}}, grace=60, now=1001.0)
    assert calls == []


def test_down_marks_are_kept_until_cleared_and_idempotent(store):
    assert store.down_nodes() == frozenset()
    store.set_down("hub2", True, by="admin")
    store.set_down("hub2", True, by="other")
    store.record_listing({"hub2": set()}, grace=60)  # answering again does not clear it
    assert store.down_nodes() == {"hub2"}
    assert store.node_history("ann").down == {"hub2"}
    store.set_down("hub2", False)
    store.set_down("hub2", False)
    assert store.down_nodes() == frozenset()
    assert store.node_history("ann").watched == {"hub2"}


def test_grant_problems_recorded_refreshed_and_cleared(store):
    store.record_grant_problems("ann", {"hub2": "denied"}, answered=["hub1", "hub2"], now=100.0)
    assert [(g.user, g.node, g.error, g.seen_at) for g in store.grant_problems()] == [
        ("ann", "hub2", "denied", 100.0)
    ]
    # hub2 silent now: its entry stays; answered without the problem: cleared
    store.record_grant_problems("ann", {}, answered=["hub1"], now=200.0)
    assert [g.node for g in store.grant_problems()] == ["hub2"]
    store.record_grant_problems("ann", {}, answered=["hub1", "hub2"], now=300.0)
    assert store.grant_problems() == []


def test_new_server_at_learned_quantile_others_at_learned_running_quantile(store):
    """The placement study's two quantiles: ann's new server needs room for her highs (0.9);
    bob's running server counts at his typical high (0.7), not at his highest session."""
    for i, peak in enumerate((2, 3, 4, 8)):
        store.record_memory({"hub1": [unit("bob", peak, session=f"b{i}")]}, now=1.0 + i)
    for i, peak in enumerate((2, 3, 4, 9)):
        store.record_memory({"hub2": [unit("ann", peak, session=f"a{i}")]}, now=10.0 + i)
    store.record_running("ann", "hub2")
    bob_now = unit("bob", 1, session="b-now")  # bob's sizes: 4 GiB at 0.7, 8 GiB at 0.9
    # ann (9 GiB at 0.9, 4 GiB at 0.7) does not fit on her previous node hub2 (5 GiB free);
    # hub1 has 12 free less bob's growth: 9 at 0.7 (3 still due), 5 at 0.9 (7 due).
    nodes = [NodeLoad("hub1", 12 * GiB, 32 * GiB, units=(bob_now,)), NodeLoad("hub2", 5 * GiB, 32 * GiB)]
    limits = LimitsConfig(mem_per_server=2 * GiB)
    assert (limits.learned_quantile, limits.learned_running_quantile) == (0.9, 0.7)
    assert place_user(store, "ann", nodes, drained=(), limits=limits, now=100.0).node == "hub1"
    # cy, new: hub1 with 11 free less bob's growth (3 at 0.7: 8) against hub2's 6; at 0.9 (7: 4) hub2
    later = [replace(nodes[0], mem_available=11 * GiB), replace(nodes[1], mem_available=6 * GiB)]
    assert place_user(store, "cy", later, drained=(), limits=limits, now=300.0).node == "hub1"
    every = replace(limits, learned_running_quantile=0.9)
    assert place_user(store, "dan", later, drained=(), limits=every, now=600.0).node == "hub2"


def test_a_pending_user_whose_server_shows_on_another_node_is_not_pending():
    """jadmin was placed on hub2 a moment ago but his server runs on hub1 (started there): it is
    counted on hub1 among its units, not also as pending memory on hub2."""
    loads = [
        NodeLoad("hub1", 8 * GiB, 16 * GiB, units=(unit("jadmin", 1, session="j"),)),
        NodeLoad("hub2", 8 * GiB, 16 * GiB),
    ]
    out = effective_loads(
        loads,
        drained=(),
        pending_users={"hub2": ("jadmin", "new")},
        sizes={"jadmin": 3 * GiB},
        mem_per_server=GiB,
    )
    assert [(n.name, n.pending) for n in out] == [("hub1", 0), ("hub2", GiB)]
