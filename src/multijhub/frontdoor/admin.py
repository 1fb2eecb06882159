"""The admin status page: nodes, memory, users; drain and undrain (group members only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from flask import Blueprint, abort, redirect, render_template, request
from flask.typing import ResponseReturnValue

from .forms import DrainForm, LogoutForm
from .status import cluster_status, learned_table, node_memory
from .views import FrontDoor, _fd, _session_user, observe_memory

log = logging.getLogger(__name__)

GroupCheck = Callable[[str, str], bool]


def _admin(fd: FrontDoor) -> str | None:
    """The session user if they are in the admin group; None when not logged in; 403 otherwise."""
    user = _session_user()
    if user is None:
        return None
    if not fd.config.admin_group or not fd.group_check(user, fd.config.admin_group):
        log.info("admin page refused to %s from %s", user, request.remote_addr)
        abort(403)
    return user


def make_admin_blueprint() -> Blueprint:
    """``GET /admin`` and ``POST /admin/drain``."""
    bp = Blueprint("admin", __name__)

    @bp.app_template_filter("utc")
    def utc(seconds: float) -> str:
        """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` in UTC."""
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    @bp.route("/admin")
    def status() -> ResponseReturnValue:
        fd = _fd()
        user = _admin(fd)
        if user is None:
            return redirect("/login")
        resolution = fd.resolver.resolve(user)
        fd.metrics.observe_loads(resolution.loads)
        observe_memory(fd, resolution)
        nodes = cluster_status(
            fd.resolver,
            resolution,
            config_drained=fd.config.drained,
            store_drained=fd.store.drained_nodes(),
        )
        forms = {n.name: DrainForm(node=n.name, action="undrain" if n.drained_by else "drain") for n in nodes}
        return render_template(
            "admin.html",
            user=user,
            nodes=nodes,
            forms=forms,
            form=LogoutForm(),
            memory=node_memory(fd.store, resolution, fd.config.limits),
            largest=learned_table(fd.store, fd.config.limits),
            oom_kills=fd.store.oom_kills(),
            limits=fd.config.limits,
        )

    @bp.route("/admin/drain", methods=["POST"])
    def drain() -> ResponseReturnValue:
        fd = _fd()
        user = _admin(fd)
        if user is None:
            abort(403)
        form = DrainForm()
        if not form.validate_on_submit():
            abort(400)
        node = form.node.data
        if fd.config.node(node) is None:
            abort(400)
        if node in fd.config.drained:
            abort(409)  # drained in the inventory: undrain it there
        drained = form.action.data == "drain"
        fd.store.set_drained(node, drained, by=user)
        log.info("%s %s node %s", user, "drained" if drained else "undrained", node)
        return redirect("/admin", code=303)

    return bp
