from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from multijhub.core.procs import (
    CLOCK_SKEW_MAX,
    check_file,
    is_jupyter_server,
    is_singleuser_server,
    list_jupyter_processes,
    read_process,
    redact_cmdline,
)
from multijhub.core.runtime import RuntimeFile, list_runtime_files
from multijhub_servers import Server, fake_proc, shared_tmpdir, start_server, stop


def spawn_sleep() -> subprocess.Popen[bytes]:
    """A real ``sleep 30``, returned once it has exec'd (its cmdline is visible)."""
    child = subprocess.Popen(["sleep", "30"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info = read_process(child.pid)
        if info is not None and info.cmdline == ("sleep", "30"):
            return child
        time.sleep(0.01)
    child.kill()
    raise RuntimeError("sleep did not start")


def runtime_file(path: Path) -> RuntimeFile:
    (found,) = [f for f in list_runtime_files(str(path.parent)) if f.name == path.name]
    return found


def test_read_process_of_this_process() -> None:
    info = read_process(os.getpid())
    assert info is not None
    assert info.uid == os.getuid()
    assert info.start_time <= time.time()
    assert time.time() - info.start_time < 24 * 3600
    assert "python" in os.path.basename(info.cmdline[0])


def test_read_process_gone() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert read_process(child.pid) is None
    assert read_process(0) is None
    assert read_process(-1) is None
    assert read_process(True) is None  # type: ignore[arg-type]


def test_start_time_is_accurate() -> None:
    before = time.time()
    child = spawn_sleep()
    try:
        info = read_process(child.pid)
        assert info is not None
        assert abs(info.start_time - before) < 1.5
        assert info.cmdline == ("sleep", "30")
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (["/opt/venv/bin/python3", "/opt/venv/bin/jupyterhub-singleuser"], True),
        (["/usr/bin/python3.11", "/usr/local/bin/jupyter-lab", "--no-browser"], True),
        (["jupyter-lab"], True),
        (["/usr/local/bin/jupyter-server"], True),
        (["/usr/bin/python3", "/usr/bin/jupyter-notebook"], True),
        (["python", "-m", "jupyterlab"], True),
        (["python3", "-mjupyter_server"], True),
        (["python3", "-u", "-X", "dev", "/x/jupyter-labhub"], True),
        (["python3", "-m", "ipykernel_launcher", "-f", "/x/kernel-1.json"], False),
        (["python3", "-c", "jupyter-lab"], False),
        (["python3", "/x/not-jupyter-lab"], False),
        (["bash", "/usr/bin/jupyter-lab"], False),
        (["sleep", "30"], False),
        (["jupyter-lab.evil"], False),
        (["python3"], False),
        ([], False),
    ],
)
def test_is_jupyter_server(cmdline: list[str], expected: bool) -> None:
    assert is_jupyter_server(cmdline) is expected


def test_redact_cmdline() -> None:
    assert redact_cmdline(["jupyter-lab", "--IdentityProvider.token=abc", "--port=1"]) == [
        "jupyter-lab",
        "--IdentityProvider.token=********",
        "--port=1",
    ]


def test_real_server_is_running(root_server: Server) -> None:
    ev = check_file(runtime_file(root_server.file), 0)
    assert ev.verdict == "running", ev.reason
    assert ev.process is not None and ev.process.pid == root_server.pid
    assert ev.kind == "jpserver"
    assert root_server.pid in [p.pid for p in list_jupyter_processes()]


def test_nbserver_name_for_a_real_server(root_server: Server) -> None:
    nb = root_server.runtime_dir / f"nbserver-{root_server.pid}.json"
    nb.write_text("{}")
    try:
        ev = check_file(runtime_file(nb), 0)
        assert (ev.kind, ev.verdict) == ("nbserver", "running")
    finally:
        nb.unlink()


def test_wrong_uid_is_not_here(root_server: Server) -> None:
    ev = check_file(runtime_file(root_server.file), 1234)
    assert ev.verdict == "not-here"
    assert "belongs to uid 0, not 1234" in ev.reason


def test_process_of_another_user_with_the_pid(nobody_server: Server, shared_dir: Path) -> None:
    # root's runtime dir holds a file named after nobody's real server PID
    f = shared_dir / f"jpserver-{nobody_server.pid}.json"
    f.write_text("{}")
    ev = check_file(runtime_file(f), 0)
    assert ev.verdict == "not-here"
    assert "not 0" in ev.reason
    own = check_file(runtime_file(nobody_server.file), nobody_server.uid)
    assert own.verdict == "running", own.reason


def test_pid_reused_by_a_later_process(root_server: Server, shared_dir: Path) -> None:
    info = read_process(root_server.pid)
    assert info is not None
    f = shared_dir / f"jpserver-{root_server.pid}.json"
    f.write_text("{}")
    # The file is older than the process by more than any clock skew: another process has the PID.
    old = info.start_time - CLOCK_SKEW_MAX - 60
    os.utime(f, (old, old))
    ev = check_file(runtime_file(f), 0)
    assert ev.verdict == "not-here"
    assert "PID reused" in ev.reason


@pytest.mark.parametrize("skew", [10, 120, 600])
def test_clock_skew_of_minutes_never_makes_a_live_server_stale(root_server: Server, skew: int) -> None:
    """The home host's clock behind the node's: the file looks written before the process started."""
    info = read_process(root_server.pid)
    assert info is not None
    before = root_server.file.stat()
    os.utime(root_server.file, (info.start_time - skew, info.start_time - skew))
    try:
        ev = check_file(runtime_file(root_server.file), 0)
    finally:
        os.utime(root_server.file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert ev.verdict == "running", ev.reason
    assert ev.started_after_file == pytest.approx(skew, abs=1.5)
    assert "clock skew" in ev.reason


def test_pid_of_a_process_that_is_no_jupyter_server(shared_dir: Path) -> None:
    child = spawn_sleep()
    try:
        f = shared_dir / f"jpserver-{child.pid}.json"
        f.write_text("{}")
        ev = check_file(runtime_file(f), os.getuid())
        assert ev.verdict == "not-here"
        assert "not a Jupyter server: sleep 30" in ev.reason
    finally:
        child.kill()
        child.wait()


def test_stale_file_after_sigkill() -> None:
    base = shared_tmpdir()
    try:
        server = start_server(base)
        stop(server)  # SIGKILL: jupyter cannot remove its file
        assert server.file.exists()
        ev = check_file(runtime_file(server.file), 0)
        assert ev.verdict == "not-here"
        assert ev.process is None or ev.reason.endswith("(PID reused)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_fake_proc_root_uid_mismatch_and_comm_with_parens(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    fake_proc(
        tmp_path,
        4242,
        uid=1001,
        cmdline=["/v/bin/python3", "/v/bin/jupyterhub-singleuser"],
        start_ticks=10 * ticks,
        btime=1000,
    )
    info = read_process(4242, str(tmp_path))
    assert info is not None
    assert (info.uid, info.start_time) == (1001, 1010.0)
    f = RuntimeFile("jpserver-4242.json", 4242, "jpserver", 1010.5)
    assert check_file(f, 1001, str(tmp_path)).verdict == "running"
    assert check_file(f, 1002, str(tmp_path)).verdict == "not-here"
    skewed = check_file(RuntimeFile("jpserver-4242.json", 4242, "jpserver", 1008.0), 1001, str(tmp_path))
    assert (skewed.verdict, skewed.started_after_file) == ("running", 2.0)
    early = RuntimeFile("jpserver-4242.json", 4242, "jpserver", 1010.0 - CLOCK_SKEW_MAX - 1)
    assert check_file(early, 1001, str(tmp_path)).verdict == "not-here"
    assert [p.pid for p in list_jupyter_processes(str(tmp_path))] == [4242]


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (["/v/bin/python3", "/v/bin/jupyterhub-singleuser", "--port=1"], True),
        (["jupyterhub-singleuser"], True),
        (["/usr/bin/python3", "-m", "jupyterhub.singleuser"], True),
        (["/v/bin/python3", "/v/bin/jupyter-lab"], False),
        (["/v/bin/jupyter-server"], False),
        (["/v/bin/python3", "-m", "ipykernel_launcher", "-f", "k.json"], False),
        ([], False),
    ],
)
def test_is_singleuser_server(cmdline: list[str], expected: bool) -> None:
    assert is_singleuser_server(cmdline) is expected
