"""The drain command (what drain.yml runs on a front door): drain, down, undrain; check mode."""

from __future__ import annotations

import json

import pytest
from frontdoor_env import write_config
from multijhub_frontdoor.drain import main
from multijhub_frontdoor.store import SqliteStore


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, 1)
    monkeypatch.setenv("MULTIJHUB_FRONTDOOR_CONFIG", str(config))

    def call(*argv: str) -> tuple[int, dict]:
        code = main(list(argv))
        return code, json.loads(capsys.readouterr().out)

    call.store = lambda: SqliteStore(str(tmp_path / "assignments.sqlite3"))  # type: ignore[attr-defined]
    return call


def test_down_is_idempotent_checkable_and_undrain_clears_it(run):
    code, out = run("hub2", "--down", "--check")
    assert (code, out["changed"], out["down_nodes"], out["drained_nodes"]) == (0, True, ["hub2"], ["hub2"])
    assert run.store().down_nodes() == frozenset()  # check mode changed nothing
    assert run("hub2", "--down")[1]["changed"] is True
    assert run.store().down_nodes() == {"hub2"} and run.store().drained_nodes() == {"hub2"}
    assert run("hub2", "--down")[1]["changed"] is False
    assert run("hub2")[1]["changed"] is False  # a plain drain of a down node: nothing to do
    code, out = run("hub2", "--undrain", "--check")
    assert (out["changed"], out["down_nodes"], out["drained_nodes"]) == (True, [], [])
    assert run.store().down_nodes() == {"hub2"}
    assert run("hub2", "--undrain")[1]["changed"] is True
    assert run.store().down_nodes() == frozenset() and run.store().drained_nodes() == frozenset()
    assert run("hub2", "--undrain")[1]["changed"] is False


def test_unknown_node_changes_nothing(run):
    code, out = run("hub9", "--down")
    assert code == 2 and "unknown node" in out["error"]
    assert run("--list")[1] == {"drained_nodes": [], "down_nodes": []}
