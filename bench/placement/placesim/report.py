"""Markdown and JSON of a study."""

from __future__ import annotations

import math
from typing import Any

from .study import MAIN, TARGET_KEPT, TARGET_RATIO, Study, sweep_rows

PLOT_NAME = "placement.png"
TRADEOFF_NAME = "tradeoff.svg"  # text: the README shows it as generated


def _ratio(p: dict[str, Any]) -> str:
    low, high = p["peak_ratio_range"]
    return f"{p['peak_ratio']:.2f} ({low:.2f}-{high:.2f})"


def _kept(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.0f} %"


def _row(name: str, p: dict[str, Any], seeds: int) -> str:
    return (
        f"| {name} | {_ratio(p)} | {p['max_imbalance']:.2f} | {p['oom_moments']:g}; {p['oom_moments_total']} "
        f"| {p['seeds_with_oom']}/{seeds} | {_kept(p['kept_fraction'])} |"
    )


HEADER = (
    "| policy | fullest peak / ideal peak (min-max) | max fullest / ideal | OOM node-minutes (median; total) "
    "| seeds with OOM | returning users kept on their node |\n"
    "| --- | --- | --- | --- | --- | --- |"
)


def table(study: Study, summary: dict[str, Any], rows: list[str] | None = None) -> str:
    """The Markdown table of ``rows`` (the main policies by default); medians over seeds."""
    seeds = len(study.results)
    names = rows if rows is not None else [n for n in MAIN if n in summary["policies"]]
    return "\n".join([HEADER, *(_row(n, summary["policies"][n], seeds) for n in names)])


def load_line(study: Study, summary: dict[str, Any]) -> str:
    load = summary["load"]
    per_seed = list(load["per_seed"].values())
    peaks = list(load["peak_ideal_fraction"].values())
    return (
        f"Working-day load (09:00-17:00, memory in use / all memory): mean {100 * load['mean']:.1f} % "
        f"(target {100 * load['target']:.0f} %; "
        f"per seed {100 * min(per_seed):.0f}-{100 * max(per_seed):.0f} %); "
        f"the ideal's daily peak is {100 * min(peaks):.0f}-{100 * max(peaks):.0f} % of a node."
    )


def verdict(summary: dict[str, Any]) -> str:
    t = summary["target"]
    ours = summary["policies"]["multijhub"]
    rnd = summary["policies"]["random"]
    parts = [
        f"fullest peak within {TARGET_RATIO:.2f} of the ideal: {'yes' if t['peak_within_target'] else 'NO'} "
        f"(median {ours['peak_ratio']:.2f})",
        f"no OOM moment on any seed: {'yes' if t['no_oom_on_any_seed'] else 'NO'} "
        f"({ours['seeds_with_oom']} seeds with OOM; random: {rnd['seeds_with_oom']})",
        f"at least {100 * TARGET_KEPT:.0f} % of returning users keep their node: "
        f"{'yes' if t['returning_kept'] else 'NO'} "
        f"({_kept(ours['kept_fraction'])})",
    ]
    head = "**Target met.**" if t["met"] else "**Target not met.**"
    return head + " " + "; ".join(parts) + "."


def markdown(study: Study, summary: dict[str, Any], command: str) -> str:
    """placement.md: parameters, load, tables, target check, figure."""
    c = study.config
    seed = summary["representative_seed"]
    lines = [
        "# Placement study",
        "",
        f"{c.cluster.nodes} nodes x {c.cluster.node_mem_gib:g} GiB ({c.cluster.base_gib:g} GiB each for the "
        f"system and the hub), {len(study.results)} seeds, {summary['users']} users, "
        f"peak arrival rate {summary['peak_rate_per_min']:.2f}/min (calibrated). Front door: "
        f"mem_per_server {c.mem_per_server_gib:g} GiB, pending_seconds {c.pending_seconds:g}, "
        f"sticky_headroom {c.sticky_headroom:g}, learned_running_quantile {c.running_quantile:g}. "
        f"Medians over seeds; the last of {c.workload.days} "
        "simulated days is measured.",
        "",
        load_line(study, summary),
        "",
        table(study, summary),
        "",
        verdict(summary),
        "",
    ]
    sweep = [r for r in sweep_rows(study) if r in summary["policies"]]
    if sweep:
        lines += [
            "Trade-off: multijhub's policy (the same code, learned sizes) over `sticky_headroom` "
            "and over `learned_running_quantile` "
            f"(plot: {TRADEOFF_NAME}).",
            "",
            table(study, summary, ["multijhub", *sweep]),
            "",
        ]
    lines += [
        f"![node memory over the day, seed {seed}]({PLOT_NAME})",
        "",
        f"Node memory over the measured day for seed {seed} "
        "(the seed whose multijhub peak ratio is the median).",
        "",
        "Definitions: *ideal* = memory in use on all nodes / N at the same minute. *Fullest peak / ideal "
        "peak* = max over the day of the fullest node / max over the day of the ideal. *Max fullest / "
        "ideal* = max over the minutes where the ideal is at least 25 % of a node of fullest / ideal. "
        "*OOM node-minutes* = minutes x nodes whose use exceeds the node's memory (nothing is killed; "
        "the count says how often it would be). *Kept* = placements of users who had a previous node "
        "that land on it. *oracle (reference)* knows every server's final size (no front door can) "
        "and is a bound, not a contender. *multijhub* is the front door's code with learned sizes: "
        "the probes report each running server's memory and peak (cgroup), the store keeps each "
        "user's session peaks, a new server counts at the 0.9 quantile of its user's last 10 peaks "
        "(mem_per_server for a user not seen before), the servers already on a node (running or "
        "placed) at the learned_running_quantile of theirs. *multijhub before (fixed sizes)* is the same "
        "code without the servers' memory: every new or pending server counts mem_per_server.",
        "",
        f"Reproduce: `{command}`",
        "",
    ]
    return "\n".join(lines)
