"""Property: no input yields a 5xx or a redirect off the cluster."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest
from frontdoor_env import build_env, csrf_token, start_hubs, stop_hubs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multijhub.frontdoor.redirects import on_cluster, spawn_url, validate_next

HOSTILE = "/\\:%.@#?&=;\r\n\t\x00\x7f -_~aAzZ09hub1:8000127.0.0.1éü\u2028"
text = st.one_of(st.text(max_size=60), st.text(alphabet=HOSTILE, max_size=60))
next_values = st.one_of(
    text,
    st.sampled_from(
        ["//evil.com", "/\\evil.com", "\\\\evil", "https://evil.com", "javascript:x", "/%2F%2Fe"]
    ),
    st.builds(lambda a, b: a + b, st.sampled_from(["http://127.0.0.1:", "//127.0.0.1:", "/", "/hub/"]), text),
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state, server = start_hubs()
    state.set_server("hub1", "juser1")
    e = build_env(tmp_path_factory.mktemp("prop"), state)
    yield e
    e.resolver.close()
    stop_hubs(state, server)


def assert_safe(env, resp) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)[:500]
    location = resp.headers.get("Location")
    if location is None:
        return
    if location.startswith("/"):
        assert not location.startswith("//") and "\\" not in location
        return
    assert on_cluster(location, env.config.nodes), location


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS"]),
    path=st.one_of(st.sampled_from(["/", "/login", "/logout", "/healthz", "/static/style.css"]), text),
    next_value=next_values,
    form=st.dictionaries(st.sampled_from(["username", "password", "next", "csrf_token", "x"]), text),
    logged_in=st.booleans(),
    real_csrf=st.booleans(),
)
def test_no_input_yields_5xx_or_off_cluster_redirect(
    env, method, path, next_value, form, logged_in, real_csrf
):
    client = env.client()
    if logged_in:
        with client.session_transaction() as sess:
            sess["user"] = "juser1"
    if real_csrf and method == "POST":
        form = {**form, "csrf_token": csrf_token(client, "/logout" if logged_in else "/login")}
    path = quote(path if path.startswith("/") else "/" + path, safe="/%:@&=;.")
    resp = client.open(path, method=method, query_string={"next": next_value}, data=form)
    assert_safe(env, resp)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(username=text, password=text, next_value=next_values)
def test_login_then_index_stays_on_cluster(env, username, password, next_value):
    client = env.client()
    token = csrf_token(client)
    resp = client.post(
        "/login", data={"csrf_token": token, "username": username, "password": password, "next": next_value}
    )
    assert_safe(env, resp)
    resp = client.get("/", query_string={"next": next_value})
    assert_safe(env, resp)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=next_values)
def test_validated_next_builds_only_cluster_urls(env, value):
    nodes = env.config.nodes
    safe = validate_next(value, nodes)
    if not safe:
        return
    assert safe.startswith("/") and not safe.startswith("//")
    assert "\\" not in safe and all(ord(c) > 32 and c != "\x7f" for c in safe)
    for node in nodes:
        url = spawn_url(node, safe)
        assert on_cluster(url, nodes)
        assert urlsplit(url).netloc == urlsplit(node.base_url).netloc
