"""Drain or undrain a node in the assignment store (what drain.yml runs on the front door).

    multijhub-frontdoor-drain hub2            # drain: no new servers go to hub2
    multijhub-frontdoor-drain hub2 --undrain
    multijhub-frontdoor-drain --list          # the drained nodes, one per line

Prints one JSON line: {"node": ..., "drained": bool, "changed": bool, "drained_nodes": [...]};
exit 2 for a node the configuration does not know.
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
    parser.add_argument("--undrain", action="store_true", help="take new servers again")
    parser.add_argument("--list", action="store_true", help="only list the drained nodes")
    parser.add_argument("--by", default="drain.yml", help="who drains (recorded in the store)")
    args = parser.parse_args(argv)
    config = load_config()
    store = open_store(config.store)
    try:
        before = store.drained_nodes()
        if args.list or args.node is None:
            print(json.dumps({"drained_nodes": sorted(drained_nodes(config.drained, store))}))
            return 0
        if args.node not in {node.name for node in config.nodes}:
            print(json.dumps({"error": f"unknown node {args.node!r}"}))
            return 2
        want = not args.undrain
        if (args.node in before) != want:
            store.set_drained(args.node, want, by=args.by)
        after = store.drained_nodes()
        drained = drained_nodes(config.drained, store)
        print(
            json.dumps(
                {
                    "node": args.node,
                    "drained": args.node in drained,
                    "changed": after != before,
                    "drained_nodes": sorted(drained),
                }
            )
        )
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
