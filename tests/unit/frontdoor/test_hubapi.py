"""The hub REST API client against a real local HTTP server."""

from __future__ import annotations

import pytest
from frontdoor_env import TOKEN
from multijhub_frontdoor.hubapi import HubApi, HubApiError


def api(hubs, node: str = "hub1", token: str = TOKEN) -> HubApi:
    return HubApi(node, f"http://127.0.0.1:{hubs.port}/{node}/", token)


def test_ready_server(hubs):
    hubs.set_server("hub1", "juser1")
    server = api(hubs).user_server("juser1", 1.0)
    assert server is not None and server["ready"] is True


def test_user_without_server_and_unknown_user(hubs):
    hubs.set_user("hub1", "juser1")
    client = api(hubs)
    assert client.user_server("juser1", 1.0) is None
    assert client.user_server("nobody", 1.0) is None  # 404


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error", "HTTP 500"),
        ("garbage", "not JSON"),
        ("noscope", "lacks scope read:servers"),
        ("noservers", "no servers"),
    ],
)
def test_failures_raise(hubs, mode, message):
    hubs.set_server("hub1", "juser1")
    hubs.mode["hub1"] = mode
    with pytest.raises(HubApiError, match=message):
        api(hubs).user_server("juser1", 1.0)


def test_wrong_token_is_an_error_not_a_404(hubs):
    with pytest.raises(HubApiError, match="HTTP 403"):
        api(hubs, token="wrong").user_server("juser1", 1.0)


def test_timeout(hubs):
    hubs.mode["hub1"] = "blackhole"
    with pytest.raises(HubApiError, match="timed out"):
        api(hubs).user_server("juser1", 0.2)


def test_unreachable():
    client = HubApi("hub9", "http://127.0.0.1:9/", TOKEN)
    with pytest.raises(HubApiError, match="unreachable"):
        client.user_server("juser1", 0.5)


def test_scopes_checked_once_then_keep_alive(hubs):
    hubs.set_server("hub1", "juser1")
    client = api(hubs)
    for _ in range(5):
        client.user_server("juser1", 1.0)
    paths = [path for _, path, _ in hubs.requests]
    assert paths == ["/hub1/hub/api/user"] + ["/hub1/hub/api/users/juser1"] * 5
    assert len({port for _, _, port in hubs.requests}) == 1  # one connection, reused


def test_a_404_is_not_believed_without_the_scopes(hubs):
    hubs.mode["hub1"] = "noscope"
    with pytest.raises(HubApiError, match="lacks scope"):
        api(hubs).user_server("juser1", 1.0)


def test_username_is_quoted_into_the_path(hubs):
    api(hubs).user_server("a.b-c_d", 1.0)
    assert hubs.requests[-1][1] == "/hub1/hub/api/users/a.b-c_d"
