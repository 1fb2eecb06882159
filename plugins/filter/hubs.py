# Copyright (c) multijhub developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

from typing import Any, Callable

from ansible.errors import AnsibleFilterError
from ansible_collections.multijhub.cluster.plugins.module_utils.hubs import hub_base_url as _hub_base_url
from ansible_collections.multijhub.cluster.plugins.module_utils.hubs import hub_urls as _hub_urls


def hub_urls(host: str, hostvars: Any = None) -> dict[str, str]:  # noqa: ANN401 - Ansible's hostvars
    """The hub's URLs (base_url, public_url, internal_url) from its host variables (the core's
    rule, plugins/module_utils/hubs.py)."""
    try:
        return _hub_urls(str(host), hostvars or {})._asdict()
    except ValueError as exc:
        raise AnsibleFilterError(f"multijhub.cluster.hub_urls: {exc}") from None


def hub_public_url(host: str, hostvars: Any = None) -> str:  # noqa: ANN401 - Ansible's hostvars
    """The hub's public URL from its host variables (the core's rule, plugins/module_utils/hubs.py)."""
    try:
        return _hub_urls(str(host), hostvars or {}).public_url
    except ValueError as exc:
        raise AnsibleFilterError(f"multijhub.cluster.hub_public_url: {exc}") from None


def hub_base_url(host: str, cluster_url: str | None = None, base_url: str | None = None) -> str:
    """JupyterHub's base_url of the hub: its prefix /node/<hub>/ when multijhub_public_url is set."""
    try:
        return _hub_base_url(str(host), cluster_url or None, base_url or None)
    except ValueError as exc:
        raise AnsibleFilterError(f"multijhub.cluster.hub_base_url: {exc}") from None


class FilterModule:
    """multijhub's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        """The filters by name."""
        return {"hub_public_url": hub_public_url, "hub_urls": hub_urls, "hub_base_url": hub_base_url}
