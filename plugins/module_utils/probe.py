"""ssh forced-command probe for the front door: ``python3 -m multijhub_core.probe``.

The user name comes from ``SSH_ORIGINAL_COMMAND`` (or argv[1]); options fixed by the
forced command: ``--node NAME`` and ``--runtime-template T``. Prints one JSON line.
Exit 0 with the node report, 2 for bad input, 1 when the node cannot answer.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from .report import node_report
from .usernames import InvalidUsername, UnknownUser, validate_username

__all__ = ["main"]


def _error(kind: str, message: str, code: int) -> int:
    sys.stdout.write(json.dumps({"error": message, "kind": kind}) + "\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probe; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, str] = {}
    positional: list[str] = []
    while args:
        arg = args.pop(0)
        if arg in ("--node", "--runtime-template"):
            if not args:
                return _error("usage", f"option {arg} needs a value", 2)
            options[arg] = args.pop(0)
        else:
            positional.append(arg)
    requested = os.environ.get("SSH_ORIGINAL_COMMAND")
    if requested is None:
        if len(positional) != 1:
            return _error("usage", "usage: probe [--node NAME] [--runtime-template T] USER", 2)
        requested = positional[0]
    try:
        user = validate_username(requested)
        report = node_report(
            user, node=options.get("--node"), runtime_template=options.get("--runtime-template")
        )
    except InvalidUsername as exc:
        return _error("invalid_username", str(exc), 2)
    except UnknownUser as exc:
        return _error("unknown_user", str(exc), 2)
    except (OSError, ValueError) as exc:
        return _error("node_error", str(exc), 1)
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
