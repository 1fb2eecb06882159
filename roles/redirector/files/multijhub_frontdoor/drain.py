"""Drain, mark down, or undrain a node in the assignment store (what drain.yml runs on the front door).

    python -m multijhub_frontdoor.drain hub2            # drain: no new servers go to hub2
    python -m multijhub_frontdoor.drain hub2 --down     # down: hub2's servers are lost or unreachable
    python -m multijhub_frontdoor.drain hub2 --undrain  # take hub2 back (clears drain and down)
    python -m multijhub_frontdoor.drain --list          # the drained nodes, one per line
    ... --check                                         # say what would change, change nothing

A drained node keeps its users: those whose server runs there are still sent there. A node
marked down is drained too, and more: while it is silent, users who may have had a server
there are no longer told to wait for it (issue 16, case 9); each gets a new server elsewhere.

Prints one JSON line: {"node": ..., "drained": bool, "down": bool, "changed": bool,
"drained_nodes": [...], "down_nodes": [...]}; exit 2 for a node the configuration does not know.
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import load_config
from .store import open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m multijhub_frontdoor.drain", description=__doc__.splitlines()[0]
    )
    parser.add_argument("node", nargs="?", help="a node name of the configuration")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--undrain", action="store_true", help="take new servers again (clears down)")
    mode.add_argument("--down", action="store_true", help="mark down: its servers are lost or unreachable")
    parser.add_argument("--list", action="store_true", help="only list the drained nodes")
    parser.add_argument("--check", action="store_true", help="say what would change; change nothing")
    parser.add_argument("--by", default="drain.yml", help="who drains (recorded in the store)")
    args = parser.parse_args(argv)
    config = load_config()
    store = open_store(config.store)
    try:
        drained, down = store.drained_nodes(), store.down_nodes()
        if args.list or args.node is None:
            print(
                json.dumps(
                    {"drained_nodes": sorted(drained | set(config.drained)), "down_nodes": sorted(down)}
                )
            )
            return 0
        if args.node not in {node.name for node in config.nodes}:
            print(json.dumps({"error": f"unknown node {args.node!r}"}))
            return 2
        node = args.node
        want_drained, want_down = not args.undrain, args.down
        if args.undrain or args.down:
            changes = [(node in drained) != want_drained, (node in down) != want_down]
        else:
            changes = [node not in drained, False]  # a plain drain leaves a down mark alone
        if not args.check:
            if changes[0]:
                store.set_drained(node, want_drained, by=args.by)
            if changes[1]:
                store.set_down(node, want_down, by=args.by)
            drained, down = store.drained_nodes(), store.down_nodes()
        else:
            drained = (drained | {node}) if want_drained else (drained - {node})
            down = (down | {node}) if want_down else (down - {node}) if args.undrain else down
        print(
            json.dumps(
                {
                    "node": node,
                    "drained": node in drained or node in config.drained,
                    "down": node in down,
                    "changed": any(changes),
                    "drained_nodes": sorted(drained | set(config.drained)),
                    "down_nodes": sorted(down),
                }
            )
        )
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
