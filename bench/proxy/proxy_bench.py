#!/usr/bin/env python3
"""What the front door's proxy costs: a user's server reached through nginx against directly.

    bench/proxy/proxy_bench.py [--container frontdoor1] [--rounds 3] [--out bench/results/proxy]

On the running test cluster in proxied mode (make demo, or a converged molecule scenario). A
hub's port accepts only the front door hosts, so the measuring client runs ON the front door:
this script makes a throwaway directory there (``podman exec``), a venv in it with
websocket-client (offline from the test cluster's wheelhouse when it is mounted, else from the
package index), copies ``on_frontdoor.py`` next to it, runs it with the user's password on stdin,
and removes the directory at the end. Both paths are TLS and verified:

  direct    https://hub1:8000/node/hub1/user/juser1/...   (the internal CA, hub-ca.crt)
  proxied   https://127.0.0.1:8443/node/hub1/user/juser1/... on the front door, with the Host
            and Origin of the public URL https://127.0.0.1:18443 (the front door's certificate)

Per path, interleaved one sample of each in turn (the first path alternating between rounds):
p50/p95 of a small request (``GET api/status``), p50/p95 of a kernel ``execute_request`` ->
``execute_reply`` round trip over the kernel's websocket, and the throughput of downloading a
100 MB file (``GET files/<name>``). Prints a table with the differences and the issue's goals
(at most 1 ms added at p50, at least 80 % of the direct throughput) as PASS/MISS lines: printed,
never asserted. Writes proxy.md and proxy.json under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("on_frontdoor.py")
CLUSTER = REPO / "molecule" / "cluster.yml"
REQUIREMENTS_DEV = REPO / "requirements-dev.txt"
WHEELHOUSE = "/var/cache/multijhub/wheels"  # the test inventory's multijhub_pip_wheelhouse
ROUTES = ("direct", "proxied")
GOAL_ADDED_MS = 1.0  # issue 18: at most 1 ms added at p50 (small request, execute round trip)
GOAL_THROUGHPUT = 0.80  # issue 18: at least 80 % of the direct throughput


class BenchError(Exception):
    """The bench cannot run or failed; the message says why."""


# --- Statistics ----------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in (0, 100]) of a non-empty list; ValueError otherwise."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile {pct} is not in (0, 100]")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * pct / 100)) - 1]


def pooled(rounds: list[dict[str, Any]], metric: str, route: str) -> list[float]:
    """Every round's samples of ``metric`` (request_ms, execute_ms, download_mbps) for ``route``."""
    return [value for rnd in rounds for value in rnd[metric][route]]


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The figures of a run (on_frontdoor.py's JSON): per metric and path, and the goals.

    Shape: {"request_ms"|"execute_ms": {route: {"p50", "p95", "n", "round_p50s"}, "added_p50_ms",
    "added_p95_ms"}, "download_mbps": {route: {"median", "min", "max", "n", "round_medians"},
    "ratio"}, "goals": [{"goal", "value", "pass"}]}. Milliseconds and MB/s (10**6 bytes).
    """
    rounds = result["rounds"]
    summary: dict[str, Any] = {}
    for metric in ("request_ms", "execute_ms"):
        per: dict[str, Any] = {}
        for route in ROUTES:
            values = pooled(rounds, metric, route)
            per[route] = {
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "n": len(values),
                "round_p50s": [percentile(rnd[metric][route], 50) for rnd in rounds],
            }
        per["added_p50_ms"] = per["proxied"]["p50"] - per["direct"]["p50"]
        per["added_p95_ms"] = per["proxied"]["p95"] - per["direct"]["p95"]
        summary[metric] = per
    down: dict[str, Any] = {}
    for route in ROUTES:
        values = pooled(rounds, "download_mbps", route)
        down[route] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "n": len(values),
            "round_medians": [statistics.median(rnd["download_mbps"][route]) for rnd in rounds],
        }
    down["ratio"] = down["proxied"]["median"] / down["direct"]["median"]
    summary["download_mbps"] = down
    summary["goals"] = [
        {
            "goal": f"small request: at most {GOAL_ADDED_MS:g} ms added at p50",
            "value": f"{summary['request_ms']['added_p50_ms']:+.2f} ms",
            "pass": summary["request_ms"]["added_p50_ms"] <= GOAL_ADDED_MS,
        },
        {
            "goal": f"execute round trip: at most {GOAL_ADDED_MS:g} ms added at p50",
            "value": f"{summary['execute_ms']['added_p50_ms']:+.2f} ms",
            "pass": summary["execute_ms"]["added_p50_ms"] <= GOAL_ADDED_MS,
        },
        {
            "goal": f"download: at least {GOAL_THROUGHPUT:.0%} of the direct throughput",
            "value": f"{down['ratio']:.0%}",
            "pass": down["ratio"] >= GOAL_THROUGHPUT,
        },
    ]
    return summary


def connections(rnd: dict[str, Any]) -> str:
    """How the paths' HTTP connections behaved in a round's timed requests, in words."""
    parts = []
    for route in ROUTES:
        c = rnd["request_connections"][route]
        parts.append(
            f"{route}: {c['opened_in_sample']} new inside samples ({c['tls_resumed']} TLS resumed), "
            f"{c['opened_untimed']} before the clock, {c['found_dropped']} found dropped"
        )
    return "; ".join(parts)


def render(summary: dict[str, Any], result: dict[str, Any], config: dict[str, Any]) -> str:
    """The Markdown table, the per-round figures and the goals' PASS/MISS lines."""
    req, exe, down = summary["request_ms"], summary["execute_ms"], summary["download_mbps"]
    rows = [
        "| metric | direct | proxied | difference |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, per in (("small request (GET api/status)", req), ("execute round trip", exe)):
        for pct in ("p50", "p95"):
            rows.append(
                f"| {label} {pct}, ms | {per['direct'][pct]:.2f} | {per['proxied'][pct]:.2f} | "
                f"{per['proxied'][pct] - per['direct'][pct]:+.2f} ms |"
            )
    rows.append(
        f"| download of {config['file_mb']} MB, MB/s (median; min-max) | "
        f"{down['direct']['median']:.0f} ({down['direct']['min']:.0f}-{down['direct']['max']:.0f}) | "
        f"{down['proxied']['median']:.0f} ({down['proxied']['min']:.0f}-{down['proxied']['max']:.0f}) | "
        f"{down['ratio']:.0%} of direct |"
    )
    lines = [*rows, ""]
    rounds = result["rounds"]
    lines.append(
        f"{len(rounds)} rounds, per path and round {config['requests']} requests, "
        f"{config['executes']} executes, {config['downloads']} downloads (after {config['warmup']} "
        f"untimed requests and executes); samples per path: requests {req['direct']['n']}, "
        f"executes {exe['direct']['n']}, downloads {down['direct']['n']}."
    )
    for index, rnd in enumerate(rounds):
        lines.append(
            f"round {rnd['round']} ({' first, '.join(rnd['order'])} second): "
            f"request p50 {req['direct']['round_p50s'][index]:.2f} / "
            f"{req['proxied']['round_p50s'][index]:.2f} ms, "
            f"execute p50 {exe['direct']['round_p50s'][index]:.2f} / "
            f"{exe['proxied']['round_p50s'][index]:.2f} ms, download "
            f"{down['direct']['round_medians'][index]:.0f} / "
            f"{down['proxied']['round_medians'][index]:.0f} MB/s "
            "(direct / proxied)"
        )
    for rnd in rounds:
        lines.append(f"round {rnd['round']}, connections during the timed requests: {connections(rnd)}")
    load = ", ".join(f"{value:.2f}" for value in result["loadavg_1min"])
    lines.append(f"1-minute load average on the front door, before and after each round: {load}")
    lines.append("")
    for goal in summary["goals"]:
        lines.append(f"{'PASS' if goal['pass'] else 'MISS'}  {goal['goal']}: {goal['value']}")
    return "\n".join(lines)


# --- The run on the front door ---------------------------------------------------------------------


def pinned(requirement: str, path: Path = REQUIREMENTS_DEV) -> str:
    """``name==version`` of ``requirement`` as pinned in requirements-dev.txt (one place for pins)."""
    pattern = re.compile(rf"^{re.escape(requirement)}==\S+", re.IGNORECASE | re.MULTILINE)
    match = pattern.search(path.read_text())
    if match is None:
        raise BenchError(f"{requirement} is not pinned in {path}")
    return match.group(0)


def password_of(user: str, path: Path = CLUSTER) -> str:
    """The test user's password from the test inventory (it lives there and nowhere else)."""
    import yaml  # noqa: PLC0415 (only when no --password-file is given)

    inventory = yaml.safe_load(path.read_text())["provisioner"]["inventory"]["group_vars"]["all"]
    for entry in inventory.get("molecule_test_users", []):
        if entry.get("name") == user:
            return str(entry["password"])
    raise BenchError(f"{user} is not a test user of {path}: give --password-file")


class Frontdoor:
    """Commands on the front door container through ``podman exec`` (as root)."""

    def __init__(self, container: str, podman: str = "podman") -> None:
        self.container = container
        self.podman = podman

    def run(
        self, *argv: str, stdin: str | None = None, capture: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        command = [self.podman, "exec", *(["-i"] if stdin is not None else []), self.container, *argv]
        try:
            return subprocess.run(
                command,
                input=stdin,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE if capture else None,
                text=True,
                check=False,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as error:
            raise BenchError(
                f"{shlex.join(argv)} on {self.container}: no end within {timeout:.0f} s"
            ) from error

    def check(self, *argv: str, timeout: float = 600) -> str:
        done = self.run(*argv, timeout=timeout)
        if done.returncode != 0:
            raise BenchError(
                f"{shlex.join(argv)} on {self.container} failed (rc {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done.stdout

    def copy_in(self, source: Path, dest: str) -> None:
        done = subprocess.run(
            [self.podman, "cp", str(source), f"{self.container}:{dest}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"podman cp {source} {self.container}:{dest}: {done.stderr.strip()}")


def client_args(args: argparse.Namespace) -> list[str]:
    """on_frontdoor.py's options from ours (the same names)."""
    out = [
        f"--user={args.user}",
        f"--hub={args.hub}",
        f"--hub-port={args.hub_port}",
        f"--public-url={args.public_url}",
        f"--proxy-addr={args.proxy_addr}",
        f"--rounds={args.rounds}",
        f"--requests={args.requests}",
        f"--executes={args.executes}",
        f"--downloads={args.downloads}",
        f"--warmup={args.warmup}",
        f"--file-mb={args.file_mb}",
    ]
    if args.hub_prefix:
        out.append(f"--hub-prefix={args.hub_prefix}")
    return out


def measure(args: argparse.Namespace, password: str) -> dict[str, Any]:
    """Set up the client on the front door, run it, remove it; its JSON result."""
    door = Frontdoor(args.container, args.podman)
    probe = subprocess.run(
        [args.podman, "container", "exists", args.container], capture_output=True, check=False
    )
    if probe.returncode != 0:
        raise BenchError(
            f"no container {args.container}: bring the test cluster up first "
            "(make demo, or make molecule-converge)"
        )
    workdir = door.check("mktemp", "-d", "-t", "mjbench-proxy.XXXXXX").strip()
    try:
        print(
            f"[proxy_bench] {args.container}:{workdir}: a venv with {args.websocket_client}", file=sys.stderr
        )
        door.check("python3", "-m", "venv", f"{workdir}/venv")
        offline = door.run("test", "-d", WHEELHOUSE).returncode == 0
        source = ["--no-index", "--find-links", WHEELHOUSE] if offline else []
        door.check(f"{workdir}/venv/bin/pip", "install", "-q", *source, args.websocket_client)
        door.copy_in(CLIENT, f"{workdir}/on_frontdoor.py")
        started = time.monotonic()
        done = subprocess.run(
            [
                args.podman,
                "exec",
                "-i",
                args.container,
                f"{workdir}/venv/bin/python",
                f"{workdir}/on_frontdoor.py",
                *client_args(args),
            ],
            input=password + "\n",
            stdout=subprocess.PIPE,
            stderr=None,  # its progress, as it comes
            text=True,
            check=False,
            timeout=args.max_runtime,
        )
        if done.returncode != 0:
            raise BenchError(
                f"the client on {args.container} failed (rc {done.returncode}; its message above)"
            )
        result: dict[str, Any] = json.loads(done.stdout)
        result["seconds"] = round(time.monotonic() - started, 1)
        result["client_offline_install"] = offline
        return result
    except subprocess.TimeoutExpired as error:
        raise BenchError(
            f"the client on {args.container} did not finish within {args.max_runtime} s"
        ) from error
    finally:
        door.run("rm", "-rf", "--one-file-system", workdir)


# --- Command line ------------------------------------------------------------------------------------


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return number


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--container", default="frontdoor1", help="the front door's container (podman)")
    parser.add_argument("--podman", default="podman", help="the podman command")
    parser.add_argument("--user", default="juser1", help="whose server (a test user of molecule/cluster.yml)")
    parser.add_argument(
        "--password-file",
        type=Path,
        help="a file with the user's password on its first line (default: the test inventory's)",
    )
    parser.add_argument("--hub", default="hub1", help="the hub the server runs on (its inventory name)")
    parser.add_argument("--hub-port", type=positive, default=8000, help="the hub's TLS port")
    parser.add_argument(
        "--hub-prefix", default=None, help="the hub's base_url without the final / (default /node/HUB)"
    )
    parser.add_argument(
        "--public-url",
        default=f"https://127.0.0.1:{os.environ.get('MULTIJHUB_PUBLIC_PORT', '18443')}",
        help="the address users see (default: the test cluster's, molecule/cluster.yml)",
    )
    parser.add_argument("--proxy-addr", default="127.0.0.1:8443", help="nginx's address on the front door")
    parser.add_argument("--rounds", type=positive, default=3)
    parser.add_argument("--requests", type=positive, default=300, help="small requests per path and round")
    parser.add_argument(
        "--executes", type=positive, default=200, help="execute round trips per path and round"
    )
    parser.add_argument("--downloads", type=positive, default=3, help="downloads per path and round")
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed requests and executes per path and round"
    )
    parser.add_argument(
        "--file-mb", type=positive, default=100, help="the downloaded file's size, MB (10**6 bytes)"
    )
    parser.add_argument(
        "--max-runtime", type=positive, default=1800, help="seconds before the client is stopped"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "proxy")
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup: must not be negative")
    if not re.fullmatch(r"https://[^/@?#\s]+/?", args.public_url):
        parser.error(f"--public-url: {args.public_url!r} is not https://name[:port] without a path")
    if not re.fullmatch(r"[^:\s]+:\d{1,5}", args.proxy_addr):
        parser.error(f"--proxy-addr: {args.proxy_addr!r} is not host:port")
    if args.hub_prefix is not None and not re.fullmatch(r"(/[^/\s]+)+", args.hub_prefix):
        parser.error(f"--hub-prefix: {args.hub_prefix!r} is not a path starting with / and not ending with /")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.websocket_client = pinned("websocket-client")
        if args.password_file is not None:
            password = (args.password_file.read_text().splitlines() or [""])[0]
        else:
            password = password_of(args.user)
        if not password:
            raise BenchError("the user's password is empty")
        result = measure(args, password)
    except (BenchError, OSError) as error:
        print(f"proxy_bench: {error}", file=sys.stderr)
        return 2
    config = {
        key: getattr(args, key)
        for key in (
            "container",
            "user",
            "hub",
            "hub_port",
            "public_url",
            "proxy_addr",
            "rounds",
            "requests",
            "executes",
            "downloads",
            "warmup",
            "file_mb",
        )
    }
    summary = summarize(result)
    text = render(summary, result, config)
    print(
        f"{args.user}'s server on {args.hub} ({result['server_path']}), from {args.container}: "
        f"direct https://{args.hub}:{args.hub_port}, proxied {args.public_url} via nginx at {args.proxy_addr}"
    )
    print(text)
    if result.get("left_behind"):
        print(f"left behind on the cluster: {result['left_behind']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "proxy.md").write_text(text + "\n")
    (args.out / "proxy.json").write_text(
        json.dumps({"config": config, "summary": summary, "result": result}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
