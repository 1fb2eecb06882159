"""gunicorn settings the app needs: ``gunicorn --config python:multijhub.frontdoor.gunicorn_conf``.

With several workers, prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
set by the systemd unit to an empty directory on local disk, recreated at every start) adds
up every worker's counters at ``/metrics``. When a worker exits, ``mark_process_dead``
removes its live-gauge files; its counters stay in the sum.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:  # noqa: ANN401 - gunicorn's Arbiter and Worker
    """gunicorn hook in the master, after a worker exited."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
