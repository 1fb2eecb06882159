"""Hostile usernames, passwords and next URLs: 4xx or the login page, never PAM, ssh or a redirect."""

from __future__ import annotations

import pytest
from frontdoor_env import csrf_token, login
from test_redirects import REFUSED

HOSTILE_USERNAMES = [
    "",
    " ",
    "root; rm -rf /",
    "../../etc/passwd",
    "juser1/../root",
    "-oProxyCommand=touch /tmp/pwned",
    "juser1\x00",
    "juser1\n",
    "juser1\r\nSet-Cookie: x=y",
    "a" * 33,
    "a" * 70,
    "$(id)",
    "`id`",
    "ju ser",
    "juser1.",
    "ju..ser",
    "1juser",
    "é",
    "\u202ejuser1",
    "%6a%75ser1",
    "juser1%00",
    "<script>alert(1)</script>",
    "*",
    "juser1@hub1",
]

HOSTILE_PASSWORDS = ["x\x00y", "a" * 5000, "\x00"]


@pytest.mark.parametrize("username", HOSTILE_USERNAMES)
def test_hostile_usernames_never_reach_pam_ssh_or_a_redirect(env, username):
    client = env.client()
    resp = login(client, username, "pw-juser1")
    assert resp.status_code in (400, 401)
    assert "Location" not in resp.headers
    assert "Log in" in resp.get_data(as_text=True)
    assert env.auth.calls == []
    assert client.get("/").headers["Location"] == "/login"
    assert env.probe.calls == []
    assert env.hubs.requests == []


def test_hostile_username_is_escaped_in_the_page(env):
    resp = login(env.client(), "<script>alert(1)</script>", "x")
    assert "<script>alert(1)</script>" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("password", HOSTILE_PASSWORDS)
def test_hostile_passwords_never_reach_pam(env, password):
    resp = login(env.client(), "juser1", password)
    assert resp.status_code in (400, 401)
    assert env.auth.calls == []


@pytest.mark.parametrize("password", ["' OR 1=1 --", "\r\n", "pw-juser1 ", "пароль", "%00"])
def test_odd_passwords_are_just_wrong(env, password):
    resp = login(env.client(), "juser1", password)
    assert resp.status_code == 401
    assert env.auth.calls == [("juser1", password)]


def test_pam_backend_crash_is_a_refusal(env, monkeypatch):
    def boom(user, password):
        raise ValueError("PAM exploded")

    monkeypatch.setattr(env.auth, "authenticate", boom)
    assert login(env.client(), "juser1", "pw-juser1").status_code == 401


def test_form_fields_of_the_wrong_shape(env):
    client = env.client()
    token = csrf_token(client)
    cases = [
        {"csrf_token": token},
        {"csrf_token": token, "username": ["juser1", "root"], "password": "pw-juser1"},
        {"csrf_token": "forged", "username": "juser1", "password": "pw-juser1"},
        {"csrf_token": token, "username": "juser1", "password": "pw-juser1", "user": "root"},
    ]
    for data in cases:
        resp = client.post("/login", data=data)
        assert resp.status_code < 500
    # Only a well-formed request with the real token logged someone in, and only juser1.
    assert {user for user, _ in env.auth.calls} <= {"juser1"}


@pytest.mark.parametrize("next_value", [v for v in REFUSED if isinstance(v, str) and v])
def test_hostile_next_after_login_is_dropped(env, next_value):
    env.hubs.set_server("hub1", "juser1")
    client = env.client()
    resp = login(client, "juser1", "pw-juser1", next=next_value)
    assert (resp.status_code, resp.headers["Location"]) == (303, "/")
    resp = client.get("/")
    assert resp.headers["Location"] == f"http://127.0.0.1:{env.hubs.port}/hub1/hub/spawn"


@pytest.mark.parametrize("next_value", [v for v in REFUSED if isinstance(v, str) and v])
def test_hostile_next_on_index_is_dropped(env, next_value):
    env.hubs.set_server("hub2", "juser1")
    client = env.login()
    resp = client.get("/", query_string={"next": next_value})
    assert resp.headers["Location"] == f"http://127.0.0.1:{env.hubs.port}/hub2/hub/spawn"
    resp = env.client().get("/login", query_string={"next": next_value})
    assert resp.status_code == 200
    assert 'name="next" type="hidden" value=""' in resp.get_data(as_text=True)


def test_absolute_url_of_another_node_keeps_only_its_path(env):
    env.hubs.set_server("hub2", "juser1")
    client = env.login()
    other = f"http://127.0.0.1:{env.hubs.port}/hub1/user/juser1/lab"
    resp = client.get("/", query_string={"next": other})
    assert resp.headers["Location"] == (
        f"http://127.0.0.1:{env.hubs.port}/hub2/hub/spawn?next=%2Fhub2%2Fuser%2Fjuser1%2Flab"
    )


@pytest.mark.parametrize("path", ["//", "/login//", "///", "/static//style.css"])
def test_doubled_slashes_are_no_redirect_built_from_the_host_header(env, path):
    """Werkzeug merged slashes with a 308 to http://<Host header>/...: never a redirect of ours."""
    # PATH_INFO as a server passes it (the test client would read "//x" as a host name).
    reply = env.client().get("/", headers={"Host": "evil.example.org"}, environ_overrides={"PATH_INFO": path})
    assert reply.status_code == 404 or not reply.headers.get("Location", "").startswith("http"), (
        reply.status_code,
        reply.headers.get("Location"),
    )
