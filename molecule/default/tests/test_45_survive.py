"""Issue 13: a user's server survives what operators do.

One run, in order (each test builds on the state the previous ones left, to keep the scenario
short): juser1's server on hub1 holds a value in a kernel that runs a silent cell for the whole
module (browser closed; each check interrupts the cell, reads the value and starts it again). The value is read back from the same kernel after a
restart of the proxy unit, of the front door, after a site.yml run that changes a hub setting
(and the run that puts it back, both restarting every hub) and after a forced reinstall of the
hub's Python packages. juser2's server on hub2 loses a kernel to the memory limit and keeps its
other kernel, then sits idle and is culled while juser1's busy server is not. Last, hub1's
container is killed and started again (a node that lost power): the next front door login gets a
fresh server.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest
import requests
import websocket
from conftest import (
    FRONTDOOR,
    follow_to_hub,
    frontdoor_ca,
    frontdoor_login,
    hub_url,
    hub_user,
    login_and_spawn,
    recap,
    stop_server,
    web,
)

VENV = "/opt/multijhub/jupyterhub"
WHEELS = "/var/cache/multijhub/wheels"  # the test inventory's multijhub_pip_wheelhouse
CULL_TIMEOUT = 45  # test inventory: jupyterhub_cull_timeout (checked every 10 s, reports every 15 s)
QUIET_ENOUGH = CULL_TIMEOUT + 10 + 15 + 10  # seconds without any request for an idle server to be culled
HOG = "b = bytearray(400 * 1024 * 1024)\nb[::4096] = b'x' * len(b[::4096])\nprint('survived')"


# --- A user's server, through its REST and websocket API (as JupyterLab uses it) -------------------


@dataclass
class UserServer:
    """A user's single-user server reached through the front door and the hub's proxy with a token of the user's."""

    host: object
    user: str
    token: str
    kernels: dict[str, str] = field(default_factory=dict)
    last_request: float = 0.0
    pid: int = 0  # the unit's main process: jupyterhub-singleuser

    @property
    def base(self) -> str:
        return f"{hub_url(self.host)}/user/{self.user}/api"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def get(self, path: str) -> requests.Response:
        self.last_request = time.monotonic()
        return web().get(f"{self.base}{path}", headers=self._headers(), timeout=15)

    def start_kernel(self, name: str) -> str:
        self.last_request = time.monotonic()
        reply = web().post(f"{self.base}/kernels", headers=self._headers(), json={}, timeout=60)
        reply.raise_for_status()
        self.kernels[name] = reply.json()["id"]
        return self.kernels[name]

    def _connect(self, kernel: str) -> websocket.WebSocket:
        url = self.base.replace("https://", "wss://", 1) + f"/kernels/{self.kernels[kernel]}/channels"
        return websocket.create_connection(
            f"{url}?session_id={uuid.uuid4().hex}",
            header=[f"Authorization: token {self.token}"],
            timeout=90,
            sslopt={"ca_certs": frontdoor_ca()},  # through the front door's nginx, its certificate checked
        )

    def execute(self, kernel: str, code: str, *, wait: bool = True, timeout: float = 90) -> str:
        """Run ``code`` in the kernel; its stdout (wait) or "" once it is busy (wait=False, then disconnect)."""
        self.last_request = time.monotonic()
        ws = self._connect(kernel)
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.user,
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        out: list[str] = []
        # The reply (shell channel) and the output (iopub) travel on different channels, in no fixed
        # order: the request is done when both the reply and iopub's "idle" for it are in, as
        # jupyter_client's execute_interactive waits (the kernel sends that idle after all output).
        replied = idle = False
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                kind = msg.get("msg_type") or msg["header"]["msg_type"]
                state = msg.get("content", {}).get("execution_state") if kind == "status" else None
                if state in ("restarting", "dead", "autorestarting"):
                    raise KernelDied(f"{self.user}'s kernel {kernel}: {state}")
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
                elif state == "busy" and not wait:
                    return ""
                elif kind == "execute_reply":
                    replied = True
                elif state == "idle":
                    idle = True
                if replied and idle:
                    return "".join(out)
        finally:
            ws.close()  # the browser is closed
            self.last_request = time.monotonic()
        raise AssertionError(
            f"{self.user}: {code!r} not done within {timeout} s (reply: {replied}, idle: {idle}, output: {out})"
        )

    def interrupt(self, kernel: str, timeout: float = 30) -> None:
        """Interrupt the running cell (the kernel process and its variables stay) and wait until idle."""
        self.last_request = time.monotonic()
        url = f"{self.base}/kernels/{self.kernels[kernel]}/interrupt"
        web().post(url, headers=self._headers(), timeout=15).raise_for_status()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.kernel_state(kernel) == "idle":
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.user}'s kernel {kernel} is still busy {timeout} s after an interrupt")

    def kernel_state(self, kernel: str) -> str:
        reply = self.get(f"/kernels/{self.kernels[kernel]}")
        reply.raise_for_status()
        return reply.json()["execution_state"]


class KernelDied(Exception):
    """The kernel died (or was restarted) while it ran the code."""


def user_token(host, user: str, session: requests.Session) -> str:
    """A token of the user's own (created with the user's hub login, as the token page does)."""
    reply = session.post(
        f"{hub_url(host)}/hub/api/users/{user}/tokens",
        headers={
            "X-XSRFToken": session.cookies.get("_xsrf", path=f"{urlsplit(hub_url(host)).path}/hub/")
            or session.cookies.get("_xsrf", "")
        },
        json={"note": "molecule test_45", "expires_in": 3600},
        timeout=30,
    )
    assert reply.status_code == 201, (reply.status_code, reply.text[:500])
    return reply.json()["token"]


def open_server(host, user: str) -> UserServer:
    session = login_and_spawn(host, user)
    server = UserServer(host, user, user_token(host, user, session))
    assert server.get("/status").status_code == 200
    return server


def main_pid(host, user: str) -> int:
    out = host.run_test(f"systemctl show -p MainPID --value jupyter-{user}-singleuser.service").stdout
    return int(out.strip() or 0)


def kernel_pid(host, user: str, kernel_id: str) -> int:
    out = host.run(f"pgrep -u {user} -f -- kernel-{kernel_id}.json").stdout.split()
    assert len(out) == 1, f"kernel {kernel_id} of {user}: processes {out}"
    return int(out[0])


def hub_started(host) -> str:
    return host.run_test(
        "systemctl show -p ExecMainStartTimestampMonotonic --value jupyterhub"
    ).stdout.strip()


def login_at_front_door(user: str, attempts: int = 3):
    """Log in at the front door; a "cannot tell yet" (503) is retried, as its page asks, at most twice.

    Returns the landing and the statuses seen (a "several" page or a 503 loop fails).
    """
    seen = []
    for _ in range(attempts):
        _session, landing = frontdoor_login(user)
        seen.append(landing.status)
        assert "several" not in landing.response.text.lower(), landing.response.text[:800]
        if landing.status != 503:
            return landing, seen
        time.sleep(2)
    raise AssertionError(f"{user}: the front door answered {seen}")


def wait_healthy(host, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if web().get(f"{hub_url(host)}/hub/health", timeout=3).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise AssertionError(f"{host.backend.hostname}: /hub/health did not answer within {timeout} s")


BUSY = "import time\ntime.sleep(3000)"  # a long computation that prints nothing


@pytest.fixture(scope="module")
def juser1(hub1):
    """juser1 on hub1: one kernel holds x = 41 and runs a silent cell for the whole module (no browser).

    One kernel (the test scenario's memory limit is small): each check interrupts the cell, which
    keeps the kernel process and its variables, reads x, and starts the cell again.
    """
    server = open_server(hub1, "juser1")
    server.start_kernel("value")
    assert server.execute("value", "x = 41\nprint(x)").strip() == "41"
    server.execute("value", BUSY, wait=False)
    assert server.kernel_state("value") == "busy"
    server.pid = main_pid(hub1, "juser1")
    yield server
    stop_server(hub1, "juser1")


def assert_holds(server: UserServer, host, pid: int) -> None:
    """The same server process, the same kernel, the same value; then busy again."""
    assert main_pid(host, server.user) == pid, "the single-user server was restarted"
    kernel = kernel_pid(host, server.user, server.kernels["value"])
    server.interrupt("value")
    assert server.execute("value", "print(x)").strip() == "41"
    assert kernel_pid(host, server.user, server.kernels["value"]) == kernel
    server.execute("value", BUSY, wait=False)


# --- The proxy is a unit of its own ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hub1", "hub2"])
def test_the_proxy_runs_as_its_own_unit_with_a_private_token(cluster, name):
    host = cluster[name]
    assert host.service("jupyterhub-proxy").is_running
    assert host.service("jupyterhub-proxy").is_enabled
    env = host.file("/var/lib/multijhub/jupyterhub/proxy.env")
    assert (env.mode, env.user) == (0o600, "root")
    assert "/home" not in host.run_test("findmnt -n -o TARGET -T /var/lib/multijhub").stdout
    proxy_cgroup = host.run_test("systemctl show -p ControlGroup --value jupyterhub-proxy").stdout.strip()
    pid = host.run_test("systemctl show -p MainPID --value jupyterhub-proxy").stdout.strip()
    assert "configurable-http-proxy" in host.run_test(f"cat /proc/{pid}/cmdline").stdout
    assert proxy_cgroup.endswith("/jupyterhub-proxy.service"), proxy_cgroup


# --- The value survives the proxy's and the front door's restarts --------------------------------------


def test_a_kernel_survives_a_restart_of_the_proxy(hub1, juser1):
    hub1.run_test("systemctl restart jupyterhub-proxy.service")
    wait_healthy(hub1)
    assert_holds(juser1, hub1, juser1.pid)


def test_a_kernel_survives_a_restart_of_the_front_door(frontdoor, hub1, juser1):
    frontdoor.run_test("systemctl restart multijhub-frontdoor.service")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if web().get(f"{FRONTDOOR}/healthz", timeout=3).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    landing, seen = login_at_front_door("juser1")
    assert landing.hub == "hub1", (seen, landing.response.text[:500])
    assert_holds(juser1, hub1, juser1.pid)


# --- One kernel's memory never kills the server ----------------------------------------------------------


@pytest.fixture(scope="module")
def juser2(hub2):
    server = open_server(hub2, "juser2")
    server.pid = main_pid(hub2, "juser2")
    yield server
    if hub_user(hub2, "juser2").get("servers", {}).get(""):
        stop_server(hub2, "juser2")


def test_a_kernel_over_the_memory_limit_dies_alone(hub2, juser2):
    juser2.start_kernel("keeper")
    assert juser2.execute("keeper", "y = 7\nprint(y)").strip() == "7"
    juser2.start_kernel("hog")
    assert juser2.execute("hog", "print('ready')").strip() == "ready"
    hog = kernel_pid(hub2, "juser2", juser2.kernels["hog"])
    keeper = kernel_pid(hub2, "juser2", juser2.kernels["keeper"])
    # Every kernel is the out-of-memory killer's first choice; the server is not.
    assert hub2.run_test(f"cat /proc/{hog}/oom_score_adj").stdout.strip() == "1000"
    assert hub2.run_test(f"cat /proc/{juser2.pid}/oom_score_adj").stdout.strip() == "0"
    try:
        output = juser2.execute("hog", HOG, timeout=60)
    except (KernelDied, websocket.WebSocketException, OSError):
        output = ""  # the kernel died under the request
    assert "survived" not in output
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and hub2.run(f"test -d /proc/{hog}").rc == 0:
        time.sleep(1)
    assert hub2.run(f"test -d /proc/{hog}").rc != 0, "the kernel over the limit is still running"
    # The server answers, still the same process, and the other kernel kept its value.
    assert hub2.service("jupyter-juser2-singleuser").is_running
    assert main_pid(hub2, "juser2") == juser2.pid
    assert juser2.get("/status").status_code == 200
    assert kernel_pid(hub2, "juser2", juser2.kernels["keeper"]) == keeper
    assert juser2.execute("keeper", "print(y)").strip() == "7"


# --- site.yml that changes a hub setting: every hub restarts, the servers stay -------------------------


def test_a_kernel_survives_a_site_run_that_changes_a_hub_setting(playbook, hub1, hub2, juser1, juser2):
    before = {host: hub_started(host) for host in (hub1, hub2)}
    changed = playbook.run("site.yml", "--tags", "jupyterhub", "-e", "jupyterhub_cull_every=9")
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert "--cull-every=9" in hub1.file("/etc/multijhub/jupyterhub/jupyterhub_config.py").content_string
    assert all(hub_started(host) != before[host] for host in (hub1, hub2)), "the hubs did not restart"
    wait_healthy(hub1)
    assert_holds(juser1, hub1, juser1.pid)
    # Put the setting back (every hub restarts again), without touching the servers in between.
    restored = playbook.run("site.yml", "--tags", "jupyterhub")
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert recap(restored.stdout)["hub1"]["changed"] > 0
    assert "--cull-every=10" in hub1.file("/etc/multijhub/jupyterhub/jupyterhub_config.py").content_string


# --- Busy is not idle ------------------------------------------------------------------------------------


def test_a_busy_kernel_keeps_its_server_while_an_idle_one_is_culled(hub1, hub2, juser1, juser2):
    # Neither server has had a request since the previous test: wait until an idle one must be gone.
    quiet = time.monotonic() - max(juser1.last_request, juser2.last_request)
    time.sleep(max(0.0, QUIET_ENOUGH - quiet))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and hub_user(hub2, "juser2").get("servers", {}).get(""):
        time.sleep(3)
    assert not hub_user(hub2, "juser2").get("servers", {}).get(""), "the idle server was not culled"
    assert not hub2.service("jupyter-juser2-singleuser").is_running
    quiet = time.monotonic() - juser1.last_request
    assert quiet > QUIET_ENOUGH, quiet
    model = hub_user(hub1, "juser1")["servers"][""]
    assert model["ready"], "the busy server was culled"
    # The busy kernel kept reporting activity to the hub, with no browser and no request at all.
    age = (datetime.now(timezone.utc) - datetime.fromisoformat(model["last_activity"])).total_seconds()
    assert age < 40, f"last activity {model['last_activity']} is {age:.0f} s old"
    assert juser1.kernel_state("value") == "busy"
    assert_holds(juser1, hub1, juser1.pid)


# --- An upgrade of the hub's packages: the server stays, and where.yml names its old code ------------


def test_a_kernel_survives_a_reinstall_of_the_hubs_packages(playbook, hub1, juser1, tmp_path):
    versions = {
        name: hub1.run_test(
            f"{VENV}/bin/python3 -c 'import importlib.metadata as m; print(m.version(\"{name}\"))'"
        ).stdout.strip()
        for name in ("jupyterhub", "jupyterlab", "jupyter_server")
    }
    pins = " ".join(f"{name}=={ver}" for name, ver in versions.items())
    hub1.run_test(
        f"{VENV}/bin/pip install -q --force-reinstall --no-deps --no-index --find-links {WHEELS} {pins}"
    )
    before = hub_started(hub1)
    hub1.run_test("/usr/local/sbin/multijhub-restart-hub")
    assert hub_started(hub1) != before
    assert_holds(juser1, hub1, juser1.pid)
    result = playbook.run("where.yml", "-e", "node=hub1", "-e", f"where_json={tmp_path / 'node.json'}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "old code: started before" in result.stdout
    processes = json.loads((tmp_path / "node.json").read_text())["report"]["processes"]
    [entry] = [p for p in processes if p["pid"] == juser1.pid]
    assert entry["user"] == "juser1"
    assert sorted(entry["outdated"]) == sorted(
        f"{name} {versions[name]}" for name in ("jupyterlab", "jupyter_server")
    )


# --- A node that really went down -------------------------------------------------------------------------


def test_after_a_node_restart_the_next_login_gets_a_fresh_server(playbook, hub1, juser1, monkeypatch):
    old = juser1.pid
    runtime = "/home/juser1/.local/share/jupyter/runtime"
    assert hub1.file(f"{runtime}/jpserver-{old}.json").exists
    mac = hub1.check_output("cat /sys/class/net/eth0/address").strip()
    # Power loss: every process of the node dies at once, nothing is cleaned up (the runtime file stays).
    subprocess.run(["podman", "kill", "hub1"], check=True, timeout=60, capture_output=True)
    subprocess.run(["podman", "start", "hub1"], check=True, timeout=120, capture_output=True)
    wait_healthy(hub1, timeout=180)
    # Ansible's shared ssh connection to hub1 died with the node: let ssh reconnect once.
    monkeypatch.setenv("ANSIBLE_SSH_RETRIES", "3")
    # A machine keeps its MAC address (molecule/cluster.yml pins it): with a new one, the other
    # machines' ARP caches sent to the old one and the front door could not reach hub1 for > 30 s.
    assert hub1.check_output("cat /sys/class/net/eth0/address").strip() == mac
    # The hub noticed at start that the server is gone; where.yml calls its file stale, not running.
    assert not hub_user(hub1, "juser1").get("servers", {}).get("")
    result = playbook.run("where.yml", "-e", "user=juser1")
    assert result.returncode == 2, result.stdout[-3000:]
    assert "juser1: no running server" in result.stdout
    assert f"jpserver-{old}.json" in result.stdout
    # The next front door login: one hub, a proof form, no "several" page and no 503.
    landing, seen = login_at_front_door("juser1")
    assert landing.status == 200 and landing.hub == "hub1", (seen, landing.response.text[:800])
    assert seen.count(503) <= 1, seen
    _hub_session, reply = follow_to_hub(landing)
    assert reply.status_code < 400, reply.text[:500]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not hub_user(hub1, "juser1").get("servers", {}).get("", {}).get(
        "ready"
    ):
        time.sleep(1)
    new = main_pid(hub1, "juser1")
    assert new and new != old
    found = playbook.run("where.yml", "-e", "user=juser1", "-e", "prune=true")
    assert found.returncode == 0, found.stdout[-3000:]
    assert f"juser1: running on hub1 (pid {new}" in found.stdout
    assert not hub1.file(f"{runtime}/jpserver-{old}.json").exists
