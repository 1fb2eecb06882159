"""Run a module's main() in-process, in the style of ansible-test units: exit_json and fail_json
raise instead of exiting (the plugins' conftest patches them for every test here)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils import basic


class AnsibleExitJson(Exception):
    """The module exited successfully; args[0] is its result."""


class AnsibleFailJson(Exception):
    """The module failed; args[0] is its result."""


def patch_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    def exit_json(_self: basic.AnsibleModule, **kwargs: Any) -> None:
        kwargs.setdefault("changed", False)
        raise AnsibleExitJson(kwargs)

    def fail_json(_self: basic.AnsibleModule, msg: str, **kwargs: Any) -> None:
        raise AnsibleFailJson({"msg": msg, "failed": True, **kwargs})

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
