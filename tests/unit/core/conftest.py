"""Fixtures for the core tests: real Jupyter servers."""

from __future__ import annotations

import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from multijhub_servers import Server, shared_tmpdir, start_server, stop


@pytest.fixture(scope="module")
def root_server() -> Iterator[Server]:
    """A real jupyter-server of root, for the whole test module."""
    base = shared_tmpdir()
    try:
        server = start_server(base)
        yield server
        stop(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def nobody_server() -> Iterator[Server]:
    """A real jupyter-server run as the user nobody."""
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
