"""Log in once: the hub accepts the front door's login proof beside its normal login.

``FrontDoorAuthenticator`` is PAMAuthenticator plus a handler at ``{hub}/multijhub-login``
that takes a POSTed proof (see ``proof.py``), verifies it and logs the user in through
JupyterHub's own ``login_user`` flow, so the authenticator's usual checks (normalisation,
allowed/blocked users and groups, admin, post-auth hook) still apply. The normal login form
keeps working. For another authenticator, combine the mixin in ``jupyterhub_config.py``::

    class MyAuthenticator(FrontDoorMixin, LDAPAuthenticator): ...

A proof carries no password, so PAM's account check is made here for it: with a
PAM-based authenticator whose ``check_account`` is on (JupyterHub's default), an account
expired, locked or forced to change its password is refused (``account.py``), as a password
login at the hub would be.

Replay protection keeps used proof ids in the hub process's memory (a hub is one process);
a restart forgets them, which reopens a proof for at most its remaining lifetime.
"""

from __future__ import annotations

import asyncio
import os

from jupyterhub.auth import Authenticator, PAMAuthenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import maybe_future, url_path_join
from tornado import web
from traitlets import Float, List, Unicode

from . import account
from .proof import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_AGE,
    Claims,
    ProofError,
    ProofKeyError,
    ReplayCache,
    load_keys,
    safe_next,
    verify_proof,
)

LOGIN_PATH = "/multijhub-login"

_MESSAGES = {
    ProofError.REPLAYED: "This login link was already used.",
    ProofError.EXPIRED: "This login link has expired.",
    ProofError.NOT_YET_VALID: "This login link is not valid yet (check the clocks).",
    ProofError.AUDIENCE: "This login link was made for another hub.",
    ProofError.FORGED: "This login link is not genuine.",
    ProofError.MALFORMED: "This login link is damaged.",
    ProofError.UNAVAILABLE: "Logging in from the front door is not available on this hub.",
}


def _file_signature(path: str) -> tuple[str, float, int]:
    """(path, mtime, size) of a key file; mtime -1 when it does not exist."""
    try:
        info = os.stat(path)
    except OSError:
        return (path, -1.0, 0)
    return (path, info.st_mtime, info.st_size)


class FrontDoorMixin(Authenticator):
    """Adds the front door's proof login to an authenticator (put it first in the bases)."""

    proof_key_files = List(
        Unicode(),
        config=True,
        help="Files (0600, local disk) with the keys shared with the front door, newest first.",
    )
    node_name = Unicode(
        "",
        config=True,
        help="This hub's node name, as the front door calls it: the proofs' audience.",
    )
    max_age = Float(DEFAULT_MAX_AGE, config=True, help="Longest proof lifetime accepted, seconds.")
    clock_skew = Float(
        DEFAULT_CLOCK_SKEW,
        config=True,
        help="Tolerated clock difference between the front door and this hub, seconds.",
    )

    shadow_file = Unicode(
        "/etc/shadow",
        config=True,
        help="Local shadow file read for locked passwords (passwd -l) when checking a proof's account.",
    )

    _replay: ReplayCache | None = None
    _keys: list[bytes] | None = None
    _keys_seen: tuple[tuple[str, float, int], ...] | None = None

    def proof_keys(self) -> list[bytes]:
        """The verification keys, read again whenever a key file appears, changes or goes.

        A rotation written by the redirector role takes effect without restarting the hub;
        files that do not exist (yet) are skipped, and with none at all proofs are refused.
        """
        seen = tuple(_file_signature(path) for path in self.proof_key_files)
        if self._keys is None or seen != self._keys_seen:
            present = [path for path, (_, mtime, _) in zip(self.proof_key_files, seen) if mtime >= 0]
            try:
                self._keys = load_keys(present)
            except ProofKeyError as exc:
                self._keys = None
                self.log.error("multijhub: %s", exc)
                raise ProofError(ProofError.UNAVAILABLE, "no usable proof key") from None
            self._keys_seen = seen
        return self._keys

    def verify_login_proof(self, token: object, now: float | None = None) -> Claims:
        """Verify a proof for this hub (signature, audience, lifetime, single use)."""
        if self._replay is None:
            self._replay = ReplayCache()
        return verify_proof(
            token,
            self.proof_keys(),
            audience=self.node_name,
            replay=self._replay,
            max_age=self.max_age,
            clock_skew=self.clock_skew,
            now=now,
        )

    async def authenticate(
        self, handler: BaseHandler, data: dict[str, str]
    ) -> str | dict[str, object] | None:
        """A verified proof's user for the proof handler; the inner authenticator otherwise."""
        if isinstance(handler, ProofLoginHandler):
            # Set by the handler only after verification; never taken from the form data.
            user = handler.proof_user
            if user is None:
                return None
            state = await self.proof_account_state(user)
            handler.account_state = state
            return user if state == account.OK else None
        return await maybe_future(super().authenticate(handler, data))

    async def proof_account_state(self, user: str) -> str:
        """PAM's account check for a proof's user (``account.check_account``), as PAM logins get.

        Only for PAM-based authenticators with ``check_account`` on; others answer OK here
        (their own rules apply in ``login_user``).
        """
        if not (isinstance(self, PAMAuthenticator) and self.check_account):
            return account.OK
        name = self.normalize_username(user)
        state = await asyncio.get_running_loop().run_in_executor(
            None, lambda: account.check_account(name, self.service, shadow=self.shadow_file)
        )
        if state != account.OK:
            self.log.warning("multijhub: login proof for %s refused: account %s", name, state)
        return state

    def get_handlers(self, app: object) -> list[tuple[str, type[BaseHandler]]]:
        return [*super().get_handlers(app), (LOGIN_PATH, ProofLoginHandler)]


class ProofLoginHandler(BaseHandler):
    """``POST {hub}/multijhub-login`` with form field ``proof``."""

    proof_user: str | None = None
    account_state: str = account.OK

    def check_xsrf_cookie(self) -> None:
        """No ``_xsrf`` here: this POST comes from the front door's page, another site.

        The proof itself is the CSRF protection: signed with a key only the front door and
        the hubs hold, bound to this hub, valid for seconds, and usable once. Every other
        handler keeps JupyterHub's check.
        """
        return None

    async def post(self) -> None:
        auth = self.authenticator
        if not isinstance(auth, FrontDoorMixin):
            raise web.HTTPError(404)
        token = self.get_body_argument("proof", default="", strip=True)
        try:
            claims = auth.verify_login_proof(token)
        except ProofError as exc:
            # Log why, never the proof.
            self.log.warning("multijhub: refused login proof from %s: %s", self.request.remote_ip, exc)
            raise web.HTTPError(403, _MESSAGES.get(exc.kind, "Refused.") + " Please log in again.") from None
        current = self.current_user
        if current is not None and getattr(current, "name", None) != claims.sub:
            self.clear_login_cookie()
        self.proof_user = claims.sub
        user = await self.login_user({"username": claims.sub})
        if user is None and self.account_state != account.OK:
            raise web.HTTPError(
                403, account.MESSAGES.get(self.account_state, "Your account may not log in now.")
            )
        if user is None:
            self.log.warning("multijhub: proof for %s accepted but the user is not allowed here", claims.sub)
            raise web.HTTPError(403, "You are not allowed to use this hub.")
        next_url = self._validate_next_url(safe_next(claims.next, self.base_url))
        self.redirect(next_url or url_path_join(self.hub.base_url, "spawn"), status=303)


class FrontDoorAuthenticator(FrontDoorMixin, PAMAuthenticator):
    """PAMAuthenticator that also accepts the front door's login proof."""
