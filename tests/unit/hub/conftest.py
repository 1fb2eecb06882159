"""Fixtures for the hub extensions (``multijhub.hub``, installed editable in the dev virtualenv)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hubkeys import KEY, OLD_KEY, write_key


@pytest.fixture
def key_files(tmp_path: Path) -> list[str]:
    return [write_key(tmp_path / "current", KEY), write_key(tmp_path / "previous", OLD_KEY)]
