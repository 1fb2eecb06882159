"""The hub's public URL: one rule (plugins/module_utils/hubs.py) for the lookup, the front door's
node list and the preflight."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.multijhub.cluster.plugins.filter.hubs import FilterModule
from ansible_collections.multijhub.cluster.plugins.module_utils.hubs import (
    cluster_public_url,
    hub_base_url,
    hub_public_url,
    hub_urls,
)


@pytest.mark.parametrize(
    ("public_url", "port", "base_url", "expected"),
    [
        (None, None, "/", "http://hub2:8000"),
        (None, 8443, "/jhub/", "http://hub2:8443/jhub"),
        ("https://hub2.example.org", None, "/jhub/", "https://hub2.example.org/jhub"),
        ("https://hub2.example.org/", None, "/", "https://hub2.example.org"),
        ("https://jupyter.example.org/jhub/", None, "/jhub/", "https://jupyter.example.org/jhub"),
        ("http://127.0.0.3:8000", None, "/a/b/", "http://127.0.0.3:8000/a/b"),
    ],
)
def test_the_public_url(public_url, port, base_url, expected) -> None:
    assert hub_public_url("hub2", public_url, port, base_url) == expected


@pytest.mark.parametrize(
    ("public_url", "base_url"),
    [
        ("https://x.example.org/other/", "/jhub/"),
        ("https://x.example.org/jhub/", "/"),
        ("ftp://x", "/"),
        ("hub2", "/"),
    ],
)
def test_a_public_url_that_disagrees_with_the_base_url_is_refused(public_url, base_url) -> None:
    with pytest.raises(ValueError, match="jupyterhub_public_url of hub2"):
        hub_public_url("hub2", public_url, None, base_url)


def test_the_filter_is_the_same_rule() -> None:
    f = FilterModule().filters()["hub_public_url"]
    assert f("hub1", {"jupyterhub_base_url": "/jhub/", "jupyterhub_port": 8001}) == "http://hub1:8001/jhub"
    assert f("hub1", {}) == "http://hub1:8000"
    with pytest.raises(AnsibleFilterError, match=r"multijhub\.cluster\.hub_public_url"):
        f("hub1", {"jupyterhub_public_url": "https://a/b/", "jupyterhub_base_url": "/c/"})


# --- Issue 18: one address for the whole cluster (proxied mode) ------------------------------------

PUBLIC = "https://jupyter.example.org"


@pytest.mark.parametrize(
    ("host", "hostvars", "expected"),
    [
        (
            "hub1",
            {"multijhub_public_url": PUBLIC},
            ("/node/hub1/", "https://jupyter.example.org/node/hub1", "https://hub1:8000/node/hub1"),
        ),
        (
            "hub2.example.org",
            {"multijhub_public_url": "https://127.0.0.1:18443/", "jupyterhub_port": 8443},
            (
                "/node/hub2.example.org/",
                "https://127.0.0.1:18443/node/hub2.example.org",
                "https://hub2.example.org:8443/node/hub2.example.org",
            ),
        ),
        (
            "hub1",
            {"multijhub_public_url": PUBLIC, "jupyterhub_base_url": "/node/hub1/"},
            ("/node/hub1/", "https://jupyter.example.org/node/hub1", "https://hub1:8000/node/hub1"),
        ),
        # Direct mode: as before, the internal URL is the public one.
        ("hub1", {}, ("/", "http://hub1:8000", "http://hub1:8000")),
        (
            "hub1",
            {"jupyterhub_public_url": "https://hub1.example.org", "jupyterhub_base_url": "/j/"},
            ("/j/", "https://hub1.example.org/j", "https://hub1.example.org/j"),
        ),
    ],
)
def test_the_hubs_urls_in_both_modes(host, hostvars, expected) -> None:
    assert tuple(hub_urls(host, hostvars)) == expected


@pytest.mark.parametrize(
    ("host", "hostvars", "names"),
    [
        # Settings that contradict the one address: each names its variable.
        (
            "hub1",
            {"multijhub_public_url": PUBLIC, "jupyterhub_public_url": "https://hub1.example.org"},
            "jupyterhub_public_url",
        ),
        ("hub1", {"multijhub_public_url": PUBLIC, "jupyterhub_base_url": "/jhub/"}, "jupyterhub_base_url"),
        # The one address itself: https, a host, no path, query, fragment or credentials.
        ("hub1", {"multijhub_public_url": "http://jupyter.example.org"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org/jhub"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://user:pw@jupyter.example.org"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org/?x=1"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org#f"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "jupyter.example.org"}, "multijhub_public_url"),
        # urlsplit drops tabs and newlines (and leading spaces) before it parses: the text kept them
        # (a YAML block scalar's trailing newline went into nginx's configuration and the CSP header).
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org\n"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org/\n"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://jupy\nter.example.org"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org\t"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": " https://jupyter.example.org"}, "multijhub_public_url"),
        # Ports outside 1..65535, names nginx's server_name never matches (trailing dot), empty labels.
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org:0"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org:99999"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://jupyter.example.org."}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://.."}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://-"}, "multijhub_public_url"),
        ("hub1", {"multijhub_public_url": "https://[::g]"}, "multijhub_public_url"),
        # jupyterhub_port ends up in nginx's upstream: a TCP port or nothing (0 was taken as 8000).
        ("hub1", {"multijhub_public_url": PUBLIC, "jupyterhub_port": 0}, "jupyterhub_port"),
        ("hub1", {"multijhub_public_url": PUBLIC, "jupyterhub_port": 99999}, "jupyterhub_port"),
        ("hub1", {"multijhub_public_url": PUBLIC, "jupyterhub_port": -1}, "jupyterhub_port"),
        ("hub1", {"multijhub_public_url": PUBLIC, "jupyterhub_port": "8000x"}, "jupyterhub_port"),
        ("hub1", {"multijhub_public_url": PUBLIC, "jupyterhub_port": True}, "jupyterhub_port"),
        ("hub1", {"jupyterhub_port": "0"}, "jupyterhub_port"),
        # Inventory names that cannot be one path segment of the prefix.
        ("..", {"multijhub_public_url": PUBLIC}, "inventory name"),
        ("hub..1", {"multijhub_public_url": PUBLIC}, "inventory name"),
        ("hub/1", {"multijhub_public_url": PUBLIC}, "inventory name"),
        ("hub%2f1", {"multijhub_public_url": PUBLIC}, "inventory name"),
        ("hub1.", {"multijhub_public_url": PUBLIC}, "inventory name"),
        (".hub1", {"multijhub_public_url": PUBLIC}, "inventory name"),
        ("hub 1", {"multijhub_public_url": PUBLIC}, "inventory name"),
    ],
)
def test_settings_that_cannot_be_fail_naming_the_variable(host, hostvars, names) -> None:
    with pytest.raises(ValueError, match=names):
        hub_urls(host, hostvars)


def test_the_base_url_and_the_public_url_agree_with_what_the_hub_is_given() -> None:
    """The jupyterhub role's base_url (filter hub_base_url) is the prefix the front door proxies."""
    assert hub_base_url("hub1", PUBLIC) == "/node/hub1/"
    assert hub_base_url("hub1", None, "/jhub/") == "/jhub/"
    assert hub_base_url("hub1", "", None) == "/"
    assert cluster_public_url("https://Jupyter.example.org:443/") == "https://Jupyter.example.org:443"
    assert cluster_public_url("https://[fd00::1]:8443/") == "https://[fd00::1]:8443"
    assert cluster_public_url("https://10.0.0.1") == "https://10.0.0.1"
    assert hub_urls("hub1", {"multijhub_public_url": PUBLIC, "jupyterhub_port": "8443"}).internal_url == (
        "https://hub1:8443/node/hub1"
    )


def test_the_filters_are_the_same_rule_in_proxied_mode() -> None:
    filters = FilterModule().filters()
    hv = {"multijhub_public_url": PUBLIC}
    assert filters["hub_public_url"]("hub1", hv) == "https://jupyter.example.org/node/hub1"
    assert filters["hub_urls"]("hub1", hv)["internal_url"] == "https://hub1:8000/node/hub1"
    assert filters["hub_base_url"]("hub1", PUBLIC) == "/node/hub1/"
    with pytest.raises(AnsibleFilterError, match=r"multijhub\.cluster\.hub_urls: .*multijhub_public_url"):
        filters["hub_urls"]("hub1", {"multijhub_public_url": "http://x"})
    with pytest.raises(AnsibleFilterError, match=r"multijhub\.cluster\.hub_base_url"):
        filters["hub_base_url"]("a/b", PUBLIC)
