from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from multijhub_core.probe import main
from multijhub_servers import CORE_DIR, Server


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, object]]:
    code = main(argv)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return code, json.loads(out)


def test_probe_reports(
    root_server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_ORIGINAL_COMMAND", raising=False)
    code, data = run(capsys, ["--node", "hub1", "--runtime-template", str(root_server.runtime_dir), "root"])
    assert code == 0
    assert data["node"] == "hub1"
    assert [s["pid"] for s in data["servers"]] == [root_server.pid]  # type: ignore[index]


@pytest.mark.parametrize("bad", ["../etc", "juser1; id", "", "a b", "*"])
def test_probe_hostile_ssh_command(
    bad: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", bad)
    code, data = run(capsys, ["root"])  # the forced command's argv does not win over the request
    assert code == 2
    assert data["kind"] == "invalid_username"


def test_probe_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SSH_ORIGINAL_COMMAND", raising=False)
    assert run(capsys, [])[0] == 2
    assert run(capsys, ["multijhub_nosuchuser"]) == (
        2,
        {"error": "no such user: 'multijhub_nosuchuser'", "kind": "unknown_user"},
    )
    (tmp_path / "f").write_text("")
    code, data = run(capsys, ["--runtime-template", str(tmp_path / "f"), "root"])
    assert (code, data["kind"]) == (1, "node_error")


def test_probe_as_copied_package(tmp_path: Path, root_server: Server) -> None:
    """The redirector copies the core verbatim as multijhub_core: it must run without Ansible."""
    shutil.copytree(CORE_DIR, tmp_path / "multijhub_core", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [
            sys.executable,
            "-E",
            "-s",
            "-m",
            "multijhub_core.probe",
            "--runtime-template",
            str(root_server.runtime_dir),
        ],
        cwd=tmp_path,
        env={"SSH_ORIGINAL_COMMAND": "root", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [s["pid"] for s in json.loads(proc.stdout)["servers"]] == [root_server.pid]
    bad = subprocess.run(
        [sys.executable, "-E", "-s", "-m", "multijhub_core.probe"],
        cwd=tmp_path,
        env={"SSH_ORIGINAL_COMMAND": "../etc"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["kind"] == "invalid_username"
