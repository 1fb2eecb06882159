"""The two molecule scenarios over one cluster: make demo tries what a person would, make test
keeps what makes its tests fast. Both are molecule/cluster.yml with a few settings of their own,
merged as molecule merges them (molecule -c molecule/cluster.yml: deep merge, scenario last)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE_DEFAULTS = yaml.safe_load((REPO / "roles/jupyterhub/defaults/main.yml").read_text())


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def scenario(name: str) -> dict[str, Any]:
    base = yaml.safe_load((REPO / "molecule/cluster.yml").read_text())
    return merge(base, yaml.safe_load((REPO / "molecule" / name / "molecule.yml").read_text()))


def hub_settings(name: str) -> dict[str, Any]:
    """What the hubs run with in a scenario: the role's defaults under the inventory's values."""
    group_vars = scenario(name)["provisioner"]["inventory"]["group_vars"]
    return {**ROLE_DEFAULTS, **group_vars.get("all", {}), **group_vars.get("hubs", {})}


def gib(size: str) -> float:
    units = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
    return float(size[:-1]) * units[size[-1].upper()]


def test_the_demo_keeps_an_idle_server_for_longer_than_a_coffee_break() -> None:
    demo = hub_settings("demo")
    assert demo["jupyterhub_cull_timeout"] == ROLE_DEFAULTS["jupyterhub_cull_timeout"] >= 3600
    assert demo["jupyterhub_cull_every"] == ROLE_DEFAULTS["jupyterhub_cull_every"]


def test_the_demo_runs_a_notebook_that_imports_numpy_and_pandas() -> None:
    demo = hub_settings("demo")
    assert 1 <= gib(demo["jupyterhub_mem_limit"]) <= 4
    names = {spec.split("==")[0] for spec in demo["jupyterhub_extra_pip_packages"]}
    assert {"numpy", "pandas"} <= names
    # Pinned, since the hubs install them offline from the wheelhouse.
    assert all("==" in spec for spec in demo["jupyterhub_extra_pip_packages"])


def test_make_test_keeps_its_short_timeouts_and_small_limit() -> None:
    test = hub_settings("default")
    assert test["jupyterhub_cull_timeout"] <= 60
    assert gib(test["jupyterhub_mem_limit"]) < 0.5
    assert test["jupyterhub_extra_pip_packages"] == []


@pytest.mark.parametrize("name", ["default", "demo"])
def test_both_scenarios_run_the_same_cluster(name: str) -> None:
    merged = scenario(name)
    assert [p["name"] for p in merged["platforms"]] == ["home1", "hub1", "hub2", "frontdoor1", "outsider"]
    assert (REPO / "molecule" / name / merged["provisioner"]["playbooks"]["prepare"]).resolve() == (
        REPO / "molecule/default/prepare.yml"
    )
    own = yaml.safe_load((REPO / "molecule" / name / "molecule.yml").read_text())
    assert "platforms" not in own and "driver" not in own  # shared, not copied
