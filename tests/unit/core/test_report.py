from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from multijhub.core.report import meminfo, node_report, node_servers_report
from multijhub.core.runtime import MAX_SERVER_FILES, RuntimeDirError
from multijhub.core.usernames import InvalidUsername, UnknownUser
from multijhub_servers import Server, fake_proc, shared_tmpdir, start_server, stop


def test_node_report_with_a_real_server(root_server: Server) -> None:
    report = node_report("root", node="hub9", runtime_template=str(root_server.runtime_dir))
    json.dumps(report)  # JSON-serialisable
    assert report["node"] == "hub9"
    assert (report["user"], report["uid"]) == ("root", 0)
    assert report["runtime_dir"] == str(root_server.runtime_dir)
    assert [s["pid"] for s in report["servers"]] == [root_server.pid]
    assert report["servers"][0]["process"]["cmdline"][1].endswith("jupyter-server")
    assert report["mem_total"] >= report["mem_available"] > 0
    assert report["singleuser_servers"] >= 1
    assert set(report) >= {"evidence", "servers", "mem_available", "mem_total", "singleuser_servers"}


def test_node_report_of_another_user(nobody_server: Server) -> None:
    report = node_report("nobody", runtime_template=str(nobody_server.runtime_dir))
    assert [s["pid"] for s in report["servers"]] == [nobody_server.pid]
    # the same directory read for root: the process belongs to nobody, so not root's server
    as_root = node_report("root", runtime_template=str(nobody_server.runtime_dir))
    assert as_root["servers"] == []
    assert "belongs to uid" in as_root["evidence"][0]["reason"]


def test_stale_file_in_report_after_sigkill() -> None:
    base = shared_tmpdir()
    try:
        server = start_server(base)
        stop(server)
        report = node_report("root", runtime_template=str(server.runtime_dir))
        assert report["servers"] == []
        assert [e["file"] for e in report["evidence"]] == [server.file.name]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_node_report_rejects_before_any_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "scandir", lambda *_a: pytest.fail("listed a directory"))
    for bad in ("../etc", "a/b", "*", ""):
        with pytest.raises(InvalidUsername):
            node_report(bad)
    with pytest.raises(UnknownUser):
        node_report("multijhub_nosuchuser")


def test_node_report_unlistable_dir(shared_dir: Path) -> None:
    (shared_dir / "file").write_text("")
    with pytest.raises(RuntimeDirError):
        node_report("root", runtime_template=str(shared_dir / "file"))


def test_meminfo_and_fake_proc(tmp_path: Path) -> None:
    fake_proc(tmp_path, 7, uid=0, cmdline=["jupyter-lab"], start_ticks=0, btime=1)
    assert meminfo(str(tmp_path)) == (5000000 * 1024, 8000000 * 1024)
    report = node_servers_report(node="hubX", proc_root=str(tmp_path))
    assert report["node"] == "hubX"
    assert [(p["user"], p["pid"]) for p in report["processes"]] == [("root", 7)]
    assert report["users"] == ["root"]


def test_node_servers_report_real(root_server: Server, nobody_server: Server) -> None:
    report = node_servers_report()
    by_pid = {p["pid"]: p["user"] for p in report["processes"]}
    assert by_pid[root_server.pid] == "root"
    assert by_pid[nobody_server.pid] == "nobody"
    assert {"root", "nobody"} <= set(report["users"])


def test_the_users_singleuser_servers_are_found_without_a_runtime_file(tmp_path: Path) -> None:
    """A server whose file is gone (``jupyter server list`` on another node deleted it)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    singleuser = ["/opt/venv/bin/python3", "/opt/venv/bin/jupyterhub-singleuser", "--port=8123"]
    fake_proc(proc, 4242, uid=0, cmdline=singleuser, start_ticks=10 * ticks, btime=1000)
    fake_proc(proc, 4343, uid=0, cmdline=["/opt/venv/bin/jupyter-lab"], start_ticks=10 * ticks, btime=1000)
    fake_proc(proc, 4444, uid=65534, cmdline=singleuser, start_ticks=10 * ticks, btime=1000)
    empty = tmp_path / "runtime"
    empty.mkdir()
    report = node_report("root", runtime_template=str(empty), proc_root=str(proc), user_processes=True)
    # Only root's JupyterHub single-user server: not another user's, not a hand-started jupyter-lab.
    assert [p["pid"] for p in report["processes"]] == [4242]
    assert report["processes"][0]["start_time"] == 1010.0
    assert report["evidence"] == [] and "runtime_error" not in report
    # The probe's default: no process scan while the runtime directory answers.
    assert "processes" not in node_report("root", runtime_template=str(empty), proc_root=str(proc))


def test_an_unlistable_runtime_directory_is_reported_not_raised(tmp_path: Path) -> None:
    """chmod 700 on a home breaks the service group's grant: the node still answers."""
    base = shared_tmpdir()
    try:
        private = base / "private"
        private.mkdir(mode=0o700)
        # Everything is imported as root, then the process becomes nobody (as the probe account is
        # not root), which the runtime directory's mode 0700 keeps out.
        code = (
            "import encodings.ascii, json, os, pwd, sys\n"
            "from multijhub.core.report import node_report\n"
            "pw = pwd.getpwnam('nobody'); os.setgroups([]); os.setgid(pw.pw_gid); os.setuid(pw.pw_uid)\n"
            "print(json.dumps(node_report('root', runtime_template=sys.argv[2])))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent), str(private / "runtime")],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        report = json.loads(out.stdout)
        assert "permission denied" in report["runtime_error"]
        assert report["evidence"] == [] and isinstance(report["processes"], list)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_flooded_runtime_directory_is_reported_not_raised(tmp_path: Path) -> None:
    """The answer then rests on the user's processes and the hub, as for a broken grant."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for pid in range(1, MAX_SERVER_FILES + 2):
        (runtime / f"jpserver-{pid}.json").write_text("")
    report = node_report("root", runtime_template=str(runtime))
    assert "too many files" in report["runtime_error"]
    assert report["evidence"] == [] and isinstance(report["processes"], list)
    assert len(json.dumps(report)) < 100_000
