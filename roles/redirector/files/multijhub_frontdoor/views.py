"""The front door's pages: login, logout, the resolving index, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, redirect, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from multijhub_core.usernames import InvalidUsername, validate_username

from .auth import Authenticator, LoginRefused, check_login, in_group
from .config import Config, NodeConfig
from .forms import GoForm, LoginForm, LogoutForm
from .handoff import send_to_hub
from .metrics import Metrics
from .placing import observe, place_user
from .redirects import login_url, validate_next
from .resolver import Resolution, Resolver
from .store import AssignmentStore

log = logging.getLogger(__name__)

SESSION_USER = "user"


@dataclass
class FrontDoor:
    """Everything the views need, kept in ``app.extensions["multijhub"]``."""

    config: Config
    authenticator: Authenticator
    resolver: Resolver
    store: AssignmentStore
    metrics: Metrics = field(default_factory=Metrics)
    group_check: Callable[[str, str], bool] = in_group
    proof_keys: Sequence[bytes] = ()  # empty: plain redirects (hubs without FrontDoorAuthenticator)


def _fd() -> FrontDoor:
    return current_app.extensions["multijhub"]


def _session_user() -> str | None:
    """The logged-in user, re-validated; a bad value ends the session."""
    value = session.get(SESSION_USER)
    if value is None:
        return None
    try:
        return validate_username(value)
    except InvalidUsername:
        session.clear()
        return None


def _next_from(value: object) -> str:
    return validate_next(value, _fd().config.nodes)


def _to_hub(node: NodeConfig, user: str, next_path: str) -> ResponseReturnValue:
    fd = _fd()
    resp = send_to_hub(
        node,
        user,
        next_path,
        nodes=fd.config.nodes,
        keys=fd.proof_keys,
        max_age=fd.config.proof_max_age,
    )
    fd.metrics.sent.labels(node=node.name).inc()
    return resp


def make_blueprint(limiter: Limiter, login_rate: str) -> Blueprint:
    """The routes, with the login POST rate-limited."""
    bp = Blueprint("frontdoor", __name__)

    @bp.route("/login", methods=["GET", "POST"])
    @limiter.limit(login_rate, methods=["POST"])
    def login() -> ResponseReturnValue:
        form = LoginForm()
        if request.method == "GET":
            next_path = _next_from(request.args.get("next"))
            if _session_user():
                return redirect(_index_url(next_path))
            form.next.data = next_path
            return render_template("login.html", form=form, error=None)
        next_path = _next_from(form.next.data)
        form.next.data = next_path
        if not form.validate_on_submit():
            return render_template("login.html", form=form, error="Please fill in the form."), 400
        try:
            user = check_login(_fd().authenticator, form.username.data, form.password.data)
        except LoginRefused as exc:
            log.info("login refused from %s: %s", request.remote_addr, exc)
            _fd().metrics.failure("login_refused")
            form.password.data = ""
            return render_template("login.html", form=form, error="Wrong user name or password."), 401
        session.clear()
        session.permanent = True
        session[SESSION_USER] = user
        log.info("login of %s from %s", user, request.remote_addr)
        _fd().metrics.logins.inc()
        return redirect(_index_url(next_path), code=303)

    @bp.route("/logout", methods=["GET", "POST"])
    def logout() -> ResponseReturnValue:
        form = LogoutForm()
        if request.method == "POST":
            if not form.validate_on_submit():
                abort(400)
            session.clear()
            return redirect("/login", code=303)
        return render_template("logout.html", form=form, user=_session_user())

    @bp.route("/")
    def index() -> ResponseReturnValue:
        next_path = _next_from(request.args.get("next"))
        user = _session_user()
        if user is None:
            return redirect(login_url(next_path))
        return _resolve_and_send(user, next_path)

    @bp.route("/go", methods=["POST"])
    def go() -> ResponseReturnValue:
        """One of several nodes running the user's server, chosen on the "several" page."""
        form = GoForm()
        user = _session_user()
        if user is None:
            return redirect(login_url(""), code=303)
        if not form.validate_on_submit():
            abort(400)
        next_path = _next_from(form.next.data)
        node = _fd().config.node(form.node.data)
        resolution = _resolve(user)
        if node is None or node.name not in resolution.decision.nodes:
            return redirect(_index_url(next_path), code=303)
        return _to_hub(node, user, next_path)

    @bp.route("/healthz")
    def healthz() -> ResponseReturnValue:
        return {"status": "ok"}

    @bp.route("/metrics")
    def metrics() -> ResponseReturnValue:
        body, content_type = _fd().metrics.render()
        return body, 200, {"Content-Type": content_type}

    return bp


def _index_url(next_path: str) -> str:
    return "/?" + urlencode({"next": next_path}) if next_path else "/"


def observe_memory(fd: FrontDoor, resolution: Resolution) -> None:
    """Record the servers' memory the nodes reported (learned sizes); count and log new OOM kills."""
    for kill in observe(fd.store, resolution.loads, limits=fd.config.limits):
        fd.metrics.oom_kills.labels(node=kill.node).inc(kill.kills)
        log.warning("OOM kill: %d process(es) of %s's server on %s", kill.kills, kill.user, kill.node)


def _resolve(user: str) -> Resolution:
    fd = _fd()
    resolution = fd.resolver.resolve(user)
    fd.metrics.resolution_seconds.observe(resolution.elapsed)
    fd.metrics.observe_loads(resolution.loads)
    observe_memory(fd, resolution)
    decision = resolution.decision
    log.info(
        "resolved %s: %s %s in %.3f s",
        user,
        decision.state,
        ",".join(decision.nodes) or "-",
        resolution.elapsed,
    )
    return resolution


def _resolve_and_send(user: str, next_path: str) -> ResponseReturnValue:
    fd = _fd()
    resolution = _resolve(user)
    decision = resolution.decision
    nodes = {n.name: n for n in fd.config.nodes}
    if decision.state == "running":
        node = nodes[decision.nodes[0]]
        fd.store.record_running(user, node.name)
        return _to_hub(node, user, next_path)
    if decision.state == "several":
        fd.metrics.failure("several")
        choices = [(nodes[name], GoForm(node=name, next=next_path)) for name in decision.nodes]
        return render_template("several.html", user=user, choices=choices, form=LogoutForm())
    if decision.state == "unknown":
        fd.metrics.failure("unknown")
        retry = _index_url(next_path)
        body = render_template(
            "unknown.html",
            user=user,
            unanswered=sorted(decision.unanswered.items()),
            retry=retry,
            next_path=next_path,
            form=LogoutForm(),
        )
        return body, 503, {"Retry-After": "5"}
    drained = fd.config.drained | fd.store.drained_nodes()
    placement = place_user(fd.store, user, resolution.loads, drained=drained, limits=fd.config.limits)
    if placement is None:
        fd.metrics.failure("no_node")
        body = render_template("no_node.html", user=user, form=LogoutForm())
        return body, 503, {"Retry-After": "30"}
    log.info("placed %s on %s%s", user, placement.node, " (kept)" if placement.reused else "")
    if not placement.reused:
        fd.metrics.placements.labels(node=placement.node).inc()
    return _to_hub(nodes[placement.node], user, next_path)
