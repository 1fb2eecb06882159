"""Make the front door's own code importable, laid out as the redirector role deploys it.

``multijhub_core`` is the collection's plugins/module_utils (a symlink in a
temporary directory, as tests/unit/frontdoor/conftest.py does) and
``multijhub_frontdoor`` comes from roles/redirector/files. Nothing is copied.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_done = False


def ensure_importable() -> None:
    """Put ``multijhub_core`` and ``multijhub_frontdoor`` on sys.path (once)."""
    global _done  # noqa: PLW0603 - one temporary directory per process
    if _done:
        return
    try:
        import multijhub_core.placement  # noqa: F401, PLC0415 - already importable (tests)
    except ImportError:
        core_dir = tempfile.mkdtemp(prefix="multijhub-core-")
        os.symlink(ROOT / "plugins" / "module_utils", Path(core_dir) / "multijhub_core")
        atexit.register(shutil.rmtree, core_dir, True)
        sys.path.insert(0, core_dir)
    files = str(ROOT / "roles" / "redirector" / "files")
    if files not in sys.path:
        sys.path.insert(0, files)
    _done = True
