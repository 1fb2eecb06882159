"""gunicorn entry point: ``gunicorn multijhub.frontdoor.wsgi:app``.

The configuration file is named by $MULTIJHUB_FRONTDOOR_CONFIG
(default /etc/multijhub-frontdoor/frontdoor.toml).
"""

from __future__ import annotations

import logging

from .app import create_app
from .config import load_config

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

app = create_app(load_config())
