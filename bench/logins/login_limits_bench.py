"""A class logging in at once, and twenty wrong passwords: against the test cluster's front door.

Real PAM, gunicorn (the role's unit) and hubs: run it while the molecule cluster is up
(``make demo`` or a converged scenario), from the repository:

    .venv/bin/python bench/logins/login_limits_bench.py [--users 30] [--wait]

It creates ``--users`` accounts (``mjbench01``...) with the same UID on every cluster host
through ``podman exec`` (removed at the end), then:

1. **Baseline**: the same users logging in one after the other (one at a time).
2. **A class at once**: all of them logging in concurrently from one address (the machine
   running the bench, as every browser of a room behind one NAT would). Each login is the
   login POST followed by ``GET /`` up to the hand-off page (the auto-submitted proof form).
   Prints successes, failures by status, p50/p95/max.
3. **Twenty wrong passwords** for one user (5 at a time), then the right one: the statuses,
   the ``Retry-After`` the front door gives, whether an unrelated user logs in right away,
   and with ``--wait`` the measured time until the right password is accepted again.

Numbers are printed, never asserted (the cluster tests assert the behaviour).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

# The cluster's one address (multijhub_public_url in molecule/cluster.yml).
FRONTDOOR = f"https://127.0.0.1:{os.environ.get('MULTIJHUB_PUBLIC_PORT', '18443')}"
PUBLIC_CERT = "/etc/multijhub/frontdoor/tls/frontdoor.crt"
HOSTS = ("home1", "hub1", "hub2", "frontdoor1")
FIRST_UID = 3101
STORE = "/var/lib/multijhub/frontdoor/assignments.sqlite3"
PYTHON = "/opt/multijhub/frontdoor/bin/python"
CLEAR = "DELETE FROM login_failures"  # the throttle's table (forget the counted failed logins)


def trust_public_certificate() -> None:
    """Verify the cluster's one address (self-signed on the test cluster) with its own certificate,
    read from frontdoor1: requests honours REQUESTS_CA_BUNDLE."""
    pem = subprocess.run(
        ["podman", "exec", "frontdoor1", "cat", PUBLIC_CERT], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkstemp(prefix="multijhub-public-", suffix=".crt")[1])
    path.write_text(pem)
    os.environ["REQUESTS_CA_BUNDLE"] = str(path)


def podman(host: str, *argv: str, stdin: str | None = None) -> None:
    subprocess.run(
        ["podman", "exec", "-i", host, *argv], input=stdin, text=True, check=True, capture_output=True
    )


def make_users(n: int) -> dict[str, str]:
    users = {f"mjbench{i:02d}": f"Bench-pw-{i:02d}-x" for i in range(1, n + 1)}
    lines = "\n".join(f"{u}:{p}" for u, p in users.items()) + "\n"
    for host in HOSTS:
        for i, user in enumerate(users):
            uid = str(FIRST_UID + i)
            podman(
                host,
                "sh",
                "-c",
                f"getent passwd {user} >/dev/null || {{ groupadd -g {uid} {user} && "
                f"useradd -M -N -u {uid} -g {uid} -s /bin/bash {user}; }}",
            )
        podman(host, "chpasswd", stdin=lines)
    return users


def drop_users(users: dict[str, str]) -> None:
    for host in HOSTS:
        for user in users:
            subprocess.run(
                ["podman", "exec", host, "sh", "-c", f"userdel {user}; groupdel {user}"],
                capture_output=True,
                check=False,
            )


def clear_failures() -> None:
    code = f"import sqlite3; c = sqlite3.connect({STORE!r}); c.execute({CLEAR!r}); c.commit()"
    podman("frontdoor1", PYTHON, "-c", code)


def login(user: str, password: str, follow: bool = True) -> tuple[int, float, requests.Response]:
    """(status, seconds from the login POST to the hand-off page, last response)."""
    session = requests.Session()
    page = session.get(f"{FRONTDOOR}/login", timeout=30)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    started = time.perf_counter()
    reply = session.post(
        f"{FRONTDOOR}/login",
        data={"username": user, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=120,
    )
    if reply.status_code != 303 or not follow:
        return reply.status_code, time.perf_counter() - started, reply
    answer = session.get(f"{FRONTDOOR}/", allow_redirects=False, timeout=120)
    elapsed = time.perf_counter() - started
    ok = answer.status_code == 200 and 'id="handoff"' in answer.text
    return (200 if ok else answer.status_code), elapsed, answer


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(q * len(values) + 0.5) - 1))]


def show(label: str, results: list[tuple[int, float, requests.Response]]) -> None:
    times = [t * 1000 for status, t, _ in results if status == 200]
    codes = Counter(status for status, _, _ in results)
    line = f"{label:<34} ok {codes.get(200, 0):>2}/{len(results)}  statuses {dict(codes)}"
    if times:
        p50, p95 = statistics.median(times), pct(times, 0.95)
        line += f"  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {max(times):7.1f} ms"
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--wait", action="store_true", help="wait until the throttled name logs in again")
    args = parser.parse_args()
    trust_public_certificate()
    print(f"front door {FRONTDOOR}; creating {args.users} users on {', '.join(HOSTS)}", flush=True)
    users = make_users(args.users)
    try:
        clear_failures()
        names = list(users)
        show("baseline: one at a time", [login(u, users[u]) for u in names])
        with ThreadPoolExecutor(len(names)) as pool:
            started = time.perf_counter()
            results = list(pool.map(lambda u: login(u, users[u]), names))
            wall = time.perf_counter() - started
        show(f"{len(names)} at once, one address", results)
        print(f"  wall time for the whole class: {wall:.2f} s", flush=True)

        victim, other = names[0], names[1]
        clear_failures()
        started = time.perf_counter()
        with ThreadPoolExecutor(5) as pool:
            wrong = list(pool.map(lambda n: login(victim, f"wrong-{n}", follow=False), range(20)))
        print(
            f"20 wrong passwords for {victim}: statuses {dict(Counter(s for s, _, _ in wrong))}"
            f" in {time.perf_counter() - started:.1f} s (pam_faildelay on each one PAM saw)",
            flush=True,
        )
        refused_times = [t * 1000 for s, t, _ in wrong if s == 429]
        if refused_times:
            print(f"  refused (429) answers: p50 {statistics.median(refused_times):.1f} ms (PAM not asked)")
        status, _, reply = login(victim, users[victim], follow=False)
        retry = reply.headers.get("Retry-After")
        print(f"then the right password for {victim}: {status}, Retry-After {retry} s", flush=True)
        status, elapsed, _ = login(other, users[other])
        print(f"an unrelated user ({other}) right after: {status} in {elapsed * 1000:.1f} ms", flush=True)
        if args.wait and retry:
            since = time.perf_counter()
            while True:
                status, _, _ = login(victim, users[victim], follow=False)
                if status == 303:
                    break
                time.sleep(5)
            print(
                f"{victim} logged in again {time.perf_counter() - since:.0f} s after the refusal", flush=True
            )
    finally:
        clear_failures()
        drop_users(users)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
