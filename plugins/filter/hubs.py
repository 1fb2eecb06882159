# Copyright (c) multijhub developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

from typing import Any, Callable

from ansible.errors import AnsibleFilterError
from ansible_collections.multijhub.cluster.plugins.module_utils.hubs import hub_public_url as _hub_public_url


def hub_public_url(host: str, hostvars: Any = None) -> str:  # noqa: ANN401 - Ansible's hostvars
    """The hub's public URL from its host variables (the core's rule, plugins/module_utils/hubs.py)."""
    hv = hostvars or {}
    try:
        return _hub_public_url(
            str(host),
            hv.get("jupyterhub_public_url") or None,
            hv.get("jupyterhub_port") or None,
            hv.get("jupyterhub_base_url") or "/",
        )
    except ValueError as exc:
        raise AnsibleFilterError(f"multijhub.cluster.hub_public_url: {exc}") from None


class FilterModule:
    """multijhub's filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        """The filters by name."""
        return {"hub_public_url": hub_public_url}
