"""The hub-side package as the jupyterhub role installs it: ``multijhub_hub``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "roles" / "jupyterhub" / "files"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubkeys import KEY, OLD_KEY, write_key  # noqa: E402


@pytest.fixture
def key_files(tmp_path: Path) -> list[str]:
    return [write_key(tmp_path / "current", KEY), write_key(tmp_path / "previous", OLD_KEY)]
