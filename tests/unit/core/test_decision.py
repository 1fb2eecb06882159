from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from multijhub.core.decision import NodeAnswer, combine, decide
from multijhub.core.report import node_report
from multijhub.core.usernames import InvalidUsername
from multijhub_servers import Server, fake_proc


def report(
    node: str, user: str = "juser1", running: tuple[str, ...] = (), other: tuple[str, ...] = ()
) -> dict[str, Any]:
    def ev(name: str, verdict: str) -> dict[str, Any]:
        pid = int(name.split("-")[1].split(".", maxsplit=1)[0])
        return {
            "file": name,
            "pid": pid,
            "kind": "jpserver",
            "mtime": 1.0,
            "verdict": verdict,
            "reason": "",
            "process": None,
        }

    evidence = [ev(n, "running") for n in running] + [ev(n, "not-here") for n in other]
    return {
        "node": node,
        "user": user,
        "uid": 1001,
        "evidence": evidence,
        "servers": [e for e in evidence if e["verdict"] == "running"],
        "mem_available": 1,
        "mem_total": 2,
        "singleuser_servers": 0,
    }


def test_same_pid_name_on_two_nodes_real(root_server: Server, tmp_path: Path) -> None:
    """jpserver-<pid>.json on a shared home: hub1 runs it, on hub2 that PID is someone else's."""
    rt = str(root_server.runtime_dir)
    hub1 = node_report("root", node="hub1", runtime_template=rt)
    ticks = os.sysconf("SC_CLK_TCK")
    fake_proc(tmp_path, root_server.pid, uid=0, cmdline=["sleep", "100"], start_ticks=ticks, btime=1)
    hub2 = node_report("root", node="hub2", runtime_template=rt, proc_root=str(tmp_path))
    assert hub2["servers"] == []
    d = decide("root", [NodeAnswer("hub1", True, hub1), NodeAnswer("hub2", True, hub2)])
    assert (d.state, d.nodes) == ("running", ["hub1"])
    assert d.servers["hub1"][0]["pid"] == root_server.pid
    assert d.stale == []
    json.dumps(d.to_dict())


def test_several() -> None:
    d = decide(
        "juser1",
        [
            NodeAnswer(
                "hub1", True, report("hub1", running=("jpserver-10.json",), other=("jpserver-20.json",))
            ),
            NodeAnswer(
                "hub2", True, report("hub2", running=("jpserver-20.json",), other=("jpserver-10.json",))
            ),
        ],
    )
    assert (d.state, d.nodes, d.stale) == ("several", ["hub1", "hub2"], [])


def test_not_running_lists_stale_when_all_answered() -> None:
    d = decide(
        "juser1",
        [
            NodeAnswer("hub1", True, report("hub1", other=("jpserver-10.json", "nbserver-3.json"))),
            NodeAnswer("hub2", True, report("hub2", other=("jpserver-10.json",))),
        ],
    )
    assert (d.state, d.stale, d.unanswered) == ("not_running", ["jpserver-10.json", "nbserver-3.json"], {})


def test_unknown_is_never_not_running() -> None:
    d = decide(
        "juser1",
        [
            NodeAnswer("hub1", True, report("hub1", other=("jpserver-10.json",))),
            NodeAnswer("hub3", False, error="timeout"),
        ],
    )
    assert d.state == "unknown"
    assert d.unanswered == {"hub3": "timeout"}
    assert d.stale == []  # hub3 might run jpserver-10


def test_running_elsewhere_while_a_node_is_down() -> None:
    d = decide(
        "juser1",
        [
            NodeAnswer("hub1", False, error="unreachable"),
            NodeAnswer(
                "hub2", True, report("hub2", running=("jpserver-10.json",), other=("jpserver-5.json",))
            ),
        ],
    )
    assert (d.state, d.nodes, d.stale) == ("running", ["hub2"], [])
    assert d.unanswered == {"hub1": "unreachable"}


def test_hub_api_claims_a_server() -> None:
    d = decide(
        "juser1",
        [
            NodeAnswer(
                "hub1",
                True,
                report("hub1", other=("jpserver-10.json",)),
                hub_server={"ready": False, "pending": "spawn"},
            ),
            NodeAnswer(
                "hub2",
                True,
                report("hub2", other=("jpserver-10.json",)),
                hub_server={"ready": False, "pending": None},
            ),
        ],
    )
    assert (d.state, d.nodes) == ("running", ["hub1"])
    assert d.servers["hub1"][0]["source"] == "hub"
    assert d.stale == []  # a pending server may not show in /proc yet


def test_answer_for_another_user_is_not_an_answer() -> None:
    d = decide(
        "juser1", [NodeAnswer("hub1", True, report("hub1", user="juser2", running=("jpserver-1.json",)))]
    )
    assert d.state == "unknown"
    assert "juser2" in d.unanswered["hub1"]


def test_no_nodes_is_not_running() -> None:
    assert decide("juser1", []).state == "not_running"


@pytest.mark.parametrize("bad", ["", "../etc", "*", None])
def test_decide_validates_user(bad: object) -> None:
    with pytest.raises(InvalidUsername):
        decide(bad, [])  # type: ignore[arg-type]


def no_account(node: str, user: str = "juser9") -> dict[str, Any]:
    return {**report(node, user), "user_exists": False, "uid": None, "evidence": [], "servers": []}


def test_a_name_no_hub_knows_is_no_such_user_not_unknown() -> None:
    answers = [NodeAnswer(n, True, no_account(n)) for n in ("hub1", "hub2")]
    decision = decide("juser9", answers)
    assert decision.state == "no_such_user"
    assert decision.no_account == ["hub1", "hub2"]
    assert decision.unanswered == {}


def test_no_account_on_every_answering_hub_but_one_silent_is_still_unknown() -> None:
    answers = [NodeAnswer("hub1", True, no_account("hub1")), NodeAnswer("hub2", False, error="timed out")]
    assert decide("juser9", answers).state == "unknown"


def test_an_account_missing_on_one_hub_is_not_running_with_that_hub_named() -> None:
    answers = [
        NodeAnswer("hub1", True, report("hub1", "juser9")),
        NodeAnswer("hub2", True, no_account("hub2")),
    ]
    decision = decide("juser9", answers)
    assert decision.state == "not_running"
    assert decision.no_account == ["hub2"]


def test_a_singleuser_process_without_its_file_is_running() -> None:
    rep = {
        **report("hub1"),
        "processes": [{"pid": 4242, "start_time": 1.0, "cmdline": ["jupyterhub-singleuser"]}],
    }
    decision = decide("juser1", [NodeAnswer("hub1", True, rep), NodeAnswer("hub2", True, report("hub2"))])
    assert (decision.state, decision.nodes) == ("running", ["hub1"])
    assert decision.servers["hub1"][0]["source"] == "proc"


def test_a_process_with_its_file_is_counted_once() -> None:
    rep = {**report("hub1", running=("jpserver-4242.json",)), "processes": [{"pid": 4242, "start_time": 1.0}]}
    decision = decide("juser1", [NodeAnswer("hub1", True, rep)])
    assert [s["source"] for s in decision.servers["hub1"]] == ["runtime"]


def test_an_unlistable_runtime_directory_answers_but_allows_no_pruning() -> None:
    broken = {
        **report("hub1"),
        "runtime_error": "cannot list the runtime directory: permission denied",
        "processes": [],
    }
    other = report("hub2", other=("jpserver-7.json",))
    decision = decide("juser1", [NodeAnswer("hub1", True, broken), NodeAnswer("hub2", True, other)])
    assert decision.state == "not_running" and decision.unanswered == {}
    assert decision.stale == []  # hub1 could not list: jpserver-7.json may be its server's
    assert decision.problems == {"hub1": {"runtime_error": broken["runtime_error"]}}


def test_combine_either_source_positive_is_enough() -> None:
    by_proc = {**report("hub1"), "processes": [{"pid": 7, "start_time": 1.0}], "runtime_error": "denied"}
    answer, both = combine("hub1", (False, None, "hub API: timed out"), (True, by_proc, None))
    assert answer.ok and not both
    assert decide("juser1", [answer]).nodes == ["hub1"]
    # Nothing positive and one source silent: not an answer.
    answer, both = combine("hub1", (False, None, "hub API: timed out"), (True, report("hub1"), None))
    assert not answer.ok and answer.error == "hub API: timed out"
    answer, both = combine("hub1", (True, {"ready": True}, None), (False, None, "probe: timed out"))
    assert answer.ok and answer.hub_server == {"ready": True}
