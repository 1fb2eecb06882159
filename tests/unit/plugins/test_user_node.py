"""The lookup through ansible's lookup_loader, with hostvars as ansible passes them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible_collections.multijhub.cluster.plugins.module_utils.report import node_report
from multijhub_servers import Server

GIB = 1 << 30


def lookup() -> Any:
    plugin = lookup_loader.get("multijhub.cluster.user_node", loader=DataLoader(), templar=None)
    assert plugin is not None
    return plugin


def fact(
    node: str,
    user: str = "juser1",
    running: tuple[int, ...] = (),
    other: tuple[int, ...] = (),
    avail: int = 4,
) -> dict[str, Any]:
    def ev(pid: int, verdict: str) -> dict[str, Any]:
        proc = {"pid": pid, "uid": 1001, "start_time": 1000.0, "cmdline": ["jupyterhub-singleuser"]}
        return {
            "file": f"jpserver-{pid}.json",
            "pid": pid,
            "kind": "jpserver",
            "mtime": 1001.0,
            "verdict": verdict,
            "reason": "",
            "process": proc if verdict == "running" else None,
        }

    evidence = [ev(p, "running") for p in running] + [ev(p, "not-here") for p in other]
    return {
        "node": node,
        "user": user,
        "uid": 1001,
        "runtime_dir": f"/home/{user}/.local/share/jupyter/runtime",
        "evidence": evidence,
        "servers": [e for e in evidence if e["verdict"] == "running"],
        "mem_available": avail * GIB,
        "mem_total": 16 * GIB,
        "singleuser_servers": len(running),
        "collected_at": 1000.0 + 3 * 3600 + 12 * 60,
    }


def variables(hosts: dict[str, dict[str, Any]], group: str = "hubs") -> dict[str, Any]:
    return {"groups": {group: list(hosts), "all": list(hosts)}, "hostvars": hosts}


def with_fact(report: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"ansible_facts": {"multijhub_jupyter_servers": report}, **extra}


def test_running_on_one_hub() -> None:
    hv = {"hub1": with_fact(fact("hub1", other=(4242,))), "hub2": with_fact(fact("hub2", running=(4242,)))}
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert (d["state"], d["nodes"], d["stale"], d["placement"]) == ("running", ["hub2"], [], None)
    server = d["servers"]["hub2"][0]
    assert (server["pid"], server["source"], server["uptime"]) == (4242, "runtime", 3 * 3600 + 12 * 60)


def test_answer_in_words_with_each_hubs_url() -> None:
    hv = {
        "hub1": with_fact(fact("hub1", other=(4242,)), jupyterhub_port=8010),
        "hub2": with_fact(fact("hub2", running=(4242,)), jupyterhub_public_url="https://hub2.example.org/"),
    }
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert d["urls"] == {"hub1": "http://hub1:8010", "hub2": "https://hub2.example.org"}
    assert (
        d["answer"] == "juser1: running on hub2 (pid 4242, up 3h12m) -> https://hub2.example.org/user/juser1/"
    )
    assert d["details"] == []


@pytest.mark.parametrize("public_url", [None, "http://hub2:8000", "http://hub2:8000/jhub/"])
def test_a_hub_under_a_base_url_gets_the_link_the_front_door_gives(public_url) -> None:
    extra = {"jupyterhub_base_url": "/jhub/"} | ({"jupyterhub_public_url": public_url} if public_url else {})
    hv = {"hub1": with_fact(fact("hub1")), "hub2": with_fact(fact("hub2", running=(4242,)), **extra)}
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert d["answer"].endswith("-> http://hub2:8000/jhub/user/juser1/")


def test_details_name_the_prune_command() -> None:
    hv = {"hub1": with_fact(fact("hub1", other=(7,))), "hub2": with_fact(fact("hub2", other=(7,)))}
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert d["answer"].startswith("juser1: no running server; a new one would go to hub1")
    assert d["details"] == [
        "stale runtime files (no hub runs them): jpserver-7.json",
        "remove them with: ansible-playbook where.yml -e user=juser1 -e prune=true",
    ]


def test_several() -> None:
    hv = {"hub1": with_fact(fact("hub1", running=(1,))), "hub2": with_fact(fact("hub2", running=(2,)))}
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert (d["state"], d["nodes"]) == ("several", ["hub1", "hub2"])


def test_not_running_with_placement_and_stale() -> None:
    hv = {
        "hub1": with_fact(fact("hub1", other=(7,), avail=5)),
        "hub2": with_fact(fact("hub2", other=(7,), avail=9), multijhub_drained=True),
        "hub3": with_fact(fact("hub3", other=(7,), avail=2)),
    }
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert d["state"] == "not_running"
    assert d["stale"] == ["jpserver-7.json"]
    assert d["placement"] == {"node": "hub1", "mem_available": 5 * GIB}


def test_hub_without_facts_is_unknown() -> None:
    hv = {"hub1": with_fact(fact("hub1", other=(7,))), "hub3": {}}
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert d["state"] == "unknown"
    assert "hub3" in d["unanswered"] and d["stale"] == [] and d["placement"] is None


def test_facts_for_another_user_are_not_an_answer() -> None:
    hv = {"hub1": with_fact(fact("hub1", user="juser2", running=(9,)))}
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert d["state"] == "unknown"


def test_failed_or_unreachable_hub_gives_the_reason() -> None:
    hv = {
        "hub1": with_fact(
            fact("hub1"), multijhub_jupyter_servers_result={"unreachable": True, "msg": "ssh: timed out"}
        ),
        "hub2": {"multijhub_jupyter_servers_result": {"failed": True, "msg": "no such user: 'juser1'"}},
        "hub3": with_fact(fact("hub3", running=(5,))),
    }
    (d,) = lookup().run(["juser1"], variables=variables(hv))
    assert (d["state"], d["nodes"]) == ("running", ["hub3"])
    assert d["unanswered"] == {
        "hub1": "unreachable: ssh: timed out",
        "hub2": "failed: no such user: 'juser1'",
    }


def test_on_unknown_error() -> None:
    hv = {"hub1": with_fact(fact("hub1")), "hub3": {}}
    with pytest.raises(AnsibleLookupError, match="hub3"):
        lookup().run(["juser1"], variables=variables(hv), on_unknown="error")
    # a found server is returned even with on_unknown=error
    hv["hub1"] = with_fact(fact("hub1", running=(3,)))
    assert lookup().run(["juser1"], variables=variables(hv), on_unknown="error")[0]["state"] == "running"


def test_options() -> None:
    hv = {"a": with_fact(fact("a", running=(3,)))}
    plugin = lookup()
    (d,) = plugin.run(["juser1"], variables=variables(hv, group="jhubs"), hubs_group="jhubs")
    assert plugin.get_option("hubs_group") == "jhubs"
    assert d["nodes"] == ["a"]
    with pytest.raises(AnsibleLookupError, match="has no hosts"):
        lookup().run(["juser1"], variables=variables(hv, group="jhubs"))
    old = dict(fact("a", running=(3,)), collected_at=time.time() - 4000)
    (d,) = lookup().run(["juser1"], variables=variables({"a": with_fact(old)}), max_age=600)
    assert d["state"] == "unknown" and "older" in d["unanswered"]["a"]
    assert lookup().run(["juser1", "_svc"], variables={}, check_only=True) == ["juser1", "_svc"]


HOSTILE = [
    "",
    "../etc",
    "a/b",
    "*",
    "?",
    "[a]",
    "a b",
    "a\x00",
    "x" * 40,
    "..",
    ".hidden",
    "UPPER",
    "é",
    None,
    5,
]


@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_hostile_names(bad: object) -> None:
    hv = {"hub1": with_fact(fact("hub1", running=(3,)))}
    with pytest.raises(AnsibleLookupError, match=r"multijhub\.cluster\.user_node: user name"):
        lookup().run([bad], variables=variables(hv))
    with pytest.raises(AnsibleLookupError):
        lookup().run([bad], variables={}, check_only=True)


def test_with_real_reports(root_server: Server) -> None:
    report = node_report("root", node="hub1", runtime_template=str(root_server.runtime_dir))
    hv = {"hub1": with_fact(report), "hub2": with_fact(dict(report, node="hub2", servers=[], evidence=[]))}
    (d,) = lookup().run(["root"], variables=variables(hv))
    assert (d["state"], d["nodes"]) == ("running", ["hub1"])
    assert d["servers"]["hub1"][0]["pid"] == root_server.pid
    assert 0 <= d["servers"]["hub1"][0]["uptime"] < 3600
