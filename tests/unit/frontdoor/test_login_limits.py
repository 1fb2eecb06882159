"""Issue 17 at the front door: failed-login limits, names as people type them, accounts that change.

The real app on a real SQLite store; PAM is faked (FakeAuth, FakeAccounts) and its real
behaviour is tested on the cluster (molecule/default/tests/test_52_frontdoor_accounts.py).
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from frontdoor_env import PASSWORDS, build_env, csrf_token, login

from multijhub.frontdoor import auth as auth_module
from multijhub.frontdoor.auth import AccountRefused, PamAuthenticator
from multijhub.frontdoor.config import ConfigError
from multijhub.frontdoor.throttle import FailureThrottle, Limit, parse_limits


def from_address(client, address: str):
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def defaults_env(tmp_path, hubs):
    """The app with the shipped defaults for every login limit."""
    e = build_env(tmp_path, hubs, login_rate_limit=None)
    yield e
    e.resolver.close()


# --- 1. failed logins, not logins, are limited ----------------------------------------------------


def test_a_class_of_30_logging_in_correctly_from_one_address_is_never_refused(defaults_env, hubs):
    for n in range(30):
        defaults_env.auth.users[f"student{n:02d}"] = f"pw-{n}"
    codes = []
    for n in range(30):
        client = from_address(defaults_env.client(), "192.0.2.10")
        codes.append(login(client, f"student{n:02d}", f"pw-{n}").status_code)
    assert codes == [303] * 30


def test_a_class_logging_in_at_once_from_one_address_is_never_refused(defaults_env):
    for n in range(30):
        defaults_env.auth.users[f"student{n:02d}"] = f"pw-{n}"

    def one(n: int) -> int:
        client = from_address(defaults_env.app.test_client(), "192.0.2.10")
        return login(client, f"student{n:02d}", f"pw-{n}").status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(30))) == [303] * 30


def test_twenty_wrong_passwords_slow_that_name_down_and_nobody_else(defaults_env):
    env = defaults_env
    codes = []
    for n in range(20):  # "from anywhere": every attempt from another address
        client = from_address(env.client(), f"198.51.100.{n + 1}")
        codes.append(login(client, "juser1", f"guess-{n}"))
    assert [r.status_code for r in codes] == [401] * 10 + [429] * 10
    # Over the limit PAM is not asked any more.
    assert len(env.auth.calls) == 10
    refused = codes[-1]
    assert "Too many failed logins for this user name" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 600
    # The right password does not get through while the name is throttled ...
    assert login(from_address(env.client(), "203.0.113.5"), "juser1", PASSWORDS["juser1"]).status_code == 429
    # ... but another user from the very same addresses logs in.
    assert (
        login(from_address(env.client(), "198.51.100.20"), "juser2", PASSWORDS["juser2"]).status_code == 303
    )


def test_the_name_is_free_again_after_the_window(tmp_path, hubs):
    env = build_env(tmp_path, hubs, login_failures_per_user="3 per 2 seconds")
    client = env.client()
    assert [login(client, "juser1", "x").status_code for _ in range(4)] == [401, 401, 401, 429]
    time.sleep(2.1)
    assert login(client, "juser1", PASSWORDS["juser1"]).status_code == 303
    env.resolver.close()


def test_a_success_clears_the_names_failures(tmp_path, hubs):
    env = build_env(tmp_path, hubs, login_failures_per_user="3 per 10 minutes")
    client = env.client()
    assert [login(client, "juser1", "x").status_code for _ in range(2)] == [401, 401]
    assert login(client, "juser1", PASSWORDS["juser1"]).status_code == 303
    assert [login(env.client(), "juser1", "x").status_code for _ in range(3)] == [401, 401, 401]
    env.resolver.close()


def test_one_address_trying_many_names_is_slowed_down(tmp_path, hubs):
    env = build_env(tmp_path, hubs, login_failures_per_address="5 per 10 minutes")
    guesser = from_address(env.client(), "192.0.2.66")
    codes = [login(guesser, f"user{n}", "x").status_code for n in range(7)]
    assert codes == [401] * 5 + [429] * 2
    assert "from your network address" in login(guesser, "juser1", "pw-juser1").get_data(as_text=True)
    # Other addresses, and names typed wrongly (never a valid name) count per address only.
    assert login(from_address(env.client(), "192.0.2.67"), "juser1", "pw-juser1").status_code == 303
    env.resolver.close()


def test_failures_are_shared_by_every_worker_on_the_store(tmp_path, hubs):
    """Two apps (two gunicorn workers, or two front doors) on one store count the same failures."""
    first = build_env(tmp_path, hubs, login_failures_per_user="4 per 10 minutes")
    second = build_env(tmp_path, hubs, login_failures_per_user="4 per 10 minutes")
    assert first.store.path == second.store.path
    for env in (first, second, first, second):
        assert login(env.client(), "juser1", "x").status_code == 401
    assert login(second.client(), "juser1", "x").status_code == 429
    assert login(first.client(), "juser1", "x").status_code == 429
    first.resolver.close()
    second.resolver.close()


def test_limits_can_be_switched_off(tmp_path, hubs):
    env = build_env(tmp_path, hubs, login_failures_per_user="off", login_failures_per_address="off")
    assert [login(env.client(), "juser1", "x").status_code for _ in range(12)] == [401] * 12
    env.resolver.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("login_failures_per_user", "ten per minute"),
        ("login_failures_per_user", "0 per minute"),
        ("login_failures_per_address", "5 per 2 days"),
        ("login_failures_per_address", 5),
    ],
)
def test_bad_limits_are_refused_naming_the_key(tmp_path, hubs, key, value):
    with pytest.raises(ConfigError, match=key):
        build_env(tmp_path, hubs, **{key: value})


def test_limit_syntax():
    assert parse_limits("10 per 10 minutes; 30 per day", "x") == (Limit(10, 600.0), Limit(30, 86400.0))
    assert parse_limits("off", "x") == ()


class _Store:
    def __init__(self):
        self.rows: list[tuple[str, float]] = []

    def record_login_failures(self, subjects, now=None):
        self.rows += [(s, now) for s in subjects]

    def login_failure_block(self, subject, amount, window, now=None):
        times = sorted((t for s, t in self.rows if s == subject and t > now - window), reverse=True)
        return times[amount - 1] + window if len(times) >= amount else None

    def clear_login_failures(self, subject):
        self.rows = [r for r in self.rows if r[0] != subject]


def test_the_moving_window_frees_a_name_when_the_limiting_failure_ages_out():
    throttle = FailureThrottle(_Store(), [Limit(3, 60.0)], [])
    for t in (0.0, 10.0, 20.0):
        throttle.failed("juser1", "a", now=t)
    assert throttle.check("juser1", "a", now=25.0).retry_after == 35  # 0 + 60 - 25
    assert throttle.check("juser1", "a", now=60.5) is None
    assert throttle.check("juser2", "a", now=25.0) is None


# --- 2. names as people type them ----------------------------------------------------------------


@pytest.mark.parametrize("typed", ["Juser1", "JUSER1", " juser1", "juser1 "])
def test_names_as_people_type_them_log_in_as_the_canonical_user(env, typed):
    client = env.client()
    resp = login(client, typed, PASSWORDS["juser1"])
    assert resp.status_code == 303
    with client.session_transaction() as sess:
        assert sess["user"] == "juser1"
    assert env.auth.calls == [("juser1", PASSWORDS["juser1"])]


def test_the_name_field_is_not_capitalised_or_corrected(env):
    html = env.client().get("/login").get_data(as_text=True)
    field = re.search(r'<input[^>]*id="username"[^>]*>', html).group(0)
    for attr in (
        'autocapitalize="none"',
        'autocomplete="username"',
        'spellcheck="false"',
        'autocorrect="off"',
    ):
        assert attr in field, field


def test_the_sites_pattern_is_the_rule_at_the_front_door(tmp_path, hubs):
    env = build_env(tmp_path, hubs, username_pattern=r"[a-z0-9_][a-z0-9_.-]{0,31}")
    env.auth.users["2024smith"] = "pw"
    assert login(env.client(), "2024smith", "pw").status_code == 303
    (tmp_path / "n").mkdir()
    narrow = build_env(tmp_path / "n", hubs, username_pattern=r"juser[0-9]")
    assert login(narrow.client(), "jadmin", "x").status_code == 401
    assert narrow.auth.calls == []
    env.resolver.close()
    narrow.resolver.close()


def test_a_bad_site_pattern_is_refused_at_start(tmp_path, hubs):
    with pytest.raises(ConfigError, match="username_pattern"):
        build_env(tmp_path, hubs, username_pattern="[a-z")


# --- 4. accounts that change after login ----------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "text"),
    [
        ("expired", "Your account has expired."),
        ("locked", "Your account is locked."),
        ("password_change", "must be changed"),
        ("unknown_user", "no longer exists"),
    ],
)
def test_an_account_refused_after_login_ends_the_session_with_a_clear_page(env, state, text):
    env.hubs.set_server("hub1", "juser1")
    client = env.login("juser1")
    env.accounts.state["juser1"] = state
    resp = client.get("/")
    assert resp.status_code == 403
    body = resp.get_data(as_text=True)
    assert text in body and "logged out" in body
    assert 'name="proof"' not in body and "Location" not in resp.headers
    assert env.hubs.requests == [] and env.probe.calls == []  # nothing resolved, nothing minted
    assert client.get("/").headers["Location"] == "/login"  # the session is gone


def test_every_hand_off_rechecks_the_account(env):
    env.hubs.set_server("hub1", "juser1")
    client = env.login("juser1")
    for _ in range(3):
        assert client.get("/").status_code == 302
    assert env.accounts.calls == ["juser1"] * 3


def test_the_go_choice_rechecks_the_account_too(env):
    env.hubs.set_server("hub1", "juser1")
    env.hubs.set_server("hub2", "juser1")
    client = env.login("juser1")
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    env.accounts.state["juser1"] = "expired"
    resp = client.post("/go", data={"csrf_token": token, "node": "hub1"})
    assert resp.status_code == 403 and "expired" in resp.get_data(as_text=True)


def test_an_account_check_that_cannot_be_made_keeps_the_session(env):
    env.hubs.set_server("hub1", "juser1")
    client = env.login("juser1")
    env.accounts.state["juser1"] = "unavailable"
    resp = client.get("/")
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    env.accounts.state["juser1"] = "ok"
    assert client.get("/").status_code == 302


def test_a_password_that_must_be_changed_is_told_at_login_not_wrong_password(env):
    env.auth.account["juser1"] = "password_change"
    resp = login(env.client(), "juser1", PASSWORDS["juser1"])
    body = resp.get_data(as_text=True)
    assert resp.status_code == 403
    assert "must be changed" in body and "Wrong user name or password" not in body
    # A wrong password for that account still says only "wrong".
    resp = login(env.client(), "juser1", "nope")
    assert resp.status_code == 401 and "must be changed" not in resp.get_data(as_text=True)


def test_an_expired_account_is_told_at_login(env):
    env.auth.account["juser1"] = "expired"
    resp = login(env.client(), "juser1", PASSWORDS["juser1"])
    assert resp.status_code == 403 and "has expired" in resp.get_data(as_text=True)


class _FakePamHandle:
    code = 0

    def __init__(self, code: int):
        self.result_code = code

    def authenticate(self, username, password, service="login"):
        self.code = self.result_code
        return self.result_code == 0


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(0, True), (7, False), (10, False), (12, "password_change"), (13, "expired"), (27, "expired")],
)
def test_pam_codes_after_the_password_tell_the_account_state(monkeypatch, code, outcome):
    monkeypatch.setattr(auth_module.pam, "PamAuthenticator", lambda: _FakePamHandle(code))
    authenticator = PamAuthenticator("login")
    if isinstance(outcome, bool):
        assert authenticator.authenticate("juser1", "pw") is outcome
    else:
        with pytest.raises(AccountRefused) as info:
            authenticator.authenticate("juser1", "pw")
        assert info.value.state == outcome


def test_the_login_page_token_still_works(env):
    assert csrf_token(env.client())
