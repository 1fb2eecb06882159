"""The hub's public URL: one rule (plugins/module_utils/hubs.py) for the lookup, the front door's
node list and the preflight."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.multijhub.cluster.plugins.filter.hubs import FilterModule
from ansible_collections.multijhub.cluster.plugins.module_utils.hubs import hub_public_url


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
