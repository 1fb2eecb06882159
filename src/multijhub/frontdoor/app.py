"""The Flask application factory: wiring, cookies, headers and error pages."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from datetime import timedelta

from flask import Flask, render_template
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Map
from werkzeug.wrappers import Response

from multijhub.hub.proof import ProofKeyError, load_keys

from .admin import make_admin_blueprint
from .auth import AccountChecker, Authenticator, PamAuthenticator, in_group
from .config import Config, ConfigError, read_secret_file
from .hubapi import HubApi
from .metrics import Metrics, multiprocess_dir
from .probe import SshProbe
from .resolver import Resolver
from .store import AssignmentStore, open_store
from .throttle import FailureThrottle
from .views import FrontDoor, make_blueprint

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


def hub_ssl_context(config: Config) -> ssl.SSLContext:
    """The TLS context of the hubs' API: the system's trust store, or only the internal CA's
    certificate (``hub_ca_file``, proxied mode). The standard library's ``ssl`` checks the
    certificate and the host name on every connection. Raises ConfigError when the file is unusable."""
    if not config.hub_ca_file:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=config.hub_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"hub_ca_file: cannot use {config.hub_ca_file}: {exc}") from None


def build_resolver(config: Config) -> Resolver:
    """The real resolver: a keep-alive API client per hub and the ssh probe."""
    context = hub_ssl_context(config)
    apis = {
        node.name: HubApi(
            node.name,
            node.api_url,
            read_secret_file(node.api_token_file, f"API token file of {node.name}"),
            ssl_context=context,
        )
        for node in config.nodes
    }
    return Resolver(
        config.nodes,
        apis,
        SshProbe(config.ssh),
        deadline=config.deadline,
        workers=config.workers,
    )


def load_proof_keys(config: Config) -> Sequence[bytes]:
    """The login proof keys (newest first), or () when the front door only redirects."""
    if not config.proof_key_files:
        return ()
    try:
        return tuple(load_keys(config.proof_key_files))
    except ProofKeyError as exc:
        raise ConfigError(str(exc)) from exc


def _csp(config: Config) -> str:
    """The content security policy: forms post to this origin and the hubs' (in proxied mode the
    hubs are under the front door's own address: no other origin)."""
    own = _origin(config.public_url) if config.public_url else None
    hubs = "".join(f" {origin}" for origin in sorted({_origin(n.base_url) for n in config.nodes} - {own}))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"form-action 'self'{hubs}; frame-ancestors 'none'; base-uri 'none'"
    )


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


class _NoMergeMap(Map):
    """Werkzeug's URL map without merge_slashes: it answered "//x" with a 308 to an absolute URL
    built from the request's Host header, a redirect the front door did not choose. Such paths
    get a 404 instead (the matcher reads the setting when the map is made, hence a class)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["merge_slashes"] = False
        super().__init__(*args, **kwargs)


class _FrontDoorFlask(Flask):
    url_map_class = _NoMergeMap


def create_app(
    config: Config,
    *,
    authenticator: Authenticator | None = None,
    resolver: Resolver | None = None,
    store: AssignmentStore | None = None,
    group_check: Callable[[str, str], bool] | None = None,
    metrics: Metrics | None = None,
    account_check: AccountChecker | None = None,
) -> Flask:
    """Build the front door for ``config``; the keyword arguments replace parts in tests."""
    app = _FrontDoorFlask(__name__)
    app.config.update(
        SECRET_KEY=read_secret_file(config.secret_key_file, "secret key file"),
        SESSION_COOKIE_NAME="multijhub-frontdoor",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.tls,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.session_hours),
        PREFERRED_URL_SCHEME="https" if config.tls else "http",
        MAX_CONTENT_LENGTH=MAX_BODY,
        MAX_FORM_MEMORY_SIZE=MAX_BODY,
        WTF_CSRF_TIME_LIMIT=3600,
    )
    if config.proxy_count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=config.proxy_count, x_proto=config.proxy_count
        )
    CSRFProtect(app)
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=config.rate_limit_storage,
        headers_enabled=True,
    )
    pam_auth = PamAuthenticator(config.pam_service)
    store = store or open_store(config.store)
    if config.account_check and account_check is None:
        account_check = pam_auth.check_account
    app.extensions["multijhub"] = FrontDoor(
        config=config,
        authenticator=authenticator or pam_auth,
        resolver=resolver or build_resolver(config),
        store=store,
        throttle=FailureThrottle(store, config.login_failures_per_user, config.login_failures_per_address),
        account_check=account_check if config.account_check else None,
        metrics=metrics or Metrics((n.name for n in config.nodes), multiproc_dir=multiprocess_dir()),
        group_check=group_check or in_group,
        proof_keys=load_proof_keys(config),
    )
    app.extensions["multijhub"].resolver.warm_up()  # in the background, per process
    app.register_blueprint(make_blueprint(limiter, config.login_rate_limit))
    app.register_blueprint(make_admin_blueprint())
    _register_errors(app)
    csp = _csp(config)

    @app.after_request
    def security_headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", csp)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Cache-Control", "no-store")
        if config.tls:
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return resp

    return app


def _register_errors(app: Flask) -> None:
    """Every error gets a small page; nothing hostile becomes a 500."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        return render_template(
            "error.html", code=400, title="Form expired", message="Please reload the page and try again."
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        code = exc.code or 500
        return render_template("error.html", code=code, title=exc.name, message=None), code

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> ResponseReturnValue:
        log.exception("internal error: %s", type(exc).__name__)
        fd = app.extensions.get("multijhub")
        if fd is not None:
            fd.metrics.failure("internal")
        return render_template(
            "error.html", code=500, title="Internal error", message="Please try again later."
        ), 500
