"""Issue 7 in a real headless browser (Debian's chromium driven by Playwright, no browser download):
log in once at the front door and land in JupyterLab on a hub, come back to the same server, and an
admin drains a node so that a new user lands on the other one. Screenshots: tests/output/screenshots."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FRONTDOOR, PASSWORDS, PUBLIC_HUBS, REPO, hub_user, stop_server

sync_api = pytest.importorskip("playwright.sync_api")

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


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: molecule/host/prepare-host.sh installs it")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
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
    page.wait_for_url(f"**/user/{user}/lab**", timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    return hub_of(page.url)


def test_log_in_once_land_in_jupyterlab_and_come_back_to_the_same_server(browser, cluster):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{FRONTDOOR}/login")
    shot(page, "01-frontdoor-login")
    login(page, "juser1")
    hub = wait_for_lab(page, "juser1")
    shot(page, "02-jupyterlab-after-one-login")
    assert "/hub/login" not in page.url
    started = hub_user(cluster[hub], "juser1")["servers"][""]["started"]

    # Log out of the front door, come back: the same node, the same (still running) server.
    context.clear_cookies()
    login(page, "juser1")
    assert wait_for_lab(page, "juser1") == hub
    assert hub_user(cluster[hub], "juser1")["servers"][""]["started"] == started
    context.close()


def test_admin_sees_memory_bars_and_drains_a_node_then_a_new_user_lands_elsewhere(browser, cluster):
    admin = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = admin.new_page()
    login(page, "jadmin")
    page.wait_for_load_state("networkidle")
    page.goto(f"{FRONTDOOR}/admin")
    assert page.locator("svg.bar").count() == 2
    shot(page, "03-admin-status")
    juser1_hub = next(
        h for h in ("hub1", "hub2") if hub_user(cluster[h], "juser1").get("servers", {}).get("")
    )
    other = "hub2" if juser1_hub == "hub1" else "hub1"
    # Drain the node juser2 would otherwise be free to use: the one without juser1 is the emptier.
    page.click(f"button:has-text('Drain {other}')")
    page.wait_for_selector(f"button:has-text('Undrain {other}')")
    shot(page, "04-admin-drained")
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
