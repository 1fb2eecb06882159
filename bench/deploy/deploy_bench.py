#!/usr/bin/env python3
"""Deployment figures on the test cluster, each against a baseline measured in the same run.

    bench/deploy/deploy_bench.py --inventory INV [--first] [--repeat 5] [--out bench/results/deploy]

Measures (wall-clock seconds, median of --repeat runs where repeated):
  - baseline: ``ansible all -m ansible.builtin.ping`` and ``ansible hubs -m ansible.builtin.ping``;
  - ``site.yml`` first run (only with --first, on a freshly created and prepared cluster);
  - ``site.yml`` second run, which must report no change (checked: the bench fails otherwise);
  - ``where.yml -e user=juser1``;
  - counted, not timed: a third ``site.yml`` (no change) at -vvv, its remote file transfers (ssh
    ``PUT`` of a file: a copy or template that sends content; modules travel by pipelining) and its
    remote module runs (``EXEC``).
Prints a Markdown table with each figure's ratio to its baseline; writes deploy.md and deploy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], inventory: str) -> tuple[float, str, int]:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"), ANSIBLE_NOCOLOR="1")
    started = time.perf_counter()
    proc = subprocess.run(
        [*argv, "-i", inventory],
        check=False,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return time.perf_counter() - started, proc.stdout, proc.returncode


def changed_total(output: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", output.rsplit("PLAY RECAP", maxsplit=1)[-1]))


def transfers(output: str) -> tuple[int, int]:
    """(remote file transfers, remote commands) in a -vvv run's output."""
    puts = len(re.findall(r"^<[^>]+> PUT ", output, re.M))
    execs = len(re.findall(r"^<[^>]+> SSH: EXEC ", output, re.M))
    return puts, execs


def median_of(argv: list[str], inventory: str, repeat: int, ok: tuple[int, ...] = (0,)) -> float:
    times = []
    for _ in range(repeat):
        seconds, output, rc = run(argv, inventory)
        if rc not in ok:
            sys.exit(f"{' '.join(argv)} failed (rc {rc}):\n{output[-3000:]}")
        times.append(seconds)
    return statistics.median(times)


def interleaved(
    first: list[str], second: list[str], inventory: str, repeat: int, second_ok: tuple[int, ...] = (0,)
) -> tuple[float, float]:
    """Medians of ``first`` and ``second`` run in turn, so drift on the machine hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for argv, series, ok in ((first, times[0], (0,)), (second, times[1], second_ok)):
            seconds, output, rc = run(argv, inventory)
            if rc not in ok:
                sys.exit(f"{' '.join(argv)} failed (rc {rc}):\n{output[-3000:]}")
            series.append(seconds)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--first", action="store_true", help="also time the first site.yml (fresh cluster)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "deploy")
    args = parser.parse_args()
    inv = args.inventory

    rows: list[tuple[str, float, str, float]] = []
    ping_all = median_of(["ansible", "all:!outsiders", "-m", "ansible.builtin.ping"], inv, args.repeat)
    if args.first:
        seconds, output, rc = run(["ansible-playbook", "site.yml"], inv)
        if rc != 0:
            sys.exit(f"first site.yml failed:\n{output[-3000:]}")
        rows.append(("site.yml, first run", seconds, "ping all", ping_all))
    second, output, rc = run(["ansible-playbook", "site.yml"], inv)
    if rc != 0 or changed_total(output) != 0:
        changed = changed_total(output)
        sys.exit(f"second site.yml must succeed and change nothing (rc {rc}, changed {changed})")
    rows.append(("site.yml, second run (no change)", second, "ping all", ping_all))
    ping_hubs, where = interleaved(
        ["ansible", "hubs", "-m", "ansible.builtin.ping"],
        ["ansible-playbook", "where.yml", "-e", "user=juser1"],
        inv,
        args.repeat,
        second_ok=(0, 2),  # juser1 has no server here: 2 is where.yml's "not running"
    )
    rows.append(("where.yml -e user=juser1", where, "ping hubs", ping_hubs))

    _, output, rc = run(["ansible-playbook", "-vvv", "site.yml"], inv)
    if rc != 0 or changed_total(output) != 0:
        sys.exit(f"third site.yml must succeed and change nothing (rc {rc})")
    puts, execs = transfers(output)

    lines = ["| what | seconds | baseline | baseline seconds | ratio |", "| --- | ---: | --- | ---: | ---: |"]
    lines += [f"| {w} | {s:.1f} | {b} | {bs:.1f} | {s / bs:.2f} |" for w, s, b, bs in rows]
    table = "\n".join(lines)
    table += f"\n\nA no-change site.yml: {puts} remote file transfers, {execs} remote commands (ssh EXEC)."
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deploy.md").write_text(table + "\n")
    records: list[dict[str, object]] = [
        {"what": w, "seconds": s, "baseline": b, "baseline_seconds": bs} for w, s, b, bs in rows
    ]
    records.append({"what": "no-change site.yml", "file_transfers": puts, "remote_commands": execs})
    (args.out / "deploy.json").write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
