"""Issue 7: draining a hub with drain.yml (the front doors' store) and with the inventory."""

from __future__ import annotations

import pytest
from conftest import recap


@pytest.fixture
def undrain_hub2(playbook):
    yield
    playbook.run("drain.yml", "-e", "node=hub2", "-e", "undrain=true")


def test_drain_playbook_marks_the_node_lists_its_users_and_is_idempotent(playbook, undrain_hub2):
    drained = playbook.run("drain.yml", "-e", "node=hub2")
    assert drained.returncode == 0, drained.stdout[-3000:]
    assert 'drained nodes now ["hub2"]' in drained.stdout
    assert recap(drained.stdout)["frontdoor1"]["changed"] == 1
    again = playbook.run("drain.yml", "-e", "node=hub2")
    assert recap(again.stdout)["frontdoor1"]["changed"] == 0, again.stdout[-2000:]
    undrained = playbook.run("drain.yml", "-e", "node=hub2", "-e", "undrain=true")
    assert "drained nodes now []" in undrained.stdout
    assert recap(undrained.stdout)["frontdoor1"]["changed"] == 1


def test_drain_playbook_refuses_an_unknown_node_and_needs_one(playbook):
    unknown = playbook.run("drain.yml", "-e", "node=nosuchhub")
    assert unknown.returncode != 0
    assert "is not a host of the hubs group" in unknown.stdout
    missing = playbook.run("drain.yml")
    assert missing.returncode != 0
    assert "usage: ansible-playbook drain.yml -e node=HUB" in missing.stdout


def test_an_inventory_drain_reaches_the_front_door_configuration(playbook, frontdoor, tmp_path):
    extra = tmp_path / "drained.ini"
    extra.write_text("[hubs]\nhub2 multijhub_drained=true\n")
    try:
        result = playbook.run("site.yml", "-i", str(extra), "--tags", "redirector")
        assert result.returncode == 0, result.stdout[-3000:]
        conf = frontdoor.file("/etc/multijhub/frontdoor/frontdoor.toml").content_string
        assert 'drained = ["hub2"]' in conf
    finally:
        restored = playbook.run("site.yml", "--tags", "redirector")
        assert restored.returncode == 0, restored.stdout[-3000:]
    assert "drained = []" in frontdoor.file("/etc/multijhub/frontdoor/frontdoor.toml").content_string
