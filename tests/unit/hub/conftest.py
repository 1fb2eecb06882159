"""The hub-side package as the jupyterhub role installs it: ``multijhub_hub``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "roles" / "jupyterhub" / "files"))

KEY = b"k" * 48
OLD_KEY = b"o" * 48


def write_key(path: Path, key: bytes, mode: int = 0o600) -> str:
    path.write_bytes(key + b"\n")
    path.chmod(mode)
    return str(path)


@pytest.fixture
def key_files(tmp_path: Path) -> list[str]:
    return [write_key(tmp_path / "current", KEY), write_key(tmp_path / "previous", OLD_KEY)]
