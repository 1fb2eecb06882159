"""The front door's pages: login, logout, the resolving index, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, redirect, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter

from multijhub.core.usernames import InvalidUsername, normalize_username, validate_username
from multijhub.hub import account

from .auth import AccountChecker, AccountRefused, Authenticator, LoginRefused, check_login, in_group
from .config import Config, NodeConfig
from .forms import GoForm, LoginForm, LogoutForm
from .handoff import send_to_hub
from .metrics import Metrics
from .placing import drained_nodes, observe, place_user
from .redirects import login_url, validate_next
from .resolver import Resolution, Resolver
from .store import AssignmentStore
from .throttle import FailureThrottle, Throttled

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
    throttle: FailureThrottle | None = None  # None: failed logins are not limited
    account_check: AccountChecker | None = None  # None: accounts are not re-checked at hand-off


def _fd() -> FrontDoor:
    return current_app.extensions["multijhub"]


def _session_user() -> str | None:
    """The logged-in user, re-validated; a bad value ends the session."""
    value = session.get(SESSION_USER)
    if value is None:
        return None
    try:
        return validate_username(value, _fd().config.username_pattern)
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
        return _login_post(form, next_path)

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
        refused = _account_refused(user)
        if refused is not None:
            return refused
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
        refused = _account_refused(user)
        if refused is not None:
            return refused
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


def _login_post(form: LoginForm, next_path: str) -> ResponseReturnValue:
    """A filled-in login form: limits first, then PAM; the session on success."""
    fd = _fd()
    address = request.remote_addr or "-"
    typed = _valid_name(form.username.data)
    throttled = fd.throttle.check(typed, address) if fd.throttle else None
    if throttled is not None:
        return _throttled_page(form, throttled)
    try:
        user = check_login(
            fd.authenticator, form.username.data, form.password.data, pattern=fd.config.username_pattern
        )
    except AccountRefused as exc:
        log.info("login of %s from %s refused: account %s", typed, address, exc.state)
        fd.metrics.failure("account_refused")
        form.password.data = ""
        message = account.MESSAGES.get(exc.state, "Your account may not log in now.")
        return render_template("login.html", form=form, error=message), 403
    except LoginRefused as exc:
        log.info("login refused from %s: %s", address, exc)
        fd.metrics.failure("login_refused")
        if fd.throttle and str(exc) in ("bad credentials", "invalid username"):
            fd.throttle.failed(typed, address)
        form.password.data = ""
        return render_template("login.html", form=form, error="Wrong user name or password."), 401
    if fd.throttle:
        fd.throttle.succeeded(user)
    session.clear()
    session.permanent = True
    session[SESSION_USER] = user
    log.info("login of %s from %s", user, address)
    fd.metrics.logins.inc()
    return redirect(_index_url(next_path), code=303)


def _valid_name(typed: object) -> str | None:
    """The typed name normalised and valid under the site's rule, else None (not counted per name)."""
    try:
        return validate_username(normalize_username(typed), _fd().config.username_pattern)
    except InvalidUsername:
        return None


def _throttled_page(form: LoginForm, throttled: Throttled) -> ResponseReturnValue:
    """429 without asking PAM: too many failed logins for this name or from this address."""
    _fd().metrics.failure("throttled")
    minutes = max(1, -(-throttled.retry_after // 60))
    who = "for this user name" if throttled.scope == "user" else "from your network address"
    message = (
        f"Too many failed logins {who}. Please wait {minutes} minute{'s' if minutes != 1 else ''} "
        "and try again."
    )
    log.info(
        "login throttled (%s) from %s for %d s", throttled.scope, request.remote_addr, throttled.retry_after
    )
    form.password.data = ""
    body = render_template("login.html", form=form, error=message)
    return body, 429, {"Retry-After": str(throttled.retry_after)}


def _account_refused(user: str) -> ResponseReturnValue | None:
    """Re-check the account before any hand-off; a refused one ends the front door session.

    None when the account may go on (or checks are off). A check that could not be made
    (PAM unavailable) keeps the session and asks to retry: unknown is not refused.
    """
    fd = _fd()
    if fd.account_check is None:
        return None
    state = fd.account_check(user)
    if state == account.OK:
        return None
    message = account.MESSAGES.get(state, "Your account may not log in now.")
    if state not in account.REFUSED:
        fd.metrics.failure("account_unchecked")
        log.warning("account check of %s failed: %s", user, state)
        body = render_template("error.html", code=503, title="Please try again", message=message)
        return body, 503, {"Retry-After": "5"}
    log.info("session of %s ended: account %s", user, state)
    fd.metrics.failure("account_refused")
    session.clear()
    body = render_template("account.html", message=message, password_change=state == account.PASSWORD_CHANGE)
    return body, 403


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
    drained = drained_nodes(fd.config.drained, fd.store)
    placement = place_user(fd.store, user, resolution.loads, drained=drained, limits=fd.config.limits)
    if placement is None:
        fd.metrics.failure("no_node")
        body = render_template("no_node.html", user=user, form=LogoutForm())
        return body, 503, {"Retry-After": "30"}
    log.info("placed %s on %s%s", user, placement.node, " (kept)" if placement.reused else "")
    if not placement.reused:
        fd.metrics.placements.labels(node=placement.node).inc()
    return _to_hub(nodes[placement.node], user, next_path)
