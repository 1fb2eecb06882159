#!/usr/bin/env python3
"""How long a user's server is unreachable while site.yml restarts every hub (goal: 0 s).

    bench/restart/restart_bench.py --inventory INV [--user juser1] [--interval 0.1]
                                   [--out bench/results/restart]

On the running test cluster (make demo, or molecule converge): logs the user in at their hub,
starts their server, and takes a token of the user's. Then, while ``ansible-playbook site.yml``
runs, polls every ``--interval`` seconds (default 100 ms, 1 s timeout per request):

  - the user's server through its public URL (``{hub}/user/{user}/api/kernels``, what JupyterLab
    polls: the hub's proxy, then the server; it counts as the user's activity, as an open browser
    does, so the idle culler leaves the server alone), and
  - each hub's own ``/hub/health`` (the hub's restart window).

Three site.yml runs, each polled: the baseline, a run that changes nothing (no hub restarts); a
run that changes a hub setting (``-e jupyterhub_cull_every=N``: every hub restarts, one at a
time); and the run that puts the setting back (every hub restarts again). A poll that fails or
does not answer 200 counts as unreachable until the next poll. Prints a Markdown table and
writes restart.md and restart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
MOLECULE = REPO / "molecule" / "default" / "molecule.yml"
# The venv's own ansible-playbook when run with the venv's python outside make.
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
if not Path(ANSIBLE_PLAYBOOK).exists():
    ANSIBLE_PLAYBOOK = "ansible-playbook"
# The cluster's one address (multijhub_public_url in molecule/cluster.yml): each hub at /node/<hub>.
PUBLIC = f"https://127.0.0.1:{os.environ.get('MULTIJHUB_PUBLIC_PORT', '18443')}"
HUBS = {"hub1": f"{PUBLIC}/node/hub1", "hub2": f"{PUBLIC}/node/hub2"}
PUBLIC_CERT = "/etc/multijhub/frontdoor/tls/frontdoor.crt"


def trust_public_certificate() -> None:
    """Verify the cluster's one address (self-signed on the test cluster) with its own certificate,
    read from frontdoor1: requests honours REQUESTS_CA_BUNDLE."""
    pem = subprocess.run(
        ["podman", "exec", "frontdoor1", "cat", PUBLIC_CERT], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkstemp(prefix="multijhub-public-", suffix=".crt")[1])
    path.write_text(pem)
    os.environ["REQUESTS_CA_BUNDLE"] = str(path)


@dataclass
class Poller:
    """Polls one URL in a thread; records (time, ok) per poll."""

    name: str
    url: str
    interval: float
    headers: dict[str, str] = field(default_factory=dict)
    samples: list[tuple[float, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        session = requests.Session()
        next_at = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                ok = session.get(self.url, headers=self.headers, timeout=1.0).status_code == 200
            except requests.RequestException:
                ok = False
                session = requests.Session()  # a fresh connection after a failure
            self.samples.append((started, ok))
            next_at = max(next_at + self.interval, time.monotonic())
            self._stop.wait(next_at - time.monotonic())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def outages(self, end: float) -> list[float]:
        """Lengths (s) of the windows during which the URL did not answer."""
        windows: list[float] = []
        down_since: float | None = None
        for at, ok in self.samples:
            if not ok and down_since is None:
                down_since = at
            elif ok and down_since is not None:
                windows.append(at - down_since)
                down_since = None
        if down_since is not None:
            windows.append(end - down_since)
        return windows


def password_of(user: str) -> str:
    """The test user's password from the test inventory (it lives there and nowhere else)."""
    inventory = yaml.safe_load(MOLECULE.read_text())["provisioner"]["inventory"]["group_vars"]["all"]
    for entry in inventory["molecule_test_users"]:
        if entry["name"] == user:
            return str(entry["password"])
    sys.exit(f"{user} is not a test user of {MOLECULE}")


def open_server(hub: str, user: str, password: str) -> str:
    """Log in, start the server, wait until it answers; return a token of the user's."""
    session = requests.Session()
    session.get(f"{hub}/hub/login", timeout=10).raise_for_status()
    xsrf = session.cookies.get("_xsrf", "")
    reply = session.post(
        f"{hub}/hub/login?next=/hub/spawn",
        data={"username": user, "password": password, "_xsrf": xsrf},
        timeout=60,
    )
    reply.raise_for_status()
    reply = session.post(
        f"{hub}/hub/api/users/{user}/tokens",
        headers={"X-XSRFToken": session.cookies.get("_xsrf", "", path="/hub/")},
        json={"note": "bench/restart", "expires_in": 3600},
        timeout=30,
    )
    reply.raise_for_status()
    token = str(reply.json()["token"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status = requests.get(
                f"{hub}/user/{user}/api/status", headers={"Authorization": f"token {token}"}, timeout=5
            )
            if status.status_code == 200:
                return token
        except requests.RequestException:
            pass
        time.sleep(1)
    sys.exit(f"{user}'s server at {hub} did not answer within 120 s")


def site(inventory: str, *extra: str, playbook: str = "site.yml") -> tuple[float, str, int]:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"), ANSIBLE_NOCOLOR="1")
    started = time.perf_counter()
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", inventory, playbook, *extra],
        check=False,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return time.perf_counter() - started, proc.stdout, proc.returncode


def restarts(output: str) -> int:
    """How many hub restarts the run's restart handlers made."""
    count, in_restart = 0, False
    for line in output.splitlines():
        if line.startswith(("TASK ", "PLAY ", "RUNNING HANDLER ")):
            in_restart = line.startswith("RUNNING HANDLER ") and "Restart" in line
        elif in_restart and line.startswith("changed: ["):
            count += 1
    return count


def measured_run(
    label: str, inventory: str, pollers: list[Poller], *extra: str, playbook: str = "site.yml"
) -> dict[str, object]:
    for poller in pollers:
        poller.samples.clear()
    seconds, output, rc = site(inventory, *extra, playbook=playbook)
    if rc != 0:
        sys.exit(f"{playbook} {' '.join(extra)} failed (rc {rc}):\n{output[-3000:]}")
    end = time.monotonic()
    row: dict[str, object] = {
        "run": label,
        "site_seconds": round(seconds, 1),
        "hub_restarts": restarts(output),
    }
    for poller in pollers:
        windows = poller.outages(end)
        row[poller.name] = {
            "polls": len(poller.samples),
            "unreachable_seconds": round(sum(windows), 2),
            "longest_seconds": round(max(windows, default=0.0), 2),
            "windows": len(windows),
        }
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="molecule's inventory of the running test cluster")
    parser.add_argument("--user", default="juser1")
    parser.add_argument("--hub", default="hub1", help="the hub the user's server runs on")
    parser.add_argument(
        "--hub-url",
        action="append",
        metavar="NAME=URL",
        help="a hub's public URL (repeat for each hub; default: the test inventory's hub1 and hub2)",
    )
    parser.add_argument("--playbook", default="site.yml", help="the playbook that restarts the hubs")
    parser.add_argument(
        "--password", default=None, help="the user's password (default: the test inventory's)"
    )
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("--cull-every", type=int, default=11, help="the changed setting's value")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "restart")
    args = parser.parse_args()
    trust_public_certificate()

    hubs = dict(item.split("=", 1) for item in args.hub_url) if args.hub_url else dict(HUBS)
    if args.hub not in hubs:
        sys.exit(f"--hub {args.hub}: not one of {', '.join(sorted(hubs))}")
    hub = hubs[args.hub]
    token = open_server(hub, args.user, args.password or password_of(args.user))
    server = Poller(
        "server",
        f"{hub}/user/{args.user}/api/kernels",
        args.interval,
        headers={"Authorization": f"token {token}"},
    )
    pollers = [server] + [
        Poller(f"{name} /hub/health", f"{url}/hub/health", args.interval) for name, url in hubs.items()
    ]
    for poller in pollers:
        poller.start()
    try:
        rows = [
            measured_run(
                f"baseline: {args.playbook}, no change", args.inventory, pollers, playbook=args.playbook
            ),
            measured_run(
                f"{args.playbook} -e jupyterhub_cull_every={args.cull_every} (restarts every hub)",
                args.inventory,
                pollers,
                "-e",
                f"jupyterhub_cull_every={args.cull_every}",
                playbook=args.playbook,
            ),
            measured_run(
                f"{args.playbook}, setting put back (restarts every hub)",
                args.inventory,
                pollers,
                playbook=args.playbook,
            ),
        ]
    finally:
        for poller in pollers:
            poller.stop()
        requests.delete(
            f"{hub}/hub/api/users/{args.user}/server", headers={"Authorization": f"token {token}"}, timeout=30
        )

    names = [p.name for p in pollers]
    head = (
        "| run | site.yml s | hub restarts | "
        + " | ".join(f"{n}: unreachable s (longest)" for n in names)
        + " |"
    )
    lines = [head, "| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for row in rows:
        cells = [
            f"{row[n]['unreachable_seconds']:.1f} ({row[n]['longest_seconds']:.1f})"  # type: ignore[index]
            for n in names
        ]
        lines.append(
            f"| {row['run']} | {row['site_seconds']} | {row['hub_restarts']} | " + " | ".join(cells) + " |"
        )
    table = "\n".join(lines)
    print(f"{args.user}'s server on {args.hub} ({server.url}), polled every {args.interval * 1000:.0f} ms")
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restart.md").write_text(table + "\n")
    (args.out / "restart.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
