"""The figure: node memory over the measured day, one panel per policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from .engine import Run


def plot_runs(runs: Sequence[Run], node_mem_gib: float, path: Path, title: str) -> None:
    """One panel per run: a line per node, the ideal (mean) dotted, the capacity dashed."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.3 * len(runs)), sharex=True, sharey=True)
    hours = np.arange(runs[0].used.shape[1]) / 60.0
    top = max(node_mem_gib * 1.1, max(float(r.used.max()) for r in runs) * 1.05)
    for ax, run in zip(np.atleast_1d(axes), runs):
        for i, row in enumerate(run.used):
            ax.plot(hours, row, linewidth=0.9, label=f"hub{i + 1}")
        ax.plot(hours, run.used.mean(axis=0), color="black", linestyle=":", linewidth=1.0, label="ideal")
        ax.axhline(node_mem_gib, color="red", linestyle="--", linewidth=1.0, label="capacity")
        m = run.metrics
        ax.set_title(
            f"{run.policy}: fullest peak / ideal peak {m.peak_ratio:.2f}, OOM node-minutes {m.oom_moments}",
            fontsize=9,
            loc="left",
        )
        ax.set_ylabel("GiB")
        ax.set_ylim(0, top)
        ax.grid(alpha=0.3)
    last = np.atleast_1d(axes)[-1]
    last.set_xlabel("hour of the day")
    last.set_xlim(0, 24)
    last.set_xticks(range(0, 25, 3))
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=7, ncol=len(runs[0].used) + 2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tradeoff(
    points: Sequence[tuple[str, float, float]], path: Path, target: tuple[float, float]
) -> None:
    """Peak ratio against returning users kept: one labelled point per (label, kept, ratio).

    ``target`` is (least kept fraction, largest peak ratio): the target region is shaded.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    kept_min, ratio_max = target
    ax.axvspan(100 * kept_min, 100, ymin=0, ymax=1, color="green", alpha=0.06)
    ax.axhline(
        ratio_max, color="green", linestyle="--", linewidth=0.9, label=f"target: ratio <= {ratio_max:.2f}"
    )
    ax.axvline(
        100 * kept_min,
        color="green",
        linestyle=":",
        linewidth=0.9,
        label=f"target: kept >= {100 * kept_min:.0f} %",
    )
    colours = {"sticky": "tab:blue", "learned": "tab:orange", "defaults": "tab:red"}
    for label, kept, ratio in points:
        colour = next((c for prefix, c in colours.items() if label.startswith(prefix)), "tab:gray")
        ax.plot(100 * kept, ratio, "o", color=colour)
        ax.annotate(label, (100 * kept, ratio), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ratios = [r for _, _, r in points] + [ratio_max]
    ax.set_ylim(min(ratios) - 0.02, max(ratios) + 0.03)
    ax.set_xlabel("returning users kept on their node (%, median over seeds)")
    ax.set_ylabel("fullest peak / ideal peak (median)")
    ax.set_xlim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(
        "multijhub with learned sizes over sticky_headroom (blue) and learned_running_quantile (orange)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
