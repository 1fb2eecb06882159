"""Who still runs old code after an upgrade (versions.py, and node_servers_report's fields)."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

from multijhub.core.report import node_servers_report
from multijhub.core.versions import installed_packages, outdated, server_prefix
from multijhub_servers import Server, fake_proc


def _dist_info(prefix: Path, name: str, ver: str, installed_at: float) -> None:
    info = prefix / "lib" / "python3.11" / "site-packages" / f"{name}-{ver}.dist-info"
    info.mkdir(parents=True)
    (info / "RECORD").write_text("")
    os.utime(info / "RECORD", (installed_at, installed_at))
    os.utime(info, (installed_at, installed_at))


def test_server_prefix_from_the_command_line():
    assert server_prefix(["/opt/v/bin/python3", "/opt/v/bin/jupyterhub-singleuser"]) == "/opt/v"
    assert server_prefix(["/usr/bin/python3", "/opt/v/bin/jupyter-lab"]) == "/opt/v"
    assert server_prefix(["/opt/w/bin/jupyter-lab"]) == "/opt/w"
    assert server_prefix(["python3", "-m", "jupyterlab"]) is None
    assert server_prefix(["jupyter-lab"]) is None
    assert server_prefix([]) is None


def test_installed_packages_and_what_came_after_a_start(tmp_path):
    _dist_info(tmp_path, "jupyterlab", "4.6.7", 2000.0)
    _dist_info(tmp_path, "jupyter_server", "2.21.1", 500.0)
    _dist_info(tmp_path, "tornado", "6.6.1", 2000.0)  # not watched
    found = installed_packages(str(tmp_path))
    assert found == {
        "jupyterlab": {"version": "4.6.7", "installed_at": 2000.0},
        "jupyter_server": {"version": "2.21.1", "installed_at": 500.0},
    }
    assert outdated(1000.0, found) == ["jupyterlab 4.6.7"]
    assert outdated(2500.0, found) == []
    assert outdated(1999.5, found) == []  # within the clock's resolution: not claimed
    assert installed_packages(str(tmp_path / "missing")) == {}


def test_node_servers_report_names_a_server_older_than_its_packages(tmp_path):
    proc, prefix = tmp_path / "proc", tmp_path / "venv"
    proc.mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    # Started at 1000 + 100 s; jupyterlab installed at 1500 (an upgrade), jupyter_server at 900.
    cmd = [f"{prefix}/bin/python3", f"{prefix}/bin/jupyterhub-singleuser"]
    fake_proc(proc, 7, uid=0, cmdline=cmd, start_ticks=100 * ticks, btime=1000)
    _dist_info(prefix, "jupyterlab", "4.6.7", 1500.0)
    _dist_info(prefix, "jupyter_server", "2.21.1", 900.0)
    report = node_servers_report(node="hubX", proc_root=str(proc))
    [entry] = report["processes"]
    assert entry["installed"] == {"jupyterlab": "4.6.7", "jupyter_server": "2.21.1"}
    assert entry["outdated"] == ["jupyterlab 4.6.7"]


def test_a_real_server_is_current(root_server: Server):
    report = node_servers_report()
    [entry] = [p for p in report["processes"] if p["pid"] == root_server.pid]
    assert entry["installed"]["jupyter_server"] == version("jupyter_server")
    assert entry["outdated"] == []
