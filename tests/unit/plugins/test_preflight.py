"""site.yml's preflight (role common, preflight tasks) on this machine: hosts are local connections.

Issue 17: one user-name rule (a listed user the rule rejects is refused, named) and hubs
whose public URLs share host name and base URL are refused (browsers share cookies across ports).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PY = sys.executable

PLAYBOOK = """---
- name: Preflight only
  hosts: home:hubs:frontdoor
  gather_facts: false
  tasks:
    - name: The common role's preflight
      ansible.builtin.include_role:
        name: multijhub.cluster.common
        tasks_from: preflight
"""


def preflight(tmp_path: Path, hub_vars: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    lines = ["[home]", "homehost ansible_connection=local", "[hubs]"]
    for hub in ("hub1", "hub2"):
        lines.append(f"{hub} ansible_connection=local {hub_vars.get(hub, '')}")
    lines += ["[frontdoor]", "fd ansible_connection=local", "[all:vars]", f"ansible_python_interpreter={PY}"]
    (tmp_path / "inventory.ini").write_text("\n".join(lines) + "\n")
    (tmp_path / "preflight.yml").write_text(PLAYBOOK)
    return subprocess.run(
        [
            str(ROOT / ".venv/bin/ansible-playbook"),
            "-i",
            str(tmp_path / "inventory.ini"),
            str(tmp_path / "preflight.yml"),
            "-e",
            json.dumps({"multijhub_users": ["root"]}),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_a_consistent_inventory_passes(tmp_path: Path) -> None:
    proc = preflight(tmp_path, {})
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.parametrize("bad", ["Bad.User", "1abc", "../etc"])
def test_a_listed_user_the_rule_rejects_is_refused_by_name(tmp_path: Path, bad: str) -> None:
    proc = preflight(tmp_path, {}, "-e", json.dumps({"multijhub_users": ["root", bad]}))
    assert proc.returncode != 0
    assert f"user {json.dumps(bad)} in multijhub_users is not a valid user name" in proc.stdout, proc.stdout[
        -3000:
    ]
    assert "Preflight failed, nothing was changed" in proc.stdout


def test_the_sites_rule_widens_the_names(tmp_path: Path) -> None:
    wide = {"multijhub_users": ["root", "1abc"], "multijhub_username_pattern": "[a-z0-9_][a-z0-9_.-]{0,31}"}
    proc = preflight(tmp_path, {}, "-e", json.dumps(wide))
    assert "is not a valid user name" not in proc.stdout, proc.stdout[-3000:]
    assert "user 1abc does not exist on" in proc.stdout  # the rule passed; the usual checks go on


@pytest.mark.parametrize(
    ("hub_vars", "refused"),
    [
        (
            {
                "hub1": "jupyterhub_public_url=https://jupyter.example.org:8001",
                "hub2": "jupyterhub_public_url=https://Jupyter.example.org:8002/",
            },
            True,
        ),
        ({"hub1": "jupyterhub_port=8001", "hub2": "jupyterhub_port=8002"}, False),  # own host names
        (
            {
                "hub1": "jupyterhub_public_url=https://jupyter.example.org:8001",
                "hub2": "jupyterhub_public_url=https://jupyter.example.org:8002 jupyterhub_base_url=/two/",
            },
            False,
        ),
        (
            {
                "hub1": "jupyterhub_public_url=https://jupyter.example.org jupyterhub_base_url=/a",
                "hub2": "jupyterhub_public_url=https://jupyter.example.org:443 jupyterhub_base_url=/a/",
            },
            True,
        ),
    ],
)
def test_hubs_sharing_host_name_and_base_url_are_refused(
    tmp_path: Path, hub_vars: dict[str, str], refused: bool
) -> None:
    proc = preflight(tmp_path, hub_vars)
    if refused:
        assert proc.returncode != 0
        assert "hubs hub1 and hub2 have public URLs" in proc.stdout, proc.stdout[-3000:]
        assert "browsers share cookies across ports" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout[-3000:]


def test_the_hub_url_rule_is_the_cores(tmp_path: Path) -> None:
    """Issue 16: the preflight computes a hub's public URL with the hub_public_url filter (the core's
    rule, as the front door's node list): a public URL whose path disagrees with the base URL is refused."""
    proc = preflight(
        tmp_path,
        {
            "hub1": "jupyterhub_public_url=https://jupyter.example.org/x jupyterhub_base_url=/a",
            "hub2": "jupyterhub_port=8002",
        },
    )
    assert proc.returncode != 0
    assert "jupyterhub_public_url of hub1 (https://jupyter.example.org/x) has the path '/x'" in proc.stdout
