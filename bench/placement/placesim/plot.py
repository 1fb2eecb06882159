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


def _short(label: str) -> str:
    """A point's label on the plot: settings by their values (the legend names the series)."""
    if label.startswith("defaults"):
        return "default"
    if "=" in label:
        return label.split("=", 1)[1]
    return label


def plot_tradeoff(
    points: Sequence[tuple[str, float, float]], path: Path, target: tuple[float, float]
) -> None:
    """Peak ratio against returning users kept: one labelled point per (label, kept, ratio).

    ``target`` is (least kept fraction, largest peak ratio): the target region is shaded. Two
    panels: every point, and the corner where the front door's settings lie.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), gridspec_kw={"width_ratios": [1, 1.4]})
    kept_min, ratio_max = target
    series = {
        "sticky": ("tab:blue", "multijhub over sticky_headroom"),
        "learned": ("tab:orange", "multijhub over learned_running_quantile"),
        "defaults": ("tab:red", "multijhub, defaults"),
    }
    ratios = [r for _, _, r in points] + [ratio_max]
    for ax, zoom in zip(axes, (False, True)):
        ax.axhspan(0, ratio_max, xmin=0, xmax=1, color="green", alpha=0.05)
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
        seen: set[str] = set()
        for label, kept, ratio in points:
            prefix = next((p for p in series if label.startswith(p)), "")
            colour, name = series.get(prefix, ("tab:gray", "other policies"))
            if zoom and kept < 0.75:
                continue
            ax.plot(100 * kept, ratio, "o", color=colour, label=None if name in seen else name)
            seen.add(name)
            text = _short(label) if zoom or not prefix or prefix == "defaults" else ""
            if text:
                ax.annotate(text, (100 * kept, ratio), textcoords="offset points", xytext=(5, 3), fontsize=7)
        ax.set_xlabel("returning users kept on their node (%, median over seeds)", fontsize=8)
        ax.grid(alpha=0.3)
        if zoom:
            ax.set_xlim(75, 101)
            ax.set_ylim(min(ratios) - 0.01, max(r for _, k, r in points if k >= 0.75) + 0.02)
            ax.set_title("the front door's settings (labels: the setting's value)", fontsize=8)
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.set_xlim(0, 102)
            ax.set_ylim(min(ratios) - 0.02, max(ratios) + 0.03)
            ax.set_ylabel("fullest peak / ideal peak (median over seeds)", fontsize=8)
            ax.set_title("every policy of the run", fontsize=8)
    fig.tight_layout()
    # SVG (by the file name) with no date and fixed element ids: the same numbers give the same file.
    with mpl.rc_context({"svg.hashsalt": "placesim", "svg.fonttype": "none"}):
        fig.savefig(path, dpi=110, metadata={"Date": None})
    plt.close(fig)
