"""The restart benchmark's arithmetic: outage windows from polls, restarts counted in Ansible's output."""

from __future__ import annotations

import http.server
import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "restart_bench", Path(__file__).resolve().parents[3] / "bench" / "restart" / "restart_bench.py"
)
restart_bench = importlib.util.module_from_spec(SPEC)
sys.modules["restart_bench"] = restart_bench  # dataclasses look their module up there
SPEC.loader.exec_module(restart_bench)


def test_outage_windows_run_from_the_first_failed_poll_to_the_next_good_one():
    poller = restart_bench.Poller("s", "http://unused", 0.1)
    poller.samples = [(0.0, True), (0.1, False), (0.2, False), (0.3, True), (0.4, True), (0.5, False)]
    assert poller.outages(end=0.9) == pytest.approx([0.2, 0.4])
    poller.samples = [(0.0, True), (0.1, True)]
    assert poller.outages(end=0.2) == []


def test_restarts_are_counted_in_the_restart_handlers_only():
    output = "\n".join(
        [
            "TASK [multijhub.cluster.jupyterhub : Write jupyterhub_config.py] ***",
            "changed: [hub1]",
            "changed: [hub2]",
            "RUNNING HANDLER [multijhub.cluster.jupyterhub : Restart JupyterHub] ***",
            "changed: [hub1]",
            "changed: [hub2]",
            "RUNNING HANDLER [multijhub.cluster.redirector : Reload nginx] ***",
            "changed: [frontdoor1]",
            "PLAY RECAP ***",
        ]
    )
    assert restart_bench.restarts(output) == 2


def test_a_poller_sees_a_real_server_go_away(tmp_path):
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    poller = restart_bench.Poller("s", f"http://127.0.0.1:{server.server_address[1]}/", 0.05)
    poller.start()
    time.sleep(0.3)
    server.shutdown()
    server.server_close()
    time.sleep(0.3)
    poller.stop()
    windows = poller.outages(end=time.monotonic())
    assert len(windows) == 1 and windows[0] > 0.1
    assert any(ok for _at, ok in poller.samples)
