from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from multijhub.core import probe as probe_mod
from multijhub.core.probe import MAX_REQUEST, main, serve
from multijhub_servers import Server


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
    """The installed package's probe (as the hubs run it): without Ansible, without the environment."""
    proc = subprocess.run(
        [
            sys.executable,
            "-E",
            "-s",
            "-m",
            "multijhub.core.probe",
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
        [sys.executable, "-E", "-s", "-m", "multijhub.core.probe"],
        cwd=tmp_path,
        env={"SSH_ORIGINAL_COMMAND": "../etc"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["kind"] == "invalid_username"


def serve_lines(options: dict[str, str], data: bytes) -> tuple[int, list[dict[str, object]]]:
    out = io.BytesIO()
    code = serve(options, io.BytesIO(data), out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_serve_answers_each_line_in_order(root_server: Server) -> None:
    """A session: one JSON line per request line, hostile names refused, the session goes on."""
    options = {"--node": "hub1", "--runtime-template": str(root_server.runtime_dir)}
    code, docs = serve_lines(options, b"root\n--ping\n../etc\nmultijhub_nosuchuser\nroot\n")
    assert code == 0
    assert len(docs) == 5
    assert [s["pid"] for s in docs[0]["servers"]] == [root_server.pid]  # type: ignore[index]
    assert docs[1] == {"pong": True, "node": "hub1"}
    assert docs[2]["kind"] == "invalid_username"
    assert docs[3]["kind"] == "unknown_user"
    assert docs[4]["user"] == "root" and docs[4]["node"] == "hub1"


@pytest.mark.parametrize("line", [b"a" * (MAX_REQUEST + 1) + b"\n", b"x" * 5000])
def test_serve_ends_on_an_overlong_line(line: bytes) -> None:
    code, docs = serve_lines({}, line + b"root\n")
    assert code == 2
    assert docs == [{"error": f"request longer than {MAX_REQUEST} bytes", "kind": "usage"}]


def test_serve_rescans_the_process_table_only_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[int] = []
    monkeypatch.setattr(probe_mod, "list_jupyter_processes", lambda: scans.append(1) or [1, 2, 3])
    now = [100.0]
    count = probe_mod.cached_count(ttl=5.0, clock=lambda: now[0])
    assert (count(), count(), len(scans)) == (3, 3, 1)
    now[0] += 4.9
    assert (count(), len(scans)) == (3, 1)
    now[0] += 0.2
    assert (count(), len(scans)) == (3, 2)


def test_serve_session_over_pipes(root_server: Server, tmp_path: Path) -> None:
    """The installed core as sshd runs it: SSH_ORIGINAL_COMMAND=--serve, requests on stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-E", "-s", "-m", "multijhub.core.probe", "--node", "hub1",
         "--runtime-template", str(root_server.runtime_dir)],
        cwd=tmp_path,
        env={"SSH_ORIGINAL_COMMAND": "--serve", "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    for _ in range(3):  # each answer arrives before the next request is sent
        proc.stdin.write(b"root\n")
        proc.stdin.flush()
        doc = json.loads(proc.stdout.readline())
        assert [s["pid"] for s in doc["servers"]] == [root_server.pid]
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == b""


def test_a_session_whose_reader_went_away_ends_quietly() -> None:
    """The front door closed the session: no traceback on the hub (found by a breaker)."""
    reader, writer = os.pipe()
    os.close(reader)
    with subprocess.Popen(
        [sys.executable, "-m", "multijhub.core.probe", "--serve"],
        stdin=subprocess.PIPE,
        stdout=writer,
        stderr=subprocess.PIPE,
    ) as proc:
        os.close(writer)
        _out, err = proc.communicate(b"nobody\n" * 100, timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err
