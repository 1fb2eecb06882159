"""Fixtures for the plugin tests: the collection loader set up on this checkout, real servers."""

from __future__ import annotations

import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible.plugins.loader import init_plugin_loader
from module_harness import patch_exit
from multijhub_servers import (  # tests/unit/core (pytest's pythonpath)
    Server,
    shared_tmpdir,
    start_server,
    stop,
)

ROOT = Path(__file__).resolve().parents[3]

init_plugin_loader([str(ROOT / "collections")])


@pytest.fixture(scope="module")
def root_server() -> Iterator[Server]:
    base = shared_tmpdir()
    try:
        server = start_server(base)
        yield server
        stop(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def nobody_server() -> Iterator[Server]:
    pw = pwd.getpwnam("nobody")
    base = shared_tmpdir(pw.pw_uid, pw.pw_gid)
    try:
        server = start_server(base, user="nobody")
        yield server
        stop(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    path = shared_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _module_exits_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_exit(monkeypatch)
