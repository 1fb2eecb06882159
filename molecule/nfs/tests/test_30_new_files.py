"""New runtime files across clients: how long a file made on one client takes to appear in the
probe account's listing on the other (attribute caching, bounded by nfs_client_acdirmax), and a
real Jupyter server's runtime file."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import threading
import time
from pathlib import Path

from conftest import ssh_argv
from test_20_probe import PROBE, PROBE_COMMAND, RUNTIME, as_user

SAMPLES = 50
# Margin over acdirmax for the poll interval, the ssh round trips and a slow (TCG) guest.
MARGIN = 1.0

# On the front door, as juser1: make each file named on stdin, then say so.
WRITER = r"""
import os, sys
for line in sys.stdin:
    name = line.strip()
    with open(os.path.join(sys.argv[1], name), "w") as f:
        f.write("{}")
    print("made", name, flush=True)
"""

# On the hub, as the probe account: list the directory every 20 ms, print each new name; stop when
# stdin closes.
POLLER = r"""
import os, select, sys
seen = set(os.listdir(sys.argv[1]))
print("ready", flush=True)
while True:
    readable, _, _ = select.select([sys.stdin], [], [], 0.02)
    if readable and not sys.stdin.readline():
        break
    for name in sorted(set(os.listdir(sys.argv[1])) - seen):
        seen.add(name)
        print("seen", name, flush=True)
"""


def acdirmax(host) -> float:
    options = host.run_test("findmnt -n -o OPTIONS /home").stdout.strip().split(",")
    return float(next(o.split("=", 1)[1] for o in options if o.startswith("acdirmax=")))


def _remote_python(host_name: str, user: str, script: str, arg: str) -> subprocess.Popen[str]:
    command = f"runuser -u {user} -- python3 -u -c '{script}' {arg}"
    return subprocess.Popen(
        [*ssh_argv(host_name), command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def test_new_runtime_files_appear_on_the_other_client_within_acdirmax(hub, front) -> None:
    """A file made by juser1 on the front door, listed by the probe account on the hub: the delay
    from the writer's confirmation to the poller's report, both timed on this machine."""
    bound = acdirmax(hub) + MARGIN
    poller = _remote_python("nfs-hub", PROBE, POLLER.replace("'", '"'), RUNTIME)
    writer = _remote_python("nfs-front", "juser1", WRITER.replace("'", '"'), RUNTIME)
    seen: dict[str, float] = {}
    cond = threading.Condition()

    def read_poller() -> None:
        assert poller.stdout is not None
        for line in poller.stdout:
            parts = line.split()
            with cond:
                if parts and parts[0] == "ready":
                    seen["<ready>"] = time.monotonic()
                elif len(parts) == 2 and parts[0] == "seen":
                    seen[parts[1]] = time.monotonic()
                cond.notify_all()

    reader = threading.Thread(target=read_poller, daemon=True)
    reader.start()
    names = [f"jpserver-{90000 + i}.json" for i in range(SAMPLES)]
    delays: list[float] = []
    rng = random.Random(14)
    try:
        with cond:
            assert cond.wait_for(lambda: "<ready>" in seen, timeout=60), "the poller did not start"
        assert writer.stdin is not None and writer.stdout is not None
        for name in names:
            writer.stdin.write(name + "\n")
            writer.stdin.flush()
            assert writer.stdout.readline().split() == ["made", name]
            made = time.monotonic()
            with cond:
                assert cond.wait_for(lambda n=name: n in seen, timeout=bound + 10), f"{name} never appeared"
            delays.append(max(0.0, seen[name] - made))
            # A varied phase against the client's attribute-cache clock.
            time.sleep(rng.uniform(0.0, 1.5))
    finally:
        for proc in (writer, poller):
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        front.run(as_user("juser1", f"rm -f {RUNTIME}/jpserver-9????.json"))
    figures = {
        "samples": len(delays),
        "acdirmin_acdirmax": [1, acdirmax(hub)],
        "min_s": round(min(delays), 3),
        "median_s": round(statistics.median(delays), 3),
        "p95_s": round(_percentile(delays, 0.95), 3),
        "max_s": round(max(delays), 3),
    }
    print(f"\nNFS new-file delay (front door -> hub, probe listing, {SAMPLES} files): {json.dumps(figures)}")
    out = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if out:
        Path(out, "nfs-delay.json").write_text(json.dumps({**figures, "delays_s": delays}, indent=1))
    assert len(delays) == SAMPLES
    assert max(delays) <= bound, figures


def test_a_jupyter_server_on_one_client_is_listed_on_the_other(hub, front, home) -> None:
    unit = "multijhub-test-jupyter"
    front.run(f"systemctl stop {unit}; systemctl reset-failed {unit}")
    front.run_test(
        f"systemd-run --unit={unit} --uid=juser1 --gid=juser1 -p WorkingDirectory=/home/juser1 "
        "/opt/jupyter-test/bin/jupyter-server --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=8899"
    )
    try:
        pid = front.run_test(f"systemctl show -p MainPID --value {unit}").stdout.strip()
        name = f"jpserver-{pid}.json"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if front.run(as_user("juser1", f"test -f {RUNTIME}/{name}")).rc == 0:
                break
            time.sleep(2)
        else:
            raise AssertionError(
                f"{name} was not written on the front door: {front.run(f'journalctl -u {unit} -n 30').stdout}"
            )
        # On the server the file is the user's alone (the directory's default ACL).
        assert home.run_test(f"stat -c %a {RUNTIME}/{name}").stdout.strip() == "600"
        deadline = time.monotonic() + acdirmax(hub) + MARGIN + 5
        while name not in hub.run_test(as_user(PROBE, f"ls -1 {RUNTIME}")).stdout.split():
            assert time.monotonic() < deadline, f"{name} not listed on the hub"
            time.sleep(0.5)
        report = json.loads(
            hub.run_test(as_user(PROBE, f"SSH_ORIGINAL_COMMAND=juser1 {PROBE_COMMAND}")).stdout
        )
        evidence = {ev["file"].rsplit("/", 1)[-1]: ev for ev in report["evidence"]}
        assert evidence[name]["verdict"] == "not-here"  # the process runs on the front door
        assert hub.run(as_user(PROBE, f"cat {RUNTIME}/{name}")).rc != 0
    finally:
        front.run(f"systemctl stop {unit}")
