"""The ``next`` validator (after JupyterHub's test_login_redirect) and the URL builders."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from multijhub.frontdoor.config import NodeConfig
from multijhub.frontdoor.redirects import login_url, on_cluster, spawn_url, validate_next


def node(name: str, base_url: str) -> NodeConfig:
    return NodeConfig(name=name, base_url=base_url, api_url=base_url, api_token_file="/t", ssh_host=name)


HUB1 = node("hub1", "http://hub1:8000")
HUB2 = node("hub2", "https://cluster.example.org/hub2")
NODES = (HUB1, HUB2)

# JupyterHub's test_login_redirect table (HOST = this hub's own origin), then more.
ACCEPTED = [
    ("/hub/admin", "/hub/admin"),
    ("/user/other", "/user/other"),
    ("/absolute", "/absolute"),
    ("/has?query#andhash", "/has?query#andhash"),
    ("/has?repo=https/host.git", "/has?repo=https/host.git"),
    ("/has?repo=https://host.git", "/has?repo=https://host.git"),
    ("/has#repo=https://host.git", "/has#repo=https://host.git"),
    ("http://hub1:8000/other.domain/", "/other.domain/"),
    ("http://hub1:8000//other.domain/", "/other.domain/"),
    ("http://hub1:8000///other.domain/", "/other.domain/"),
    ("http://hub1:8000////other.domain/", "/other.domain/"),
    ("//hub1:8000/user/juser1/lab", "/user/juser1/lab"),
    ("HTTP://HUB1:8000/hub/home", "/hub/home"),
    ("https://cluster.example.org/hub2/user/juser1/lab?x=1#y", "/user/juser1/lab?x=1#y"),
    ("/user/juser1/lab/tree/My%20File.ipynb", "/user/juser1/lab/tree/My%20File.ipynb"),
    ("/hub/user-redirect/lab/tree/a.ipynb", "/hub/user-redirect/lab/tree/a.ipynb"),
]

REFUSED = [
    "",
    "relative/path",
    "https://other.domain",
    "ftp://other.domain",
    "//other.domain",
    "///other.domain/triple",
    "\\\\other.domain/backslashes",
    "/\\other.domain",
    "/\\/other.domain",
    "\\/other.domain",
    "/%5Cother.domain",
    "/%5C%5Cother.domain",
    "/%2F%2Fother.domain",
    "/%2Fother.domain",
    "/%252F%252Fother.domain",
    "%2F%2Fother.domain",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http:other.domain",
    "https:/other.domain",
    "http://hub1:8000@other.domain/",
    "http://other.domain#@hub1:8000/",
    "http://hub1:8000.other.domain/",
    "https://hub1:8000/hub/home",  # wrong scheme for hub1
    "http://hub1:80/hub/home",  # wrong port
    "https://cluster.example.org/hub3/user/x",  # outside hub2's base path
    "https://cluster.example.org/hub2x/user/x",
    "/user/x\r\nSet-Cookie: a=b",
    "/user/x%0d%0aSet-Cookie:%20a=b",
    "/user/x%250d%250aLocation:%20evil",
    "/user/\x00x",
    "/user/%00x",
    "/user/x\ty",
    " /user/x",
    "/user/x\x7f",
    "/user/x\u0085",
    "/../../other-app",
    "/hub/../../other-app",
    "/hub/%2e%2e/%2e%2e/other-app",
    "/./hub",
    "http://hub1:8000/../x",
    "http://[::1/",
    "http://hub1:notaport/x",
    "/" + "a" * 3000,
    None,
    42,
    ["/hub/home"],
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED)
def test_accepted(value, expected):
    assert validate_next(value, NODES) == expected


@pytest.mark.parametrize("value", REFUSED)
def test_refused(value):
    assert validate_next(value, NODES) == ""


def test_spawn_url_without_next():
    assert spawn_url(HUB1) == "http://hub1:8000/hub/spawn"
    assert spawn_url(HUB2) == "https://cluster.example.org/hub2/hub/spawn"


def test_spawn_url_with_next_is_rooted_at_the_hub_base_path():
    url = spawn_url(HUB2, "/user/juser1/lab?a=1&b=2")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "cluster.example.org", "/hub2/hub/spawn")
    assert parse_qs(parts.query) == {"next": ["/hub2/user/juser1/lab?a=1&b=2"]}
    assert on_cluster(url, NODES)


def test_login_url():
    assert login_url() == "/login"
    assert login_url("/hub/home?x=1") == "/login?next=%2Fhub%2Fhome%3Fx%3D1"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://hub1:8000/hub/spawn", True),
        ("https://cluster.example.org/hub2/hub/spawn", True),
        ("http://hub1:8000.evil/hub/spawn", False),
        ("http://hub1:8000", False),
        ("https://cluster.example.org/hub2x/hub/spawn", False),
        ("http://hub1:8000/hub/spawn\r\nX: y", False),
        ("//hub1:8000/hub/spawn", False),
    ],
)
def test_on_cluster(url, ok):
    assert on_cluster(url, NODES) is ok
