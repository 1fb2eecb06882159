"""Choose a free TCP port inside a configured range (JupyterHub has no port-range option)."""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Callable, Collection


class PortRangeError(ValueError):
    """The configured port range is malformed."""


class PortRangeExhausted(RuntimeError):
    """Every port of the range is taken."""


def parse_port_range(text: str) -> tuple[int, int]:
    """Parse ``"LOW-HIGH"`` into a pair, with 1024 < LOW <= HIGH <= 65535."""
    low_text, sep, high_text = str(text).strip().partition("-")
    if not sep or not low_text.isdigit() or not high_text.isdigit():
        raise PortRangeError(f"port range {text!r} is not of the form LOW-HIGH, e.g. 8100-8999")
    low, high = int(low_text), int(high_text)
    if not 1024 < low <= high <= 65535:
        raise PortRangeError(f"port range {text!r} must satisfy 1024 < LOW <= HIGH <= 65535")
    return low, high


def port_is_free(port: int, ip: str = "") -> bool:
    """True when nothing listens on ``ip:port`` (probed by binding to it)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((ip, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def choose_port(
    low: int,
    high: int,
    *,
    reserved: Collection[int] = (),
    is_free: Callable[[int], bool] = port_is_free,
    rng: random.Random | None = None,
) -> int:
    """A free port in ``[low, high]`` that is not reserved, starting at a random offset."""
    size = high - low + 1
    start = (rng or random.SystemRandom()).randrange(size)
    for step in range(size):
        port = low + (start + step) % size
        if port not in reserved and is_free(port):
            return port
    raise PortRangeExhausted(
        f"no free port left in {low}-{high} ({len(reserved)} reserved by this hub's servers); "
        "widen jupyterhub_port_range or stop idle servers"
    )
