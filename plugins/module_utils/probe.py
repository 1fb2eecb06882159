"""ssh forced-command probe for the front door: ``multijhub-probe`` (``python3 -m multijhub.core.probe``).

The request comes from ``SSH_ORIGINAL_COMMAND`` (or argv[1]); options fixed by the
forced command: ``--node NAME`` and ``--runtime-template T``.

- A user name: prints one JSON line (the node report) and exits 0; 2 for bad input,
  1 when the node cannot answer.
- ``--serve``: a persistent session for the front door. Each line read from stdin is
  one request (a user name, or ``--ping``) and gets exactly one JSON line back, in
  order, until stdin closes. The node's count of Jupyter server processes (a scan of
  the whole process table) is refreshed at most every ``COUNT_TTL`` seconds here; the
  user's own evidence is always read afresh.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from .procs import list_jupyter_processes
from .report import node_report
from .usernames import InvalidUsername, UnknownUser, validate_username

__all__ = ["COUNT_TTL", "MAX_REQUEST", "answer", "main", "serve"]

SERVE = "--serve"
PING = "--ping"
MAX_REQUEST = 256  # bytes of one request line; a user name has at most 32
COUNT_TTL = 5.0

Counter = Callable[[], int]


def _error(kind: str, message: str, code: int) -> tuple[int, dict[str, Any]]:
    return code, {"error": message, "kind": kind}


def answer(
    requested: str, options: dict[str, str], count: Counter | None = None
) -> tuple[int, dict[str, Any]]:
    """(exit status, JSON document) for one request."""
    try:
        user = validate_username(
            requested, pattern=None
        )  # the safety bounds; the caller applied the site rule
        report = node_report(
            user,
            node=options.get("--node"),
            runtime_template=options.get("--runtime-template"),
            singleuser_servers=None if count is None else count(),
        )
    except InvalidUsername as exc:
        return _error("invalid_username", str(exc), 2)
    except UnknownUser as exc:
        return _error("unknown_user", str(exc), 2)
    except (OSError, ValueError) as exc:
        return _error("node_error", str(exc), 1)
    return 0, report


def cached_count(ttl: float = COUNT_TTL, clock: Callable[[], float] = time.monotonic) -> Counter:
    """A counter of the node's Jupyter server processes, rescanned when older than ``ttl``."""
    value = -1
    at = 0.0

    def count() -> int:
        nonlocal value, at
        now = clock()
        if value < 0 or now - at >= ttl:
            value, at = len(list_jupyter_processes()), now
        return value

    return count


def serve(options: dict[str, str], stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Answer one request per line until stdin closes; 2 when a line is too long."""
    count = cached_count()
    node = options.get("--node") or socket.gethostname()
    while True:
        line = stdin.readline(MAX_REQUEST + 1)
        if not line:
            return 0
        if len(line) > MAX_REQUEST:
            # The rest of the line would be read as more requests: end the session.
            _write(stdout, _error("usage", f"request longer than {MAX_REQUEST} bytes", 2)[1])
            return 2
        request = line.rstrip(b"\n").decode("utf-8", "replace")
        doc = {"pong": True, "node": node} if request == PING else answer(request, options, count)[1]
        _write(stdout, doc)


def _write(stdout: IO[bytes], doc: dict[str, Any]) -> None:
    stdout.write(json.dumps(doc).encode() + b"\n")
    stdout.flush()


USAGE = """probe [--node NAME] [--runtime-template T] USER|--serve
The front door's read-only probe (multijhub-probe; the hubs' ssh forced command). The request (a
user name, or --serve for a session of one request per line) comes from SSH_ORIGINAL_COMMAND or
the last argument; prints one JSON line per request (exit 0; 2 for bad input, 1 when the node
cannot answer)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probe; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--help"], ["-h"]):  # the operator's, from the command line (never the ssh request)
        sys.stdout.write(USAGE + "\n")
        return 0
    options: dict[str, str] = {}
    positional: list[str] = []
    while args:
        arg = args.pop(0)
        if arg in ("--node", "--runtime-template"):
            if not args:
                code, doc = _error("usage", f"option {arg} needs a value", 2)
                _write(sys.stdout.buffer, doc)
                return code
            options[arg] = args.pop(0)
        else:
            positional.append(arg)
    requested = os.environ.get("SSH_ORIGINAL_COMMAND")
    if requested is None:
        if len(positional) != 1:
            code, doc = _error("usage", "usage: " + USAGE.splitlines()[0], 2)
            _write(sys.stdout.buffer, doc)
            return code
        requested = positional[0]
    if requested == SERVE:
        try:
            return serve(options, sys.stdin.buffer, sys.stdout.buffer)
        except BrokenPipeError:
            # The reader went away (the front door closed the session): nothing left to answer.
            # stdout is pointed at /dev/null so that the interpreter's final flush is quiet too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    code, doc = answer(requested, options)
    _write(sys.stdout.buffer, doc)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
