"""The front door's drain command (multijhub-frontdoor-drain, what drain.yml runs): the drained set
is the configuration's drains and the store's, assembled in one place (placing.drained_nodes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from frontdoor_env import write_config

from multijhub.frontdoor import drain
from multijhub.frontdoor.placing import drained_nodes
from multijhub.frontdoor.store import SqliteStore


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = drain.main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_drain_undrain_and_list_include_the_inventorys_drains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, 1, nodes=("hub1", "hub2", "hub3"), drained=["hub3"])
    monkeypatch.setenv("MULTIJHUB_FRONTDOOR_CONFIG", str(config))
    assert run(capsys, "--list") == (0, {"drained_nodes": ["hub3"]})
    code, out = run(capsys, "hub1")
    assert code == 0 and out == {
        "node": "hub1",
        "drained": True,
        "changed": True,
        "drained_nodes": ["hub1", "hub3"],
    }
    code, out = run(capsys, "hub1")
    assert out["changed"] is False
    code, out = run(capsys, "hub3", "--undrain")  # the inventory's drain stays (undrain it there)
    assert out == {"node": "hub3", "drained": True, "changed": False, "drained_nodes": ["hub1", "hub3"]}
    assert run(capsys, "hub9") == (2, {"error": "unknown node 'hub9'"})
    store = SqliteStore(str(tmp_path / "assignments.sqlite3"))
    assert drained_nodes(["hub3"], store) == {"hub1", "hub3"}
    code, out = run(capsys, "hub1", "--undrain")
    assert out["drained_nodes"] == ["hub3"] and drained_nodes([], store) == frozenset()
