"""Kernels die first (multijhub.hub.kernels): the wrapper, the entry point, and a real kernel launch.

A real jupyter_client KernelManager starts a stand-in kernel (a Python process that sleeps) through
the provisioner found by its entry point; its oom_score_adj is read back from /proc.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest.importorskip("jupyter_client", reason="jupyter_client is not installed in this venv")

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from traitlets.config import Config, LoggingConfigurable

from multijhub.hub.kernels import (
    ENTRY_POINT_NAME,
    OomFirstProvisioner,
    read_oom_score_adj,
    wrap_command,
    wrapper_running,
)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="oom_score_adj is Linux only")
FILES = Path(__file__).resolve().parents[3] / "roles" / "jupyterhub" / "files"


def test_wrap_command_keeps_the_command_and_checks_the_value():
    cmd = ["python3", "-m", "ipykernel_launcher", "-f", "/tmp/k.json"]
    wrapped = wrap_command(cmd, 1000)
    assert wrapped[:2] == ["/bin/sh", "-c"]
    assert wrapped[3] == "1000"
    assert wrapped[4:] == cmd
    for bad in (1001, -1001, True):
        with pytest.raises(ValueError, match="oom_score_adj"):
            wrap_command(cmd, bad)
    with pytest.raises(ValueError, match="empty"):
        wrap_command([], 1000)


@linux
def test_the_wrapped_command_runs_with_the_score_and_the_same_pid(tmp_path):
    out = tmp_path / "out"
    code = (
        f"import os; open({str(out)!r}, 'w')"
        ".write(str(os.getpid()) + ' ' + open('/proc/self/oom_score_adj').read())"
    )
    proc = subprocess.run(wrap_command([sys.executable, "-c", code], 900), check=True, timeout=30)
    assert proc.returncode == 0
    pid, score = out.read_text().split()
    assert int(score) == 900
    assert pid  # the python process wrote its own PID: the shell exec'd it (no extra process)


@linux
def test_arguments_with_spaces_and_quotes_reach_the_kernel_unchanged(tmp_path):
    out = tmp_path / "argv.json"
    args = ["a b", "'q'", '"d"', "$HOME", "`x`", ""]
    code = f"import json, sys; open({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))"
    subprocess.run(wrap_command([sys.executable, "-c", code, *args], 1000), check=True, timeout=30)
    assert json.loads(out.read_text()) == args


def test_the_entry_point_is_registered_by_the_roles_metadata(monkeypatch):
    monkeypatch.syspath_prepend(str(FILES))
    group = entry_points(group="jupyter_client.kernel_provisioners")
    found = [ep for ep in group if ep.name == ENTRY_POINT_NAME]
    assert found, "no multijhub-oom-first entry point on the role's files path"
    assert found[0].load() is OomFirstProvisioner


@linux
def test_a_kernel_started_by_jupyter_client_gets_the_score(tmp_path, monkeypatch):
    """The single-user configuration's setting, on a real KernelManager: the kernel runs at 1000."""
    monkeypatch.syspath_prepend(str(FILES))
    spec = tmp_path / "kernels" / "standin"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-c", "import time; time.sleep(60)", "{connection_file}"],
                "display_name": "stand-in",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    KernelProvisionerFactory.clear_instance()
    c = Config()
    c.KernelProvisionerFactory.default_provisioner_name = ENTRY_POINT_NAME

    async def run():
        # As in a server: the MappingKernelManager (here a stand-in) is the kernel manager's parent,
        # and the provisioner factory takes its configuration from there.
        km = AsyncKernelManager(kernel_name="standin", parent=LoggingConfigurable(config=c))
        await km.start_kernel()
        try:
            assert isinstance(km.provisioner, OomFirstProvisioner)
            pid = km.provisioner.pid
            for _ in range(100):
                if not wrapper_running(pid):
                    break
                await asyncio.sleep(0.05)
            assert read_oom_score_adj(pid) == 1000
            assert not wrapper_running(pid)
        finally:
            await km.shutdown_kernel(now=True)
            KernelProvisionerFactory.clear_instance()

    asyncio.run(run())


def test_read_oom_score_adj_of_a_missing_process(tmp_path):
    assert read_oom_score_adj(123, proc_root=str(tmp_path)) is None
    assert wrapper_running(123, proc_root=str(tmp_path)) is True
