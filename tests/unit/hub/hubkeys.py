"""Keys and key files for the hub-side tests."""

from __future__ import annotations

from pathlib import Path

KEY = b"k" * 48
OLD_KEY = b"o" * 48


def write_key(path: Path, key: bytes, mode: int = 0o600) -> str:
    path.write_bytes(key + b"\n")
    path.chmod(mode)
    return str(path)
