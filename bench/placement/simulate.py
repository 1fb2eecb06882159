"""Placement study: random, round-robin and multijhub's policy on the same day of users.

    python bench/placement/simulate.py --seeds 11 --nodes 4 --node-mem-gib 64 \\
        --out bench/results/placement

prints a Markdown table and writes placement.md, placement.json and placement.png.
See bench/README.md for the workload, the metrics and the target.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from placesim.engine import Cluster
from placesim.plot import plot_runs, plot_tradeoff
from placesim.policies import DEFAULTS, running_label, sweep_label
from placesim.report import PLOT_NAME, TRADEOFF_NAME, markdown, table, verdict
from placesim.study import TARGET_KEPT, TARGET_RATIO, StudyConfig, run_study, summarize
from placesim.workload import WorkloadParams


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def tradeoff_points(policies: dict[str, Any], config: StudyConfig) -> list[tuple[str, float, float]]:
    """(label, kept fraction, peak ratio) of multijhub over ``sticky_headroom``, over
    ``learned_running_quantile``, and of the other policies."""
    rows = [
        (
            f"defaults: sticky_headroom={config.sticky_headroom:g}, "
            f"learned_running_quantile={config.running_quantile:g}",
            "multijhub",
        )
    ]
    rows += [(f"sticky_headroom={h:g}", sweep_label(h)) for h in config.headroom_sweep]
    rows += [(f"learned_running_quantile={q:g}", running_label(q)) for q in config.running_sweep]
    rows += [(name, name) for name in ("multijhub before (fixed sizes)", "random", "round-robin")]
    return [(label, policies[row]["kept_fraction"], policies[row]["peak_ratio"]) for label, row in rows]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=11, help="number of seeds (0..N-1)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--node-mem-gib", type=float, default=64.0)
    p.add_argument("--base-gib", type=float, default=1.0, help="per node: system and hub")
    p.add_argument("--target-load", type=float, default=0.55, help="working-day mean fraction in use")
    p.add_argument("--mem-per-server-gib", type=float, default=2.0, help="front door reservation")
    p.add_argument("--pending-seconds", type=float, default=DEFAULTS.pending_seconds)
    p.add_argument("--sticky-headroom", type=float, default=DEFAULTS.sticky_headroom)
    p.add_argument("--running-quantile", type=float, default=DEFAULTS.learned_running_quantile)
    p.add_argument(
        "--headroom-sweep",
        type=_floats,
        default=(0.05, 0.1, 0.2, 1.0),
        help="comma-separated sticky_headroom values for the trade-off table and plot ('' for none)",
    )
    p.add_argument(
        "--running-sweep",
        type=_floats,
        default=(0.5, 0.6, 0.8, 0.9),
        help="comma-separated learned_running_quantile values for the trade-off ('' for none)",
    )
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", type=Path, default=Path("bench/results/placement"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = StudyConfig(
        seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        cluster=Cluster(args.nodes, args.node_mem_gib, args.base_gib),
        target_load=args.target_load,
        mem_per_server_gib=args.mem_per_server_gib,
        pending_seconds=args.pending_seconds,
        sticky_headroom=args.sticky_headroom,
        running_quantile=args.running_quantile,
        headroom_sweep=args.headroom_sweep,
        running_sweep=args.running_sweep,
        workload=WorkloadParams(),
    )
    started = time.perf_counter()
    study = run_study(config, jobs=args.jobs)
    summary = summarize(study)
    command = "python bench/placement/simulate.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "placement.md").write_text(markdown(study, summary, command))
    doc = {"command": command, "config": asdict(config), **summary}
    (args.out / "placement.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    seed = summary["representative_seed"]
    runs = next(r.runs for r in study.results if r.seed == seed)
    main_runs = [r for r in runs if not r.policy.startswith("multijhub,")]
    title = f"{config.cluster.nodes} x {config.cluster.node_mem_gib:g} GiB, seed {seed}"
    plot_runs(main_runs, config.cluster.node_mem_gib, args.out / PLOT_NAME, title)
    if config.headroom_sweep or config.running_sweep:
        points = tradeoff_points(summary["policies"], config)
        plot_tradeoff(points, args.out / TRADEOFF_NAME, (TARGET_KEPT, TARGET_RATIO))
    print(
        f"measured working-day load: {100 * summary['load']['mean']:.1f} % "
        f"(target {100 * config.target_load:.0f} %)\n"
    )
    print(table(study, summary))
    print()
    print(verdict(summary))
    elapsed = time.perf_counter() - started
    print(f"\nwrote {args.out}/placement.md, placement.json and {PLOT_NAME} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
