"""Drain, mark down, or undrain a node in the assignment store (what drain.yml runs on the front door).

    multijhub-frontdoor-drain hub2            # drain: no new servers go to hub2
    multijhub-frontdoor-drain hub2 --down     # down: hub2's servers are lost or unreachable
    multijhub-frontdoor-drain hub2 --undrain  # take hub2 back (clears drain and down)
    multijhub-frontdoor-drain --list          # the drained nodes, one per line
    ... --check                               # say what would change, change nothing

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
from .placing import drained_nodes
from .store import open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="multijhub-frontdoor-drain", description=__doc__.splitlines()[0])
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
        if args.list or args.node is None:
            listing = {"drained_nodes": sorted(drained_nodes(config.drained, store))}
            print(json.dumps({**listing, "down_nodes": sorted(store.down_nodes())}))
            return 0
        if args.node not in {node.name for node in config.nodes}:
            print(json.dumps({"error": f"unknown node {args.node!r}"}))
            return 2
        node = args.node
        marked, down = store.drained_nodes(), store.down_nodes()
        want_drained, want_down = not args.undrain, args.down
        change_drain = (node in marked) != want_drained
        # A plain drain leaves a down mark alone; --down sets it, --undrain clears it.
        change_down = (args.down or args.undrain) and (node in down) != want_down
        if not args.check:
            if change_drain:
                store.set_drained(node, want_drained, by=args.by)
            if change_down:
                store.set_down(node, want_down, by=args.by)
            drained, down = drained_nodes(config.drained, store), store.down_nodes()
        else:  # what the store would hold
            down = ((down | {node}) if want_down else (down - {node})) if change_down else down
            marked = ((marked | {node}) if want_drained else (marked - {node})) if change_drain else marked
            drained = frozenset(config.drained) | marked | down
        print(
            json.dumps(
                {
                    "node": node,
                    "drained": node in drained,
                    "down": node in down,
                    "changed": bool(change_drain or change_down),
                    "drained_nodes": sorted(drained),
                    "down_nodes": sorted(down),
                }
            )
        )
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
