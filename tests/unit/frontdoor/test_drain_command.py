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
    assert run(capsys, "--list") == (0, {"drained_nodes": ["hub3"], "down_nodes": []})
    code, out = run(capsys, "hub1")
    assert code == 0 and out == {
        "node": "hub1",
        "drained": True,
        "down": False,
        "changed": True,
        "drained_nodes": ["hub1", "hub3"],
        "down_nodes": [],
    }
    code, out = run(capsys, "hub1")
    assert out["changed"] is False
    code, out = run(capsys, "hub3", "--undrain")  # the inventory's drain stays (undrain it there)
    assert out == {
        "node": "hub3",
        "drained": True,
        "down": False,
        "changed": False,
        "drained_nodes": ["hub1", "hub3"],
        "down_nodes": [],
    }
    assert run(capsys, "hub9") == (2, {"error": "unknown node 'hub9'"})
    store = SqliteStore(str(tmp_path / "assignments.sqlite3"))
    assert drained_nodes(["hub3"], store) == {"hub1", "hub3"}
    code, out = run(capsys, "hub1", "--undrain")
    assert out["drained_nodes"] == ["hub3"] and drained_nodes([], store) == frozenset()


def test_down_is_idempotent_checkable_and_undrain_clears_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, case 9: drain.yml -e down=true (and --check in check mode)."""
    monkeypatch.setenv("MULTIJHUB_FRONTDOOR_CONFIG", str(write_config(tmp_path, 1)))
    store = SqliteStore(str(tmp_path / "assignments.sqlite3"))
    code, out = run(capsys, "hub2", "--down", "--check")
    assert (code, out["changed"], out["down_nodes"], out["drained_nodes"]) == (0, True, ["hub2"], ["hub2"])
    assert store.down_nodes() == frozenset()  # check mode changed nothing
    assert run(capsys, "hub2", "--down")[1]["changed"] is True
    assert store.down_nodes() == {"hub2"} and store.drained_nodes() == {"hub2"}
    assert drained_nodes([], store) == {"hub2"}
    assert run(capsys, "hub2", "--down")[1]["changed"] is False
    assert run(capsys, "hub2")[1]["changed"] is False  # a plain drain of a down node: nothing to do
    code, out = run(capsys, "hub2", "--undrain", "--check")
    assert (out["changed"], out["down_nodes"], out["drained_nodes"]) == (True, [], [])
    assert store.down_nodes() == {"hub2"}
    assert run(capsys, "hub2", "--undrain")[1]["changed"] is True
    assert store.down_nodes() == frozenset() and drained_nodes([], store) == frozenset()
    assert run(capsys, "hub2", "--undrain")[1]["changed"] is False
    assert run(capsys, "hub9", "--down")[0] == 2
