"""Issues 7 and 18 in a real headless browser (Debian's chromium driven by Playwright, no browser
download), through the cluster's one public address only (the hubs' ports are published nowhere):
log in once at the front door, land in JupyterLab on a hub, run a cell (the kernel's websocket
goes through the front door's nginx), open a terminal, come back later to the same server and the
same kernel; an admin drains a node so that a new user lands on the other one.
Screenshots: tests/output/screenshots."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import FRONTDOOR, PASSWORDS, PUBLIC_HUBS, REPO, frontdoor_ca, hub_user, stop_server

sync_api = pytest.importorskip("playwright.sync_api")
# The certificate's public key hash for chromium (the cryptography package reads the PEM).
x509 = pytest.importorskip("cryptography.x509")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")

SHOTS = REPO / "tests" / "output" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER = "juser1"
KERNEL_IDLE = re.compile(r"^Python 3 \(ipykernel\) \| Idle$")  # the status bar's kernel item
TERMINAL_SETTINGS = "/home/{user}/.jupyter/lab/user-settings/@jupyterlab/terminal-extension"


def spki_sha256(pem: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo DER)) of a PEM certificate: what chromium's
    --ignore-certificate-errors-spki-list takes (the same as openssl x509 -pubkey | openssl pkey
    -pubin -outform der | openssl dgst -sha256 -binary | base64)."""
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Chromium that trusts the front door's self-signed certificate, and only that one: pinned by
    its public key (every other certificate error still stops a page)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: molecule/host/prepare-host.sh installs it")
    SHOTS.mkdir(parents=True, exist_ok=True)
    pin = spki_sha256(Path(frontdoor_ca()).read_text())
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*ARGS, f"--ignore-certificate-errors-spki-list={pin}"],
            headless=True,
        )
        yield browser
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(page, user: str) -> None:
    page.goto(f"{FRONTDOOR}/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")


def hub_of(url: str) -> str:
    return next(name for base, name in PUBLIC_HUBS.items() if url.startswith(base + "/"))


def wait_for_lab(page, user: str) -> str:
    """Wait until JupyterLab is up at ``{FRONTDOOR}/node/<hub>/user/<user>/lab``; the hub's name."""
    page.wait_for_url(f"**/user/{user}/lab**", timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    hub = hub_of(page.url)
    assert page.url.startswith(f"{FRONTDOOR}/node/{hub}/user/{user}/lab"), page.url
    return hub


class Traffic:
    """Every URL the page asked for (HTTP and websockets), to check that all went to one origin."""

    def __init__(self, page) -> None:
        self.urls: list[str] = []
        self.websockets: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda ws: self.websockets.append(ws.url))

    def foreign(self) -> list[str]:
        """URLs on any other origin than the public address (data: and blob: URLs are not traffic)."""
        public = urlsplit(FRONTDOOR).netloc
        return [
            url
            for url in self.urls + self.websockets
            if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).netloc != public
        ]


def wait_kernel_idle(page) -> None:
    """Wait until the notebook's kernel is connected and idle: the status bar names the kernel and
    says Idle. (The toolbar's execution indicator says "idle" before there is a kernel, and a cell
    run then is silently dropped: JupyterLab clears its prompt and runs nothing.)"""
    status = page.get_by_role("contentinfo").get_by_role("button", name=KERNEL_IDLE)
    status.wait_for(timeout=120_000)


def run_cell(page, index: int) -> object:
    """Run the notebook's cell ``index`` as a person does (click into it, Shift+Enter); its output area."""
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)
    cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    return cell.locator(".jp-OutputArea-output")


def open_terminal(page) -> object:
    """File > New > Terminal; the new terminal's xterm (its screen-reader rows carry the text)."""
    page.click('.lm-MenuBar-item:has-text("File")')
    page.hover('.lm-Menu-item[data-type="submenu"]:has-text("New")')
    page.click('.lm-Menu-item[data-command="terminal:create-new"]')
    terminal = page.locator(".jp-Terminal:visible").last
    terminal.wait_for(timeout=60_000)
    return terminal


@pytest.fixture
def notebook(home) -> Iterator[str]:
    """A notebook of juser1's (two cells: set x and print it, print x again) and the terminal in
    screen-reader mode (xterm then keeps its rows as text; its canvas has none), written on the home
    host as juser1; removed afterwards. Its name, relative to the home directory."""
    name = f"test60-{uuid.uuid4().hex[:8]}.ipynb"
    cells = ['x = 6 * 7\nprint("answer", x)', 'print("again", x)']
    content = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
            for src in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    settings = TERMINAL_SETTINGS.format(user=USER)
    script = (
        f"mkdir -p {shlex.quote(settings)}"
        f" && printf %s {shlex.quote(json.dumps({'screenReaderMode': True}))}"
        f" > {shlex.quote(settings)}/plugin.jupyterlab-settings"
        f" && printf %s {shlex.quote(json.dumps(content))} > /home/{USER}/{name}"
    )
    home.run_expect([0], f"runuser -u {USER} -- sh -c {shlex.quote(script)}")
    yield name
    home.run(f"rm -f /home/{USER}/{name} /home/{USER}/{name}.terminal {settings}/plugin.jupyterlab-settings")


def test_log_in_once_run_a_cell_open_a_terminal_and_come_back_to_the_same_server(browser, cluster, notebook):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    traffic = Traffic(page)
    page.goto(f"{FRONTDOOR}/login")
    shot(page, "01-frontdoor-login")
    login(page, USER)
    hub = wait_for_lab(page, USER)
    shot(page, "02-jupyterlab-after-one-login")
    assert "/hub/login" not in page.url
    server = hub_user(cluster[hub], USER)["servers"][""]
    assert server["ready"]
    started = server["started"]
    lab = f"{FRONTDOOR}/node/{hub}/user/{USER}/lab"

    # A cell: the kernel's messages go over a websocket through the front door.
    page.goto(f"{lab}/tree/{notebook}")
    wait_kernel_idle(page)
    sync_api.expect(run_cell(page, 0)).to_contain_text("answer 42", timeout=60_000)
    shot(page, "03-a-cell-ran")
    kernels = [url for url in traffic.websockets if "/api/kernels/" in url]
    assert kernels, traffic.websockets
    assert all(
        url.startswith(f"wss://{urlsplit(FRONTDOOR).netloc}/node/{hub}/user/{USER}/") for url in kernels
    )

    # A terminal: a command typed into it runs on that hub, its output shows on the page.
    terminal = open_terminal(page)
    rows = terminal.locator(".xterm-accessibility-tree")
    sync_api.expect(rows).to_contain_text("$", timeout=60_000)  # the shell's prompt
    terminal.locator("textarea.xterm-helper-textarea").focus()  # where xterm takes keys (a click's target)
    page.keyboard.type(f'echo "term-$((6 * 7))-$(hostname)" | tee {notebook}.terminal\n')
    sync_api.expect(rows).to_contain_text(f"term-42-{hub}", timeout=30_000)
    shot(page, "04-a-terminal")
    assert cluster[hub].file(f"/home/{USER}/{notebook}.terminal").content_string.strip() == f"term-42-{hub}"
    assert any("/terminals/websocket/" in url for url in traffic.websockets), traffic.websockets
    assert traffic.foreign() == []
    context.close()

    # Later, a new browser session: log in again, the same node, the same server, the same kernel.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    traffic = Traffic(page)
    login(page, USER)
    assert wait_for_lab(page, USER) == hub
    assert hub_user(cluster[hub], USER)["servers"][""]["started"] == started
    page.goto(f"{lab}/tree/{notebook}")
    wait_kernel_idle(page)
    sync_api.expect(run_cell(page, 1)).to_contain_text("again 42", timeout=60_000)
    shot(page, "05-the-same-kernel-later")
    assert traffic.foreign() == []
    context.close()


def test_admin_sees_memory_bars_and_drains_a_node_then_a_new_user_lands_elsewhere(browser, cluster):
    admin = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = admin.new_page()
    login(page, "jadmin")
    page.wait_for_load_state("networkidle")
    page.goto(f"{FRONTDOOR}/admin")
    assert page.locator("svg.bar").count() == 2
    shot(page, "06-admin-status")
    juser1_hub = next(
        h for h in ("hub1", "hub2") if hub_user(cluster[h], "juser1").get("servers", {}).get("")
    )
    other = "hub2" if juser1_hub == "hub1" else "hub1"
    # Drain the node juser2 would otherwise be free to use: the one without juser1 is the emptier.
    page.click(f"button:has-text('Drain {other}')")
    page.wait_for_selector(f"button:has-text('Undrain {other}')")
    shot(page, "07-admin-drained")
    try:
        user = browser.new_context(viewport={"width": 1280, "height": 800})
        upage = user.new_page()
        login(upage, "juser2")
        assert wait_for_lab(upage, "juser2") == juser1_hub
        user.close()
    finally:
        page.goto(f"{FRONTDOOR}/admin")
        page.click(f"button:has-text('Undrain {other}')")
        page.wait_for_selector(f"button:has-text('Drain {other}')")
        admin.close()
        for name in ("hub1", "hub2"):
            for who in ("juser1", "juser2", "jadmin"):
                if hub_user(cluster[name], who).get("servers", {}).get(""):
                    stop_server(cluster[name], who)
