"""The decision in words (where.yml's answer line and details)."""

from __future__ import annotations

from typing import Any

import pytest
from multijhub.core.answer import answer_text, details_lines, server_url, uptime_text

GIB = 1024**3
URLS = {"hub1": "http://127.0.0.2:8000/", "hub2": "https://hub2.example.org/jupyter"}


def decision(state: str, **kw: Any) -> dict[str, Any]:
    return {
        "user": "juser1",
        "state": state,
        "nodes": [],
        "servers": {},
        "stale": [],
        "unanswered": {},
        "placement": None,
        **kw,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "0s"), (0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h00m"),
     (3 * 3600 + 12 * 60 + 5, "3h12m"), (86399, "23h59m"), (86400, "1d0h"), (2 * 86400 + 4 * 3600, "2d4h")],
)  # fmt: skip
def test_uptime_text(seconds: float, text: str) -> None:
    assert uptime_text(seconds) == text


def test_server_url_joins_one_slash() -> None:
    assert server_url("http://hub1:8000/", "juser1") == "http://hub1:8000/user/juser1/"
    assert server_url("https://h.example.org/jupyter", "a.b") == "https://h.example.org/jupyter/user/a.b/"


def test_running_on_one_hub_with_runtime_evidence() -> None:
    d = decision(
        "running",
        nodes=["hub2"],
        servers={
            "hub2": [{"source": "hub", "ready": True}, {"source": "runtime", "pid": 4242, "uptime": 11525}]
        },
    )
    assert answer_text(d, URLS, ["hub1", "hub2"]) == (
        "juser1: running on hub2 (pid 4242, up 3h12m) -> https://hub2.example.org/jupyter/user/juser1/"
    )


def test_running_known_to_the_hub_api_only() -> None:
    d = decision("running", nodes=["hub1"], servers={"hub1": [{"source": "hub", "ready": False}]})
    assert answer_text(d, URLS, ["hub1"]) == (
        "juser1: running on hub1 (hub API: pending) -> http://127.0.0.2:8000/user/juser1/"
    )


def test_several_lists_every_hub() -> None:
    servers = {
        "hub1": [
            {"source": "runtime", "pid": 10, "uptime": 30},
            {"source": "runtime", "pid": 11, "uptime": 20},
        ],
        "hub2": [{"source": "hub", "ready": True}],
    }
    d = decision("several", nodes=["hub1", "hub2"], servers=servers)
    assert answer_text(d, URLS, ["hub1", "hub2"]) == (
        "juser1: SEVERAL servers running: "
        "hub1 (pid 10, pid 11, up 30s) -> http://127.0.0.2:8000/user/juser1/; "
        "hub2 (hub API: ready) -> https://hub2.example.org/jupyter/user/juser1/"
    )


def test_not_running_with_and_without_a_placement() -> None:
    placed = decision("not_running", placement={"node": "hub1", "mem_available": int(5.1 * GIB)})
    assert answer_text(placed, URLS, ["hub1", "hub2"]) == (
        "juser1: no running server; a new one would go to hub1 (5.1 GiB available)"
    )
    drained = decision("not_running")
    assert answer_text(drained, URLS, ["hub1"]) == (
        "juser1: no running server; no hub can take a new one (all drained)"
    )


def test_unknown_names_the_silent_hubs_and_the_ones_that_answered() -> None:
    d = decision("unknown", unanswered={"hub3": "unreachable: timeout", "hub1": "failed: boom"})
    assert answer_text(d, URLS, ["hub1", "hub2", "hub3"]) == (
        "juser1: UNKNOWN - hub1, hub3 did not answer; no server found on hub2"
    )
    none = decision("unknown", unanswered={"hub1": "x"})
    assert answer_text(none, URLS, ["hub1"]) == "juser1: UNKNOWN - hub1 did not answer; no hub answered"


def test_details_explain_silence_and_stale_files() -> None:
    d = decision(
        "not_running",
        unanswered={"hub2": "unreachable: no route"},
        stale=["hub?:jpserver-12.json", "hub?:jpserver-13.json"],
    )
    assert details_lines(d, "ansible-playbook where.yml -e user=juser1 -e prune=true") == [
        "hub2 did not answer: unreachable: no route",
        "stale runtime files (no hub runs them): hub?:jpserver-12.json, hub?:jpserver-13.json",
        "remove them with: ansible-playbook where.yml -e user=juser1 -e prune=true",
    ]
    assert details_lines(decision("running"), "x") == []


def test_no_such_user_names_every_hub() -> None:
    decision = {
        "user": "juser9",
        "state": "no_such_user",
        "nodes": [],
        "servers": {},
        "stale": [],
        "unanswered": {},
        "no_account": ["hub1", "hub2"],
    }
    assert answer_text(decision, {}, ["hub1", "hub2"]) == "no such user juser9 on hub1, hub2"
    assert details_lines(decision, "prune") == []


def test_an_account_missing_on_one_hub_is_explained() -> None:
    decision = {
        "user": "juser3",
        "state": "not_running",
        "nodes": [],
        "servers": {},
        "stale": [],
        "unanswered": {},
        "no_account": ["hub2"],
        "placement": {"node": "hub1", "mem_available": 2**30},
    }
    assert answer_text(decision, {}, ["hub1", "hub2"]).startswith(
        "juser3: no running server; a new one would go to hub1"
    )
    assert details_lines(decision, "prune") == [
        "juser3 has no account on hub2: no server can start there"
        " (the same users must exist on every hub; site.yml's preflight checks it)"
    ]


def test_clock_skew_is_explained() -> None:
    server = {"source": "runtime", "pid": 42, "uptime": 5, "started_after_file": 10.2}
    decision = {
        "user": "juser1",
        "state": "running",
        "nodes": ["hub2"],
        "servers": {"hub2": [server]},
        "stale": [],
        "unanswered": {},
    }
    assert details_lines(decision, "prune") == [
        "hub2: process 42 started 10 s after its runtime file was written: the clocks of hub2 and the host"
        " holding the homes differ (check NTP); counted as running"
    ]
