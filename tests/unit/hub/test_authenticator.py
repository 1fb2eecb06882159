"""The hub's FrontDoorAuthenticator: configuration, verification, handler registration.

Needs JupyterHub (installed on the hubs, not in the dev venv): skipped without it.
The whole browser flow runs end to end on the molecule cluster.
"""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("jupyterhub", reason="JupyterHub is not installed in this venv (it runs on the hubs)")

from hubkeys import KEY, OLD_KEY
from jupyterhub.auth import DummyAuthenticator, PAMAuthenticator
from jupyterhub.handlers.login import LoginHandler
from traitlets.config import Config

from multijhub.hub import account
from multijhub.hub.authenticator import (
    LOGIN_PATH,
    FrontDoorAuthenticator,
    FrontDoorMixin,
    ProofLoginHandler,
)
from multijhub.hub.proof import ProofError, create_proof


def make_auth(key_files, **traits):
    c = Config()
    c.FrontDoorAuthenticator.proof_key_files = key_files
    c.FrontDoorAuthenticator.node_name = "hub1"
    for name, value in traits.items():
        setattr(c.FrontDoorAuthenticator, name, value)
    return FrontDoorAuthenticator(config=c)


def proof(**kw):
    args = {"sub": "juser1", "aud": "hub1", "next_path": "/hub/spawn"}
    args.update(kw)
    return create_proof([KEY], **args)


def test_is_a_pam_authenticator_with_config(key_files):
    auth = make_auth(key_files, max_age=20.0, clock_skew=2.0)
    assert isinstance(auth, PAMAuthenticator)
    assert (auth.node_name, auth.max_age, auth.clock_skew) == ("hub1", 20.0, 2.0)
    assert auth.proof_keys() == [KEY, OLD_KEY]


def test_handlers_keep_the_normal_login(key_files):
    handlers = dict(make_auth(key_files).get_handlers(None))
    assert handlers[LOGIN_PATH] is ProofLoginHandler
    assert "/login" in handlers


def test_verifies_once(key_files):
    auth = make_auth(key_files)
    token = proof()
    assert auth.verify_login_proof(token).sub == "juser1"
    with pytest.raises(ProofError) as info:
        auth.verify_login_proof(token)
    assert info.value.kind == ProofError.REPLAYED


@pytest.mark.parametrize(
    ("token_kw", "kind"),
    [
        ({"aud": "hub2"}, ProofError.AUDIENCE),
        ({"now": -120}, ProofError.EXPIRED),  # seconds from the test's own clock, not collection's
        ({"now": 120}, ProofError.NOT_YET_VALID),
        ({"max_age": 600}, ProofError.EXPIRED),
    ],
)
def test_refusals(key_files, token_kw, kind):
    auth = make_auth(key_files)
    if "now" in token_kw:
        token_kw = dict(token_kw, now=time.time() + token_kw["now"])
    with pytest.raises(ProofError) as info:
        auth.verify_login_proof(proof(**token_kw))
    assert info.value.kind == kind


def test_forged(key_files):
    auth = make_auth(key_files)
    with pytest.raises(ProofError) as info:
        auth.verify_login_proof(create_proof([b"z" * 40], sub="juser1", aud="hub1"))
    assert info.value.kind == ProofError.FORGED


def test_previous_key_still_accepted(key_files):
    auth = make_auth(key_files)
    assert auth.verify_login_proof(create_proof([OLD_KEY], sub="juser1", aud="hub1")).sub == "juser1"


def test_unsafe_key_file_refuses_without_showing_it(tmp_path, caplog):
    bad = tmp_path / "open"
    bad.write_bytes(KEY)
    bad.chmod(0o644)
    auth = make_auth([str(bad)])
    with pytest.raises(ProofError) as info:
        auth.verify_login_proof(proof())
    assert info.value.kind == ProofError.UNAVAILABLE


def test_missing_node_name_refuses(key_files):
    auth = make_auth(key_files, node_name="")
    with pytest.raises(ProofError) as info:
        auth.verify_login_proof(proof())
    assert info.value.kind == ProofError.UNAVAILABLE


@pytest.fixture
def accounts(monkeypatch):
    """PAM account management on the hub, as a table: user -> state (default ok)."""
    state: dict[str, str] = {}
    calls: list[tuple[str, str]] = []

    def check(user, service="login", *, shadow="/etc/shadow"):
        calls.append((user, service))
        return state.get(user, account.OK)

    monkeypatch.setattr(account, "check_account", check)
    return state, calls


def test_authenticate_takes_the_user_only_from_a_verified_handler(key_files, accounts):
    auth = make_auth(key_files)
    handler = ProofLoginHandler.__new__(ProofLoginHandler)
    assert asyncio.run(auth.authenticate(handler, {"username": "root"})) is None
    handler.proof_user = "juser1"
    assert asyncio.run(auth.authenticate(handler, {"username": "root"})) == "juser1"


def test_normal_login_goes_to_the_inner_authenticator(key_files, monkeypatch):
    seen = []

    async def inner(self, handler, data):
        seen.append(data["username"])
        return None

    monkeypatch.setattr(PAMAuthenticator, "authenticate", inner)
    auth = make_auth(key_files)
    assert asyncio.run(auth.authenticate(object(), {"username": "juser1", "password": "x"})) is None
    assert seen == ["juser1"]


def test_mixin_combines_with_another_authenticator(key_files):
    class Combined(FrontDoorMixin, DummyAuthenticator):
        pass

    c = Config()
    c.Combined.node_name = "hub2"
    assert Combined(config=c).node_name == "hub2"


def test_handler_skips_only_its_own_xsrf_check():
    assert ProofLoginHandler.check_xsrf_cookie is not LoginHandler.check_xsrf_cookie
    assert ProofLoginHandler.check_xsrf_cookie(object()) is None


@pytest.mark.parametrize(
    "state", [account.EXPIRED, account.LOCKED, account.PASSWORD_CHANGE, account.UNKNOWN_USER]
)
def test_a_proof_for_a_refused_account_logs_nobody_in(key_files, accounts, state):
    """Issue 17: a proof carries no password, so PAM's account check is made for it."""
    states, calls = accounts
    states["juser1"] = state
    auth = make_auth(key_files)
    handler = ProofLoginHandler.__new__(ProofLoginHandler)
    handler.proof_user = "juser1"
    assert asyncio.run(auth.authenticate(handler, {})) is None
    assert handler.account_state == state
    assert calls == [("juser1", "login")]
    assert "expired" in account.MESSAGES[account.EXPIRED]


def test_the_account_check_follows_the_pam_authenticators_own_switch(key_files, accounts):
    states, calls = accounts
    states["juser1"] = account.EXPIRED
    auth = make_auth(key_files, check_account=False)
    handler = ProofLoginHandler.__new__(ProofLoginHandler)
    handler.proof_user = "juser1"
    assert asyncio.run(auth.authenticate(handler, {})) == "juser1"
    assert calls == []


def test_a_non_pam_authenticator_is_not_asked_about_pam_accounts(key_files, accounts):
    class Combined(FrontDoorMixin, DummyAuthenticator):
        pass

    states, calls = accounts
    states["juser1"] = account.EXPIRED
    handler = ProofLoginHandler.__new__(ProofLoginHandler)
    handler.proof_user = "juser1"
    c = Config()
    c.Combined.node_name = "hub1"
    assert asyncio.run(Combined(config=c).authenticate(handler, {})) == "juser1"
    assert calls == []
