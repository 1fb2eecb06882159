"""Fixtures for the front door (helpers in frontdoor_env.py, PostgreSQL in pgserver.py)."""

from __future__ import annotations

from fake_ssh import fake  # noqa: F401 - fixture
from frontdoor_env import env, hubs  # noqa: F401 - fixtures
