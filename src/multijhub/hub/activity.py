"""Busy kernels are not idle: a jupyter_server extension for single-user servers.

JupyterHub's idle culler stops a server whose last activity, as the server reports it to the hub,
is older than its timeout. jupyter_server counts as activity API requests, terminal use and
kernel *messages*; a cell that computes for hours without printing sends none, so its server
looked idle and was culled mid-run. This extension counts a kernel that is executing code as
active: while any kernel's ``execution_state`` is ``busy`` it refreshes the server setting
``multijhub_busy_kernels_last_activity``, and jupyter_server's ``ServerWebApplication.last_activity()``
takes the latest of every setting whose name ends in ``_last_activity``; jupyterhub-singleuser
reports that to the hub every ``JUPYTERHUB_ACTIVITY_INTERVAL`` seconds, where the culler reads it.

The rule, in one place (``busy_since_activity``): a kernel whose execution state is ``busy`` is
active; with ``BusyKernelActivity.max_silence`` > 0, only until it has sent nothing for that
many seconds (a limit for runaway cells); 0 means however long the cell runs.

Enabled in the single-user servers' configuration (``ServerApp.jpserver_extensions``) written
by the jupyterhub role.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from tornado.ioloop import PeriodicCallback
from traitlets import Float
from traitlets.config import LoggingConfigurable

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

SETTING = "multijhub_busy_kernels_last_activity"


def is_active(
    execution_state: str, last_activity: datetime | None, now: datetime, max_silence: float
) -> bool:
    """Whether one kernel counts as activity ``now`` (``last_activity``: its last message, aware UTC)."""
    if execution_state != "busy":
        return False
    if max_silence <= 0:
        return True
    if last_activity is None:
        return False
    return (now - last_activity).total_seconds() < max_silence


def busy_since_activity(
    kernels: Iterable[tuple[str, datetime | None]], now: datetime, max_silence: float
) -> datetime | None:
    """``now`` when any kernel (``(execution_state, last_activity)`` pairs) is active, else None."""
    return now if any(is_active(state, last, now, max_silence) for state, last in kernels) else None


class KernelManagerLike(Protocol):
    """What is used of jupyter_server's MappingKernelManager."""

    def list_kernel_ids(self) -> list[str]: ...

    def get_kernel(self, kernel_id: str) -> Any: ...  # noqa: ANN401 (a KernelManager)


class BusyKernelActivity(LoggingConfigurable):
    """Refreshes ``SETTING`` in the server's settings while a kernel executes code."""

    interval = Float(
        5.0,
        min=0.5,
        config=True,
        help="Seconds between checks of the kernels' execution states.",
    )
    max_silence = Float(
        0.0,
        min=0.0,
        config=True,
        help=(
            "A busy kernel stops counting as activity after this many seconds without any message "
            "(0: a busy kernel always counts, however long the cell runs)."
        ),
    )

    def __init__(self, settings: dict[str, Any], kernel_manager: KernelManagerLike, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.kernel_manager = kernel_manager
        self._callback: PeriodicCallback | None = None

    def kernel_states(self) -> list[tuple[str, datetime | None]]:
        """(execution_state, last_activity) of every kernel of this server."""
        states = []
        for kernel_id in list(self.kernel_manager.list_kernel_ids()):
            try:
                kernel = self.kernel_manager.get_kernel(kernel_id)
            except KeyError:  # shut down meanwhile
                continue
            states.append((getattr(kernel, "execution_state", ""), getattr(kernel, "last_activity", None)))
        return states

    def refresh(self, now: datetime | None = None) -> bool:
        """Set ``SETTING`` to now when a kernel is active; True when it did."""
        now = now or datetime.now(timezone.utc)
        active = busy_since_activity(self.kernel_states(), now, self.max_silence)
        if active is not None:
            self.settings[SETTING] = active
        return active is not None

    def _refresh_logged(self) -> None:
        try:
            self.refresh()
        except Exception:  # a check must never stop the next one
            self.log.exception("multijhub: checking the kernels' execution states failed")

    def start(self) -> None:
        """Check every ``interval`` seconds on the server's event loop."""
        self._callback = PeriodicCallback(self._refresh_logged, self.interval * 1000)
        self._callback.start()
        self.log.info(
            "multijhub: busy kernels count as activity (checked every %s s, max silence %s)",
            self.interval,
            f"{self.max_silence:g} s" if self.max_silence > 0 else "none",
        )


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "multijhub.hub.activity"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    watcher = BusyKernelActivity(serverapp.web_app.settings, serverapp.kernel_manager, parent=serverapp)
    watcher.start()
    serverapp.web_app.settings["multijhub_busy_kernel_activity"] = watcher
