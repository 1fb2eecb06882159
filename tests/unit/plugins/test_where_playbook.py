"""where.yml end to end on this machine: hubs are local connections, a broken hub fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from multijhub_servers import Server, shared_tmpdir, start_server, stop

ROOT = Path(__file__).resolve().parents[3]
PY = sys.executable


def inventory(path: Path, hubs: list[str], *, broken: bool = False) -> Path:
    lines = ["[hubs]"]
    lines += [f"{hub} ansible_connection=local" for hub in hubs]
    if broken:
        lines.append("hubbroken ansible_connection=local ansible_python_interpreter=/nonexistent/python3")
    lines += ["[home]", "homehost ansible_connection=local", "[all:vars]", f"ansible_python_interpreter={PY}"]
    inv = path / "inventory.ini"
    inv.write_text("\n".join(lines) + "\n")
    return inv


def where(inv: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inv), "where.yml", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-e", "user=../etc"],
        ["-e", '{"user": "a b"}'],
        ["-e", '{"user": 5}'],
        ["-e", "user=*"],
        ["-e", "node=nohub"],
        ["-e", "user=root", "-e", "node=hub1"],
    ],
)
def test_usage_errors_touch_no_host(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "answer.json"
    proc = where(inventory(tmp_path, ["hub1"]), *args, "-e", f"where_json={out}")
    assert proc.returncode == 2, proc.stdout
    assert "usage: ansible-playbook where.yml -e user=NAME" in proc.stdout
    assert "Ask the hubs" not in proc.stdout and "hub1" not in proc.stdout.split("PLAY RECAP")[1]
    assert json.loads(out.read_text())["state"] == "usage_error"


def test_not_running_then_running(tmp_path: Path, root_server: Server) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    inv = inventory(tmp_path, ["hub1", "hub2"])
    out = tmp_path / "d.json"
    proc = where(
        inv, "-e", "user=root", "-e", f"multijhub_runtime_template={empty}", "-e", f"where_json={out}"
    )
    assert proc.returncode == 2, proc.stdout
    assert "root: no running server; a new one would go to hub" in proc.stdout
    assert "GiB available)" in proc.stdout
    assert json.loads(out.read_text())["state"] == "not_running"

    one = inventory(tmp_path, ["hub1"])
    proc = where(one, "-e", "user=root", "-e", f"multijhub_runtime_template={root_server.runtime_dir}")
    assert proc.returncode == 0, proc.stdout
    assert f"root: running on hub1 (pid {root_server.pid}, up " in proc.stdout
    assert "-> http://hub1:8000/user/root/" in proc.stdout


def test_unknown_when_a_hub_fails(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "d.json"
    inv = inventory(tmp_path, ["hub1"], broken=True)
    proc = where(
        inv, "-e", "user=root", "-e", f"multijhub_runtime_template={empty}", "-e", f"where_json={out}"
    )
    assert proc.returncode == 4, proc.stdout
    assert "root: UNKNOWN - hubbroken did not answer; no server found on hub1" in proc.stdout
    decision = json.loads(out.read_text())
    assert decision["state"] == "unknown" and list(decision["unanswered"]) == ["hubbroken"]


def test_stale_listed_then_pruned(tmp_path: Path) -> None:
    base = shared_tmpdir()
    try:
        server = start_server(base)
        stop(server)
        inv = inventory(tmp_path, ["hub1", "hub2"])
        rt = f"multijhub_runtime_template={server.runtime_dir}"
        proc = where(inv, "-e", "user=root", "-e", rt)
        assert proc.returncode == 2, proc.stdout
        assert f"stale runtime files (no hub runs them): {server.file.name}" in proc.stdout
        assert "remove them with: ansible-playbook where.yml -e user=root -e prune=true" in proc.stdout
        assert server.file.exists()
        proc = where(inv, "-e", "user=root", "-e", rt, "-e", "prune=true")
        assert proc.returncode == 2, proc.stdout
        assert not server.file.exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_node_question(tmp_path: Path, root_server: Server) -> None:
    out = tmp_path / "n.json"
    proc = where(inventory(tmp_path, ["hub1"]), "-e", "node=hub1", "-e", f"where_json={out}")
    assert proc.returncode == 0, proc.stdout
    assert f"root pid {root_server.pid}" in proc.stdout
    assert json.loads(out.read_text())["state"] == "answered"
    proc = where(inventory(tmp_path, ["hub1"], broken=True), "-e", "node=hubbroken")
    assert proc.returncode == 4, proc.stdout
    assert "hubbroken: UNKNOWN - did not answer" in proc.stdout


def last_line(stdout: str) -> str:
    return [line for line in stdout.splitlines() if line.strip()][-1]


def test_a_name_no_hub_knows_is_an_answer_not_unknown(tmp_path: Path) -> None:
    out = tmp_path / "d.json"
    proc = where(
        inventory(tmp_path, ["hub1", "hub2"]), "-e", "user=multijhub_nosuchuser", "-e", f"where_json={out}"
    )
    assert proc.returncode == 2, proc.stdout
    assert last_line(proc.stdout) == "no such user multijhub_nosuchuser on hub1, hub2"
    assert "fatal:" not in proc.stdout and "[ERROR]" not in proc.stdout
    decision = json.loads(out.read_text())
    assert decision["state"] == "no_such_user" and decision["no_account"] == ["hub1", "hub2"]


def test_answers_read_as_answers(tmp_path: Path) -> None:
    """Not running (2) and unknown (4) end with the answer line, with no error of localhost."""
    empty = tmp_path / "empty"
    empty.mkdir()
    rt = f"multijhub_runtime_template={empty}"
    proc = where(inventory(tmp_path, ["hub1"]), "-e", "user=root", "-e", rt)
    assert proc.returncode == 2, proc.stdout
    assert last_line(proc.stdout).startswith("root: no running server; a new one would go to hub1")
    assert "fatal:" not in proc.stdout and "[ERROR]" not in proc.stdout

    proc = where(inventory(tmp_path, ["hub1"], broken=True), "-e", "user=root", "-e", rt)
    assert proc.returncode == 4, proc.stdout
    assert last_line(proc.stdout) == "root: UNKNOWN - hubbroken did not answer; no server found on hub1"
    assert "fatal: [localhost]" not in proc.stdout and "/dev/null" not in proc.stdout
    # The hub's real failure is still shown, and explained just before the answer.
    assert "hubbroken did not answer: failed:" in proc.stdout

    proc = where(inventory(tmp_path, ["hub1"], broken=True), "-e", "node=hubbroken")
    assert proc.returncode == 4, proc.stdout
    assert last_line(proc.stdout).startswith("hubbroken: UNKNOWN - did not answer")
    assert "fatal: [localhost]" not in proc.stdout


def test_the_sites_user_name_rule_is_where_ymls_rule(tmp_path: Path) -> None:
    """Issue 17: multijhub_username_pattern widens (or narrows) the names where.yml accepts."""
    inv = inventory(tmp_path, ["hub1"])
    proc = where(inv, "-e", "user=1abc")
    assert proc.returncode == 2 and "usage: ansible-playbook where.yml" in proc.stdout, proc.stdout
    proc = where(inv, "-e", "user=1abc", "-e", "multijhub_username_pattern=[a-z0-9_][a-z0-9_.-]{0,31}")
    assert "usage: ansible-playbook where.yml" not in proc.stdout, proc.stdout
    assert "Ask the hubs" in proc.stdout  # the name passed; hub1 was asked (no such user there)
    proc = where(inv, "-e", "user=root", "-e", "multijhub_username_pattern=juser[0-9]+")
    assert proc.returncode == 2 and "site's rule" in proc.stdout, proc.stdout


def test_drain_of_a_silent_hub_lists_it_as_unknown_without_a_made_up_error(tmp_path: Path) -> None:
    """Issue 16, case 9: drain.yml -e node=HUB for a hub that does not answer (no front door here).

    Even with Ansible's default callback (an installed collection without the checkout's
    ansible.cfg), the drain's listing says the hub did not answer, with no deliberate UNREACHABLE
    of localhost (the /dev/null temporary directory), and the drain's exit status is 0.
    """
    inv = inventory(tmp_path, ["hub1"], broken=True)
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inv), "drain.yml", "-e", "node=hubbroken"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"},
    )
    assert proc.returncode == 0, proc.stdout
    assert "hubbroken: UNKNOWN - did not answer" in proc.stdout
    assert "/dev/null" not in proc.stdout and "fatal: [localhost]" not in proc.stdout
