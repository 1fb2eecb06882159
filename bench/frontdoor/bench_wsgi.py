"""gunicorn entry for the benchmark: ``gunicorn --chdir bench/frontdoor bench_wsgi:app``.

The front door's own ``create_app`` and ``build_resolver`` on the configuration named by
$MULTIJHUB_FRONTDOOR_CONFIG, with two bench parts injected: an authenticator that accepts
one bench user (instead of PAM, account checks included); the probe's ssh (``ssh.binary``
in the configuration) reads the emulated nodes' ssh_config.
Environment: MJB_USER, MJB_PASSWORD_FILE.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path

from multijhub.frontdoor.app import build_resolver, create_app
from multijhub.frontdoor.config import load_config

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


class BenchAuthenticator:
    """Accepts the one bench user with the bench password, nobody else."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    def authenticate(self, username: str, password: str) -> bool:
        return username == self.user and hmac.compare_digest(password, self.password)


config = load_config()
resolver = build_resolver(config)
authenticator = BenchAuthenticator(
    os.environ["MJB_USER"], Path(os.environ["MJB_PASSWORD_FILE"]).read_text().strip()
)
# The bench user exists on no host: its account is always valid (no PAM account check).
app = create_app(config, authenticator=authenticator, resolver=resolver, account_check=lambda _user: "ok")
