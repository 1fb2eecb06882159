"""Busy kernels count as activity (multijhub.hub.activity): the rule, and the extension on a real server app.

Needs jupyter_server (in the dev venv, as on the hubs).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

pytest.importorskip("jupyter_server", reason="jupyter_server is not installed in this venv")

from jupyter_server.serverapp import ServerApp
from traitlets.config import Config

from multijhub.hub import activity
from multijhub.hub.activity import SETTING, BusyKernelActivity, busy_since_activity, is_active

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("state", "silent_for", "max_silence", "expected"),
    [
        ("busy", 7200, 0, True),  # a two-hour silent cell still counts
        ("busy", 5, 0, True),
        ("idle", 0, 0, False),
        ("starting", 0, 0, False),
        ("dead", 0, 0, False),
        ("busy", 59, 60, True),
        ("busy", 61, 60, False),  # a runaway cell stops counting after max_silence
        ("busy", None, 60, False),
        ("busy", None, 0, True),
    ],
)
def test_the_rule(state, silent_for, max_silence, expected):
    last = None if silent_for is None else NOW - timedelta(seconds=silent_for)
    assert is_active(state, last, NOW, max_silence) is expected


def test_any_active_kernel_makes_now_the_activity():
    old = NOW - timedelta(hours=3)
    assert busy_since_activity([("idle", old), ("busy", old)], NOW, 0) == NOW
    assert busy_since_activity([("idle", old), ("idle", NOW)], NOW, 0) is None
    assert busy_since_activity([], NOW, 0) is None


class FakeKernels:
    def __init__(self, kernels):
        self.kernels = kernels

    def list_kernel_ids(self):
        return [*self.kernels, "gone"]

    def get_kernel(self, kernel_id):
        return self.kernels[kernel_id]


def test_refresh_sets_the_setting_only_while_a_kernel_is_busy():
    settings: dict = {}
    kernel = SimpleNamespace(execution_state="idle", last_activity=NOW - timedelta(hours=1))
    watcher = BusyKernelActivity(settings, FakeKernels({"k1": kernel}))
    assert watcher.refresh(NOW) is False
    assert SETTING not in settings
    kernel.execution_state = "busy"
    assert watcher.refresh(NOW) is True
    assert settings[SETTING] == NOW
    kernel.execution_state = "idle"
    later = NOW + timedelta(minutes=5)
    assert watcher.refresh(later) is False
    assert settings[SETTING] == NOW  # the last busy moment stays


def test_max_silence_comes_from_the_configuration():
    c = Config()
    c.BusyKernelActivity.max_silence = 120.0
    watcher = BusyKernelActivity({}, FakeKernels({}), config=c)
    assert watcher.max_silence == 120.0


def test_a_real_server_counts_a_busy_kernel_in_its_last_activity(tmp_path):
    """jupyter_server's own ServerWebApplication.last_activity() sees the extension's setting."""

    async def run():
        app = ServerApp(
            config=Config(
                {
                    "ServerApp": {
                        "jpserver_extensions": {"multijhub.hub.activity": True},
                        "open_browser": False,
                        "port": 0,
                        "root_dir": str(tmp_path),
                        "token": "unit-test-token",
                    }
                }
            )
        )
        app.runtime_dir = str(tmp_path / "runtime")
        app.initialize(argv=[], new_httpserver=False)
        try:
            watcher = app.web_app.settings["multijhub_busy_kernel_activity"]
            assert isinstance(watcher, BusyKernelActivity)
            before = app.web_app.last_activity()
            future = datetime.now(timezone.utc) + timedelta(hours=2)
            watcher.kernel_manager = FakeKernels(
                {"k": SimpleNamespace(execution_state="busy", last_activity=before)}
            )
            assert watcher.refresh(future)
            assert app.web_app.last_activity() == future
        finally:
            if watcher._callback is not None:
                watcher._callback.stop()

    asyncio.run(run())


def test_the_extension_point_names_this_module():
    assert activity._jupyter_server_extension_points() == [{"module": "multijhub.hub.activity"}]
