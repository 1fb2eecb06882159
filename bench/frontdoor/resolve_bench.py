#!/usr/bin/env python3
"""Front door resolution against the proof of concept's method, on emulated nodes (loopback).

    .venv/bin/python bench/frontdoor/resolve_bench.py [--out bench/results/frontdoor]

Emulates N hub nodes on this machine: per node a fake hub REST API (a real HTTP/1.1
server) and an ssh Host alias reaching one extra sshd on 127.0.0.1 whose key for the
front door forces the core's probe (``python3 -m multijhub.core.probe``). Measures, in
the same run: multijhub's resolver (the front door's own ``Resolver``: keep-alive HTTP,
ssh connection sharing, all nodes in parallel, one deadline) against the proof of
concept's method (a new ssh connection to each host in turn running
``ps -p PID | grep jupyterhub``) at 2, 8 and 32 nodes; both with one node black-holed;
and gunicorn (4 workers) on the resolve path: requests per second and resident memory.
Prints a Markdown table, writes frontdoor.md and frontdoor.json. Needs root (or an
account of its own) for the sshd; everything binds 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent

import emulate  # noqa: E402 - beside this script

REPO = HERE.parents[1]
NONE_USER = "nobody"  # no server anywhere (uid 65534 exists on every Debian/RHEL host)
FOUND_NODE = "n01"  # the found user's server runs on this node's hub
BLACKHOLE = "bh00"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_P50 = 0.050
# The front door's probe: persistent sessions (its default, 1 per hub and worker) against one ssh
# per request (channels = 0).
METHODS = ((1, "multijhub"), (0, "multijhub, one ssh per request"))


# --------------------------------------------------------------------------- processes


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds of the process and its reaped children)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        table[int(entry)] = (int(fields[1]), ticks / CLK_TCK)
    return table


def _tree(roots: Sequence[int], table: dict[int, tuple[int, float]]) -> set[int]:
    found = {r for r in roots if r in table}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def pids_matching(fragment: str) -> list[int]:
    """Our processes whose command line contains ``fragment`` (e.g. the work directory)."""
    me = os.getpid()
    return [
        pid
        for pid in (int(e) for e in os.listdir("/proc") if e.isdigit())
        if pid != me and fragment in _cmdline(pid)
    ]


def master_pids(prefix: str) -> list[int]:
    """ssh control masters whose ControlPath starts with ``prefix``.

    A master that forked off a command's ssh is titled ``ssh: <path> [mux]``; the probe's
    own background masters (``ssh -N``) keep their command line.
    """
    me = os.getpid()
    found = []
    for pid in (int(e) for e in os.listdir("/proc") if e.isdigit()):
        cmd = _cmdline(pid)
        if pid != me and (f"ssh: {prefix}" in cmd or (" -N " in cmd and f"ControlPath={prefix}" in cmd)):
            found.append(pid)
    return found


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _status_kib(pid: int, key: str) -> int:
    path = f"/proc/{pid}/smaps_rollup" if key == "Pss" else f"/proc/{pid}/status"
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------- statistics


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Row:
    """One latency series."""

    scenario: str
    method: str
    nodes: int
    user: str
    expected: str
    samples: list[float] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    frontdoor_cpu: float = 0.0  # seconds, whole series
    node_cpu: float = 0.0
    note: str = ""

    def summary(self) -> dict[str, Any]:
        n = len(self.samples)
        timed = self.scenario != "cold start"
        return {
            "scenario": self.scenario,
            "method": self.method,
            "nodes": self.nodes,
            "user": self.user,
            "expected": self.expected,
            "n": n,
            "p50_ms": round(statistics.median(self.samples) * 1000, 1) if n else None,
            "p95_ms": round(pct(self.samples, 0.95) * 1000, 1) if n else None,
            "max_ms": round(max(self.samples) * 1000, 1) if n else None,
            "right_answers": sum(a == self.expected for a in self.answers),
            "answers": sorted(set(self.answers)),
            "frontdoor_cpu_ms_per_request": round(self.frontdoor_cpu / n * 1000, 1) if n and timed else None,
            "node_cpu_ms_per_request": round(self.node_cpu / n * 1000, 1) if n and timed else None,
            "note": self.note,
        }


# --------------------------------------------------------------------------- the bench


class Bench:
    """Everything started for one run; ``close`` stops all of it."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.started = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="mjfd-"))
        stack.callback(emulate.remove_tree, self.workdir)
        stack.callback(self._kill_leftovers)
        self.account = emulate.probe_account(args.account)
        self.found_user = self.account.pw_name  # the probe can list its own runtime directory
        self.token = secrets.token_hex(24)
        self.probe_python = emulate.make_probe_venv(self.workdir)
        self.max_nodes = max(args.nodes)
        self.names = [f"n{i:02d}" for i in range(self.max_nodes)]
        self.secret = self._secret("secret_key", secrets.token_hex(32))
        self.token_file = self._secret("hub_token", self.token)
        self.proof_key = self._secret("proof_key", secrets.token_hex(32))
        self.password_file = self._secret("bench_password", secrets.token_urlsafe(18))

    # ---- setup

    def _secret(self, name: str, value: str) -> str:
        path = self.workdir / name
        path.write_text(value + "\n")
        path.chmod(0o600)
        return str(path)

    def start(self) -> None:
        binary, env = emulate.find_sshd(self.workdir, self.args.sshd)
        self.sshd = emulate.Sshd(self.workdir, self.account, self.probe_python, binary, env)
        self.sshd.setup()
        self.sshd.start()
        self.stack.callback(self.sshd.stop)
        self.stack.callback(self._stop_sshd_children)
        spec = {
            "token": self.token,
            "max_seconds": self.args.max_runtime + 60,
            "nodes": [
                {"name": n, "running": [self.found_user] if n == FOUND_NODE else []} for n in self.names
            ]
            + [{"name": BLACKHOLE, "blackhole": True}],
        }
        self.hubs = emulate.HubsProcess(spec, self.workdir)
        self.stack.callback(self.hubs.stop)
        ports = {n: self.sshd.port for n in self.names}
        ports[BLACKHOLE] = self.hubs.silent[BLACKHOLE]["ssh"]
        self.ssh_config = self.workdir / "ssh_config"
        self.poc_config = self.workdir / "poc_ssh_config"
        emulate.write_ssh_config(self.ssh_config, [*self.names, BLACKHOLE], ports, fdpass=True)
        emulate.write_ssh_config(self.poc_config, [*self.names, BLACKHOLE], ports, fdpass=False)
        self.ssh_binary = emulate.write_ssh_wrapper(self.workdir / "ssh", self.ssh_config)
        # The PoC's evidence: a stale PID (no such process) and a live "jupyterhub-singleuser".
        self.stale_pid = self._dead_pid()
        fake = self.workdir / "jupyterhub-singleuser"
        fake.symlink_to("/bin/sleep")
        self.decoy = subprocess.Popen([str(fake), str(self.args.max_runtime + 60)])
        self.stack.callback(self._stop_decoy)

    def _dead_pid(self) -> int:
        proc = subprocess.Popen(["true"])
        proc.wait()
        return proc.pid

    def _stop_decoy(self) -> None:
        if self.decoy.poll() is None:
            self.decoy.kill()
            self.decoy.wait(5)

    def _stop_sshd_children(self) -> None:
        """Sessions the sshd forked (they outlive a stopped listener)."""
        if self.sshd.proc is None:
            return
        table = _proc_table()
        for pid in _tree([self.sshd.proc.pid], table) - {self.sshd.proc.pid}:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _kill_leftovers(self) -> None:
        """ssh control masters and anything else still running from our work directory."""
        for pid in pids_matching(str(self.workdir)):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.args.max_runtime

    # ---- configuration

    def hub_url(self, node: str) -> str:
        port = self.hubs.silent[node]["http"] if node == BLACKHOLE else self.hubs.hubs[node]
        return f"http://127.0.0.1:{port}"

    def write_toml(self, name: str, nodes: Sequence[str], *, channels: int, control: str) -> str:
        control_dir = self.workdir / control
        control_dir.mkdir(mode=0o700, exist_ok=True)
        lines = [
            f'secret_key_file = "{self.secret}"',
            f'store = "{self.workdir / (name + ".sqlite3")}"',
            f"deadline = {self.args.deadline}",
            f'proof_key_files = ["{self.proof_key}"]',
            "[ssh]",
            f'user = "{self.account.pw_name}"',
            f'key_file = "{self.sshd.key("probe")}"',
            f'known_hosts_file = "{self.sshd.known_hosts}"',
            f'control_dir = "{control_dir}"',
            'control_persist = "10m"',
            "connect_timeout = 2",
            f'binary = "{self.ssh_binary}"',
            f"channels = {channels}",
        ]
        for node in nodes:
            lines += [
                "[[nodes]]",
                f'name = "{node}"',
                f'base_url = "{self.hub_url(node)}"',
                f'api_token_file = "{self.token_file}"',
                f'ssh_host = "{node}"',
            ]
        path = self.workdir / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    # ---- CPU accounting

    def cpu_split(self) -> tuple[float, float]:
        """(front door side, emulated node side) CPU seconds so far.

        Front door: this process and its reaped children (the ssh clients), the ssh
        control masters and any gunicorn tree. Nodes: the sshd with every session and
        probe under it, and the fake hubs.
        """
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        table = _proc_table()
        node_pids = _tree([self.sshd.proc.pid, self.hubs.proc.pid], table)  # type: ignore[union-attr]
        # Live children too: the persistent probe sessions' ssh clients (and gunicorn's tree).
        front_pids = (_tree([os.getpid()], table) - node_pids - {os.getpid()}) | set(
            master_pids(f"{self.workdir}/")
        )
        front = own + sum(table[p][1] for p in front_pids if p in table)
        nodes = sum(table[p][1] for p in node_pids)
        return front, nodes

    def series(
        self,
        row: Row,
        fn: Callable[[], str],
        *,
        warmup: int,
        count: int,
        budget: float,
        min_count: int = 1,
    ) -> Row:
        """Warm up, then up to ``count`` timed calls within ``budget`` seconds (at least ``min_count``)."""
        for _ in range(warmup):
            fn()
        front0, nodes0 = self.cpu_split()
        end = time.monotonic() + budget
        while len(row.samples) < count:
            if len(row.samples) >= min_count and (time.monotonic() > end or self.out_of_time()):
                row.note = (row.note + f" stopped by the time budget ({budget:g} s)").strip()
                break
            start = time.perf_counter()
            answer = fn()
            row.samples.append(time.perf_counter() - start)
            row.answers.append(answer)
        front1, nodes1 = self.cpu_split()
        row.frontdoor_cpu, row.node_cpu = front1 - front0, nodes1 - nodes0
        s = row.summary()
        print(
            f"  {row.scenario:10} {row.method:34} {row.nodes:3} nodes  {row.user:9} n={s['n']:2}  "
            f"p50 {s['p50_ms']:8.1f} ms  p95 {s['p95_ms']:8.1f} ms  right {s['right_answers']}/{s['n']}",
            flush=True,
        )
        return row

    # ---- multijhub

    @contextmanager
    def resolver(self, name: str, nodes: Sequence[str], *, channels: int, control: str) -> Iterator[Any]:
        from multijhub.frontdoor.app import build_resolver  # noqa: PLC0415 - after add_paths
        from multijhub.frontdoor.config import load_config  # noqa: PLC0415

        config = load_config(self.write_toml(name, nodes, channels=channels, control=control))
        resolver = build_resolver(config)
        try:
            yield resolver
        finally:
            resolver.close()

    def prewarm(self, resolver: Any) -> int:  # noqa: ANN401 - the front door's Resolver
        """Open each healthy node's shared ssh connection, one node at a time; return how many."""
        opened = 0
        for node in resolver.nodes:
            if node.name == BLACKHOLE:
                continue
            try:
                resolver.probe.report(node.ssh_host, NONE_USER, 20.0)
                opened += 1
            except Exception as exc:  # reported; the series shows the effect
                print(f"  prewarm of {node.name} failed: {exc}", flush=True)
        return opened

    def masters(self, control: str) -> int:
        return len(master_pids(f"{self.workdir}/{control}/"))

    @staticmethod
    def answer_of(resolver: Any, user: str) -> str:  # noqa: ANN401 - the front door's Resolver
        decision = resolver.resolve(user).decision
        return f"{decision.state}:{','.join(decision.nodes)}" if decision.nodes else decision.state

    # ---- proof of concept

    def poc(self, nodes: Sequence[str], pid: int) -> str:
        """The PoC: a new ssh connection to each host in turn; ``ps -p PID | grep jupyterhub``.

        It stops at the first host where grep matches; a host that fails or hangs counts
        as "not there" (the PoC has no notion of unknown). It sets no timeout of its own:
        the bench kills each ssh after --poc-timeout seconds.
        """
        for node in nodes:
            argv = [
                "ssh", "-F", str(self.poc_config), "-T", "-a", "-x",
                "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
                "-o", f"UserKnownHostsFile={self.sshd.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
                "-i", str(self.sshd.key("poc")), "-l", self.account.pw_name,
                node, f"ps -p {pid} | grep jupyterhub",
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=self.args.poc_timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0:
                return "running"
        return "not_running"

    # ---- gunicorn

    def gunicorn(self, label: str, nodes: Sequence[str], *, channels: int) -> dict[str, Any]:
        args = self.args
        key = f"ch{channels}"
        with self.resolver(f"gunicorn-{key}", nodes, channels=channels, control=f"cm-gu-{key}") as warm:
            self.prewarm(warm)  # the workers share these connections (same ControlPath)
        toml = str(self.workdir / f"gunicorn-{key}.toml")
        port = emulate.free_port()
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LC_ALL": "C.UTF-8",
            "MULTIJHUB_FRONTDOOR_CONFIG": toml,
            "MJB_USER": self.found_user,
            "MJB_PASSWORD_FILE": self.password_file,
        }
        log = open(self.workdir / f"gunicorn-{key}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "--workers",
                str(args.gunicorn_workers),
                "--threads",
                "8",
                "--bind",
                f"127.0.0.1:{port}",
                "--no-control-socket",
                "--graceful-timeout",
                "5",
                "--timeout",
                "30",
                "--chdir",
                str(HERE),
                "bench_wsgi:app",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            return self._drive(label, base, nodes, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()
            for pid in master_pids(f"{self.workdir}/cm-gu-{key}/"):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def _login(self, base: str) -> requests.Session:
        client = requests.Session()
        client.trust_env = False
        end = time.monotonic() + 30
        while True:
            try:
                if client.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > end:
                sys.exit("gunicorn did not answer /healthz within 30 s")
            time.sleep(0.2)
        html = client.get(f"{base}/login", timeout=5).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
        if not token:
            sys.exit("no CSRF token on the login page")
        password = Path(self.password_file).read_text().strip()
        resp = client.post(
            f"{base}/login",
            data={"csrf_token": token.group(1), "username": self.found_user, "password": password},
            allow_redirects=False,
            timeout=5,
        )
        if resp.status_code != 303:
            sys.exit(f"bench login failed: HTTP {resp.status_code}")
        return client

    def _drive(
        self, label: str, base: str, nodes: Sequence[str], proc: subprocess.Popen[bytes]
    ) -> dict[str, Any]:
        args = self.args
        cookies = self._login(base).cookies
        target = self.hub_url(FOUND_NODE)
        lock = threading.Lock()
        samples: list[float] = []
        right = [0]
        issued = [0]

        def worker(limit: int, end: float) -> None:
            client = requests.Session()
            client.trust_env = False
            client.cookies.update(cookies)
            while time.monotonic() < end:
                with lock:
                    if issued[0] >= limit:
                        break
                    issued[0] += 1
                start = time.perf_counter()
                try:
                    resp = client.get(f"{base}/", allow_redirects=False, timeout=args.deadline + 10)
                    ok = resp.status_code == 200 and f'action="{target}/' in resp.text
                except requests.RequestException:
                    ok = False
                with lock:
                    samples.append(time.perf_counter() - start)
                    right[0] += ok
            client.close()

        def run(limit: int, seconds: float) -> float:
            with lock:
                issued[0] = 0
                samples.clear()
                right[0] = 0
            start = time.perf_counter()
            end = time.monotonic() + seconds
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                for f in [pool.submit(worker, limit, end) for _ in range(args.concurrency)]:
                    f.result()
            return time.perf_counter() - start

        with ThreadPoolExecutor(max_workers=1) as one:  # warm-up, one request at a time
            one.submit(worker, args.gunicorn_workers * 2, time.monotonic() + 20).result()
        run(args.concurrency * 3, 20)  # then concurrently: every worker's HTTP pools
        front0, nodes0 = self.cpu_split()
        elapsed = run(args.rps_requests, args.rps_seconds)
        front1, nodes1 = self.cpu_split()
        n = len(samples)
        table = _proc_table()
        tree = sorted(_tree([proc.pid], table))
        sessions = [p for p in tree if _comm(p) == "ssh"]  # the workers' persistent probe sessions
        service = [p for p in tree if p not in sessions]
        masters = master_pids(f"{self.workdir}/cm-gu-")
        result = {
            "label": label,
            "nodes": len(nodes),
            "workers": args.gunicorn_workers,
            "threads_per_worker": 8,
            "concurrency": args.concurrency,
            "requests": n,
            "seconds": round(elapsed, 2),
            "rps": round(n / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(statistics.median(samples) * 1000, 1) if n else None,
            "p95_ms": round(pct(samples, 0.95) * 1000, 1) if n else None,
            "right_answers": right[0],
            "frontdoor_cpu_ms_per_request": round((front1 - front0) / n * 1000, 1) if n else None,
            "node_cpu_ms_per_request": round((nodes1 - nodes0) / n * 1000, 1) if n else None,
            "gunicorn_processes": len(service),
            "gunicorn_rss_mib": round(sum(_status_kib(p, "VmRSS") for p in service) / 1024, 1),
            "gunicorn_pss_mib": round(sum(_status_kib(p, "Pss") for p in service) / 1024, 1),
            "ssh_sessions": len(sessions),
            "ssh_sessions_rss_mib": round(sum(_status_kib(p, "VmRSS") for p in sessions) / 1024, 1),
            "ssh_sessions_pss_mib": round(sum(_status_kib(p, "Pss") for p in sessions) / 1024, 1),
            "ssh_masters": len(masters),
            "ssh_masters_rss_mib": round(sum(_status_kib(p, "VmRSS") for p in masters) / 1024, 1),
        }
        print(
            f"  gunicorn   {label:34} {len(nodes):3} nodes  {n} requests in {elapsed:.1f} s: "
            f"{result['rps']} req/s, p50 {result['p50_ms']} ms, right {right[0]}/{n}, "
            f"RSS {result['gunicorn_rss_mib']} MiB ({len(service)} processes) + {len(sessions)} ssh "
            f"sessions {result['ssh_sessions_rss_mib']} MiB",
            flush=True,
        )
        return result


# --------------------------------------------------------------------------- phases


def healthy_rows(bench: Bench) -> list[Row]:
    args = bench.args
    rows: list[Row] = []
    for count in args.nodes:
        nodes = bench.names[:count]
        for channels, method in METHODS:
            control = f"cm-ch{channels}-{count}"
            with bench.resolver(
                f"healthy-ch{channels}-{count}", nodes, channels=channels, control=control
            ) as resolver:
                if channels:
                    # Cold start: no shared connection yet, every node's handshake at once.
                    cold = Row("cold start", method, count, NONE_USER, "not_running")
                    start = time.perf_counter()
                    cold.answers.append(bench.answer_of(resolver, NONE_USER))
                    cold.samples.append(time.perf_counter() - start)
                    time.sleep(0.5)
                    cold.note = f"shared connections open after it: {bench.masters(control)}/{count}"
                    print(
                        f"  cold start {method:34} {count:3} nodes  {cold.answers[0]} in "
                        f"{cold.samples[0] * 1000:.0f} ms; {cold.note}",
                        flush=True,
                    )
                    rows.append(cold)
                bench.prewarm(resolver)
                rows.append(
                    bench.series(
                        Row("healthy", method, count, NONE_USER, "not_running"),
                        lambda r=resolver: bench.answer_of(r, NONE_USER),
                        warmup=args.warmup,
                        count=args.requests,
                        budget=args.series_budget,
                        min_count=5,
                    )
                )
                # The found user once per node count: the right node, not timed.
                check = Row("healthy", method, count, bench.found_user, f"running:{FOUND_NODE}")
                check.answers.append(bench.answer_of(resolver, bench.found_user))
                if check.answers[0] != check.expected:
                    print(f"  WRONG: {bench.found_user} resolved to {check.answers[0]}", flush=True)
                rows[-1].note = (
                    f"{bench.found_user} -> {check.answers[0]} (expected {check.expected}) " + rows[-1].note
                ).strip()
        rows.append(
            bench.series(
                Row("healthy", "PoC (ssh each host in turn)", count, NONE_USER, "not_running"),
                lambda n=nodes: bench.poc(n, bench.stale_pid),
                warmup=1,
                count=args.requests,
                budget=args.poc_budget,
                min_count=2,
            )
        )
    return rows


def blackhole_rows(bench: Bench) -> list[Row]:
    args = bench.args
    count = args.blackhole_nodes
    nodes = [BLACKHOLE, *bench.names[1:count]]
    rows: list[Row] = []
    cases = ((bench.found_user, f"running:{FOUND_NODE}", "running"), (NONE_USER, "unknown", "unknown"))
    with bench.resolver("blackhole", nodes, channels=METHODS[0][0], control="cm-blackhole") as resolver:
        bench.prewarm(resolver)
        for user, expected, _ in cases:
            rows.append(
                bench.series(
                    Row("blackhole", "multijhub", count, user, expected),
                    lambda u=user: bench.answer_of(resolver, u),
                    warmup=1,
                    count=args.blackhole_requests,
                    budget=60,
                )
            )
    for user, _, expected in cases:
        pid = bench.decoy.pid if user == bench.found_user else bench.stale_pid
        rows.append(
            bench.series(
                Row("blackhole", "PoC (ssh each host in turn)", count, user, expected),
                lambda p=pid: bench.poc(nodes, p),
                warmup=0,
                count=1,
                budget=60,
            )
        )
    return rows


# --------------------------------------------------------------------------- report


def markdown(result: dict[str, Any]) -> str:
    args = result["config"]
    out = [
        "# Front door: finding the user's node, multijhub against the proof of concept",
        "",
        f"Run {result['when']} on {result['machine']['cpus']} CPUs ({result['machine']['platform']}), "
        f"load average at start {result['machine']['loadavg_start']}; {result['runtime_s']} s in all. "
        f"Nodes emulated on this one machine (loopback): per node a fake hub REST API and an ssh alias "
        f"to one extra sshd whose key forces the core's probe. Deadline {args['deadline']} s. "
        "p50/p95 by nearest rank over the timed requests (after warm-up); CPU per request is the "
        "front door side (resolver, ssh clients and control masters) and the emulated nodes' side "
        "(sshd sessions, probes, fake hubs), both on the same 2 cores here.",
        "",
        "## Resolution latency",
        "",
        "| scenario | method | nodes | user | n | p50 ms | p95 ms | max ms | right answers | "
        "front door CPU ms/req | node CPU ms/req |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in result["latency"]:
        out.append(
            f"| {r['scenario']} | {r['method']} | {r['nodes']} | {r['user']} | {r['n']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['max_ms']} | {r['right_answers']}/{r['n']} ({', '.join(r['answers'])}; "
            f"expected {r['expected']}) | {r['frontdoor_cpu_ms_per_request']} | "
            f"{r['node_cpu_ms_per_request']} |"
        )
    notes = [
        f"- {r['method']} at {r['nodes']} nodes ({r['scenario']}): {r['note']}"
        for r in result["latency"]
        if r["note"]
    ]
    if notes:
        out += ["", *notes]
    out += [
        "",
        "## gunicorn on the resolve path (GET / of a logged-in user whose server runs on n01)",
        "",
        "| probe | nodes | workers x threads | client threads | requests | req/s | p50 ms | p95 ms | right | "
        "front door CPU ms/req | node CPU ms/req | RSS MiB (master + workers) | PSS MiB | "
        "ssh probe sessions (RSS / PSS MiB) | ssh masters (RSS MiB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for g in result["gunicorn"]:
        out.append(
            f"| {g['label']} | {g['nodes']} | {g['workers']} x {g['threads_per_worker']} | "
            f"{g['concurrency']} | {g['requests']} | {g['rps']} | {g['p50_ms']} | {g['p95_ms']} | "
            f"{g['right_answers']}/{g['requests']} | "
            f"{g['frontdoor_cpu_ms_per_request']} | {g['node_cpu_ms_per_request']} | {g['gunicorn_rss_mib']} "
            f"({g['gunicorn_processes']} processes) | {g['gunicorn_pss_mib']} | {g['ssh_sessions']} "
            f"({g['ssh_sessions_rss_mib']} / {g['ssh_sessions_pss_mib']}) | {g['ssh_masters']} "
            f"({g['ssh_masters_rss_mib']}) |"
        )
    out += ["", "## Targets", ""]
    out += [f"- {t}" for t in result["targets"]]
    return "\n".join(out) + "\n"


def targets(result: dict[str, Any], deadline: float) -> list[str]:
    lines = []
    top = max(r["nodes"] for r in result["latency"])
    for r in result["latency"]:
        if r["scenario"] == "healthy" and r["nodes"] == top and r["method"].startswith("multijhub"):
            ok = r["p50_ms"] is not None and r["p50_ms"] <= TARGET_P50 * 1000
            lines.append(
                f"p50 <= {TARGET_P50 * 1000:g} ms at {top} healthy nodes, {r['method']}: "
                f"{r['p50_ms']} ms -> {'met' if ok else 'MISSED'}"
            )
    for r in result["latency"]:
        if r["scenario"] != "blackhole":
            continue
        within = r["max_ms"] is not None and r["max_ms"] <= deadline * 1000 + 100
        right = r["right_answers"] == r["n"]
        lines.append(
            f"black-holed node, {r['method']}, {r['user']}: answers {r['answers']} (right: {r['expected']}) "
            f"in at most {r['max_ms']} ms -> {'right' if right else 'WRONG'} answer, "
            f"{'within' if within else 'NOT within'} the {deadline:g} s deadline (+100 ms slack)"
        )
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="2,8,32", help="node counts (default 2,8,32)")
    p.add_argument("--requests", type=int, default=30, help="timed requests per series")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--series-budget", type=float, default=10.0, help="seconds per multijhub series")
    p.add_argument(
        "--poc-budget", type=float, default=8.0, help="seconds per PoC series (at least 2 requests)"
    )
    p.add_argument("--poc-timeout", type=float, default=6.0, help="seconds the bench lets one PoC ssh hang")
    p.add_argument("--deadline", type=float, default=2.0)
    p.add_argument("--blackhole-nodes", type=int, default=8)
    p.add_argument("--blackhole-requests", type=int, default=3)
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--rps-nodes", type=int, default=8)
    p.add_argument("--rps-requests", type=int, default=400)
    p.add_argument("--rps-seconds", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=4, help="client threads against gunicorn")
    p.add_argument("--max-runtime", type=float, default=240.0, help="stop starting new requests after this")
    p.add_argument("--sshd", help="sshd binary (default /usr/sbin/sshd or unpacked from the apt cache)")
    p.add_argument("--account", help="unprivileged account the sshd runs as and the probe logs in to")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "frontdoor"))
    args = p.parse_args(argv)
    args.nodes = sorted({int(x) for x in args.nodes.split(",")})
    if min(args.nodes) < 2 or args.blackhole_nodes < 2 or args.rps_nodes < 2:
        p.error("every node count must be at least 2 (n01 runs the found user's server)")
    return args


def _on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    started = time.monotonic()
    load_start = os.getloadavg()
    with ExitStack() as stack:
        bench = Bench(args, stack)
        bench.start()
        print(
            f"sshd on 127.0.0.1:{bench.sshd.port} as {bench.account.pw_name}; {len(bench.names)} hubs; "
            f"found user {bench.found_user} (server on {FOUND_NODE}), no-server user {NONE_USER}",
            flush=True,
        )
        latency = [r.summary() for r in healthy_rows(bench)]
        latency += [r.summary() for r in blackhole_rows(bench)]
        rps_nodes = bench.names[: args.rps_nodes]
        gunicorn = [
            bench.gunicorn(METHODS[0][1], rps_nodes, channels=METHODS[0][0]),
            bench.gunicorn("multijhub, 2 sessions per hub and worker", rps_nodes, channels=2),
            bench.gunicorn(METHODS[1][1], rps_nodes, channels=METHODS[1][0]),
        ]
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "runtime_s": round(time.monotonic() - started, 1),
        "latency": latency,
        "gunicorn": gunicorn,
    }
    result["targets"] = targets(result, args.deadline)
    text = markdown(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontdoor.md").write_text(text)
    (out / "frontdoor.json").write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: everything started was stopped")
