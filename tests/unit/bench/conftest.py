"""The placement study's package (bench/placement/placesim) on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "placement"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from placesim.frontdoor import ensure_importable  # noqa: E402

ensure_importable()  # multijhub_core and multijhub_frontdoor, as the front door has them
