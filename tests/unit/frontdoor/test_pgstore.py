"""PostgresStore against a real PostgreSQL server the tests start (see pgserver.py).

The SQLite store's contract tests run again on PostgreSQL, then the PostgreSQL-specific
ones: the per-user advisory lock, and two front-door processes racing on first logins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from frontdoor_env import ROOT

from multijhub.frontdoor.config import StoreConfig
from multijhub.frontdoor.store import AssignmentStore, open_store

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]==3.3.9')")

import psycopg
from pgserver import pg_dsn, pg_server  # noqa: F401 - fixtures

# The SQLite store's contract, collected again here with this module's `store` fixture.
from test_store import (  # noqa: F401
    test_chooser_exception_rolls_back,
    test_chooser_returning_none_records_nothing,
    test_context_offers_recent_placement_within_window,
    test_drained,
    test_drained_and_unhealthy_are_never_chosen,
    test_is_an_assignment_store,
    test_learned_sizes_from_the_store,
    test_login_failures_in_a_moving_window,
    test_most_free_memory,
    test_not_sticky_without_headroom,
    test_observe_skips_nodes_that_did_not_answer,
    test_pending_reservations_shift_the_choice,
    test_pending_users_count_at_their_learned_size,
    test_place_records_and_counts_pending,
    test_previous_and_record_running,
    test_recent_placement_kept_only_while_eligible,
    test_record_memory_history_bound_forgetting_and_unknown_not_absent,
    test_record_memory_keeps_each_sessions_peak_and_new_oom_kills,
    test_returning_user_placed_where_their_learned_size_fits,
    test_sticky_previous_with_room,
)

from multijhub.frontdoor.pgstore import PostgresStore


@pytest.fixture
def store(pg_dsn):  # noqa: F811
    s = open_store(StoreConfig(kind="postgresql", dsn=pg_dsn))
    yield s
    s.close()


def test_open_store_picks_postgres_for_a_dsn(store):
    assert isinstance(store, PostgresStore)


def test_two_stores_share_one_database(pg_dsn):  # noqa: F811
    a = open_store(StoreConfig(kind="postgresql", dsn=pg_dsn))
    b = open_store(StoreConfig(kind="postgresql", dsn=pg_dsn))
    a.place("juser1", lambda ctx: "hub2", window=60)
    a.set_drained("hub1", True, by="admin")
    assert b.previous_node("juser1") == "hub2"
    assert b.drained_nodes() == {"hub1"}
    assert b.pending_counts(window=60) == {"hub2": 1}


def test_lock_is_held_across_read_decide_write(pg_dsn):  # noqa: F811
    first_store: AssignmentStore = open_store(StoreConfig(kind="postgresql", dsn=pg_dsn))
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(ctx):
        inside.set()
        release.wait(5)
        order.append("first")
        return "hub1"

    t = threading.Thread(target=lambda: first_store.place("juser1", slow, window=60))
    t.start()
    assert inside.wait(5)

    def second(ctx):
        order.append(f"second saw recent={ctx.recent}")
        return ctx.recent or "hub2"

    other = open_store(StoreConfig(kind="postgresql", dsn=pg_dsn))
    t2 = threading.Thread(target=lambda: other.place("juser1", second, window=60))
    t2.start()
    # another user is not held up by juser1's lock
    assert other.place("juser2", lambda ctx: "hub2", window=60).node == "hub2"
    time.sleep(0.2)
    assert order == []
    release.set()
    t.join(5)
    t2.join(5)
    assert order == ["first", "second saw recent=hub1"]


def test_broken_connection_is_replaced(store, pg_dsn):  # noqa: F811
    store.record_running("juser1", "hub1")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(psycopg.OperationalError):
        store.previous_node("juser1")
    assert store.previous_node("juser1") == "hub1"


def test_two_front_door_processes_race_on_first_logins(pg_dsn, hubs, tmp_path):  # noqa: F811
    """Two front doors, each believing another node is freest, log the same users in at once."""
    users = ["juser1", "juser2", "juser3"]
    script = Path(__file__).with_name("pg_frontdoor_proc.py")
    env = dict(os.environ)
    start = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                pg_dsn,
                str(hubs.port),
                str(tmp_path / node),
                node,
                str(start),
                *users,
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for node in ("hub1", "hub2")
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-3000:]
        outputs.append({d["user"]: d["location"] for d in map(json.loads, out.decode().splitlines())})
    first, second = outputs
    for user in users:
        assert first[user].startswith("http://127.0.0.1:"), first[user]
        assert first[user] == second[user], (user, first[user], second[user])
    store = open_store(StoreConfig(kind="postgresql", dsn=pg_dsn))
    for user in users:
        assert len(store.placements(user)) == 1  # type: ignore[attr-defined]
