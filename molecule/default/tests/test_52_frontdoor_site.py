"""Issue 17 on the cluster: the front door at a real site, with the real PAM, gunicorn and hubs.

A class logging in at once from one address, twenty wrong passwords for one name, names as
people type them, accounts that change after login, /metrics over every gunicorn worker, and
site.yml's preflight of user names and hub URLs.
"""

from __future__ import annotations

import json
import re
import shlex
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import FRONTDOOR, PASSWORDS, absolute, frontdoor_login, recap, web

STORE = "/var/lib/multijhub/frontdoor/assignments.sqlite3"
PYTHON = "/opt/multijhub/frontdoor/bin/python"
CLEAR = "DELETE FROM login_failures"  # the throttle's table
HOSTS = ("frontdoor1", "hub1", "hub2")  # where PAM asks about juser1's account


def clear_failures(frontdoor) -> None:
    """Forget the counted failed logins (the throttle's table in the front door's store)."""
    code = f"import sqlite3; c = sqlite3.connect({STORE!r}); c.execute({CLEAR!r}); c.commit()"
    frontdoor.run_test(f"{PYTHON} -c {shlex.quote(code)}")


@pytest.fixture
def no_failures(frontdoor):
    clear_failures(frontdoor)
    yield
    clear_failures(frontdoor)


def login_post(user: str, password: str) -> tuple[requests.Session, requests.Response]:
    session = web()
    page = session.get(f"{FRONTDOOR}/login", timeout=30)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    reply = session.post(
        f"{FRONTDOOR}/login",
        data={"username": user, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=60,
    )
    return session, reply


def answer_action(html: str) -> str:
    return absolute(re.search(r'<form id="handoff" method="post" action="([^"]+)"', html).group(1))


def answer_proof(html: str) -> str:
    return re.search(r'name="proof" value="([^"]+)"', html).group(1)


def logins_total() -> float:
    text = web().get(f"{FRONTDOOR}/metrics", timeout=10).text
    match = re.search(r"^multijhub_frontdoor_logins_total (\S+)$", text, re.MULTILINE)
    assert match, text[:2000]
    return float(match.group(1))


# --- 5. metrics add up over the gunicorn workers ---------------------------------------------------


def test_metrics_add_up_over_every_gunicorn_worker(frontdoor, no_failures):
    env = frontdoor.run_test("systemctl show -p Environment multijhub-frontdoor").stdout
    assert "PROMETHEUS_MULTIPROC_DIR=/run/multijhub-frontdoor-metrics" in env
    main = frontdoor.run_test("systemctl show -p MainPID --value multijhub-frontdoor").stdout.strip()
    workers = frontdoor.run(f"pgrep -c -P {main} -f gunicorn").stdout
    assert int(workers) == 2, workers  # redirector_workers in the test inventory
    before = logins_total()
    n = 9
    users = ["juser1", "juser2", "jadmin"] * 3
    for user in users[:n]:
        _, reply = login_post(user, PASSWORDS[user])  # a new connection each: spread over the workers
        assert reply.status_code == 303
    assert logins_total() - before == n


# --- 1. failed logins are limited, logins are not ------------------------------------------------


def test_a_class_logging_in_at_once_from_one_address_all_get_in(no_failures):
    users = ["juser1", "juser2", "jadmin"] * 10

    def one(user: str) -> int:
        return login_post(user, PASSWORDS[user])[1].status_code

    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(one, users))
    assert codes == [303] * 30


def test_twenty_wrong_passwords_slow_that_name_down_and_nobody_else(no_failures):
    def wrong(n: int) -> requests.Response:
        return login_post("juser2", f"wrong-{n}")[1]

    with ThreadPoolExecutor(5) as pool:  # pam_faildelay makes each wrong password take seconds
        replies = list(pool.map(wrong, range(20)))
    codes = sorted(r.status_code for r in replies)
    # 10 reach PAM (a few more may race past the check while others wait in pam_faildelay).
    assert codes.count(401) >= 10 and codes.count(429) >= 5, codes
    _, right = login_post("juser2", PASSWORDS["juser2"])
    assert right.status_code == 429
    assert "Too many failed logins for this user name" in right.text
    assert 60 < int(right.headers["Retry-After"]) <= 600
    _, other = login_post("juser1", PASSWORDS["juser1"])
    assert other.status_code == 303


# --- 2. names as people type them ------------------------------------------------------------------


def test_a_capitalised_name_logs_in_as_the_lower_case_user(no_failures):
    session, reply = login_post("Juser1", PASSWORDS["juser1"])
    assert reply.status_code == 303, reply.text[:500]
    answer = session.get(f"{FRONTDOOR}/", allow_redirects=False, timeout=60)
    assert answer.status_code == 200 and 'id="handoff"' in answer.text
    # The proof is for juser1: the hub logs juser1 in (its own PAM account check included).
    action = answer_action(answer.text)
    hub = web()
    at_hub = hub.post(action, data={"proof": answer_proof(answer.text)}, allow_redirects=False, timeout=60)
    assert at_hub.status_code == 303 and "/hub/spawn" in at_hub.headers["Location"], at_hub.status_code
    home = hub.get(action.split("/hub/", 1)[0] + "/hub/home", timeout=60)
    assert home.status_code == 200 and "juser1" in home.text and "Juser1" not in home.text


def test_the_name_field_does_not_capitalise():
    html = web().get(f"{FRONTDOOR}/login", timeout=10).text
    field = re.search(r'<input[^>]*id="username"[^>]*>', html).group(0)
    assert 'autocapitalize="none"' in field and 'autocomplete="username"' in field
    assert 'spellcheck="false"' in field


# --- 4. accounts that change after login ---------------------------------------------------------


@pytest.fixture
def juser1_account(cluster):
    """Change juser1's account on the front door and the hubs; restored afterwards."""
    hosts = [cluster[name] for name in HOSTS]

    def change(command: str) -> None:
        for host in hosts:
            host.run_test(command)

    yield change
    for host in hosts:
        host.run_test("usermod -e '' juser1 && passwd -u juser1 >/dev/null; chage -d $(date +%F) juser1")


@pytest.mark.parametrize(
    ("command", "text"),
    [("usermod -e 1 juser1", "Your account has expired."), ("passwd -l juser1", "Your account is locked.")],
)
def test_an_account_expired_or_locked_after_login_gets_no_new_hub_session(
    juser1_account, no_failures, command, text
):
    session, landing = frontdoor_login("juser1")
    assert landing.proof, landing.response.text[:500]
    juser1_account(command)
    # The front door: its session ends with a page saying why, and no proof is minted.
    refused = session.get(f"{FRONTDOOR}/", allow_redirects=False, timeout=60)
    assert refused.status_code == 403, refused.text[:500]
    assert text in refused.text and 'name="proof"' not in refused.text
    assert (
        session.get(f"{FRONTDOOR}/", allow_redirects=False, timeout=30)
        .headers["Location"]
        .startswith("/login")
    )
    # The hub: a proof minted before the change is refused too (PAM's account check).
    at_hub = web().post(landing.action, data={"proof": landing.proof}, allow_redirects=False, timeout=60)
    assert at_hub.status_code == 403, (at_hub.status_code, at_hub.text[:300])
    assert "jupyterhub-session-id" not in at_hub.cookies and "jupyterhub-hub-login" not in str(at_hub.headers)


def test_a_password_that_must_be_changed_is_told_so(juser1_account, no_failures):
    juser1_account("chage -d 0 juser1")
    _, reply = login_post("juser1", PASSWORDS["juser1"])
    assert reply.status_code == 403, reply.text[:500]
    assert "must be changed" in reply.text and "Wrong user name or password" not in reply.text


# --- 3 and 6. site.yml's preflight -----------------------------------------------------------------


def test_preflight_refuses_a_listed_user_the_name_rule_rejects(playbook):
    result = playbook.run("site.yml", "-e", '{"multijhub_users": ["juser1", "Bad.User"]}')
    assert result.returncode != 0
    assert 'user "Bad.User" in multijhub_users is not a valid user name' in result.stdout, result.stdout[
        -3000:
    ]
    assert all(stats["changed"] == 0 for stats in recap(result.stdout).values())


def test_preflight_refuses_hubs_sharing_host_name_and_base_url(playbook):
    # The direct mode (multijhub_public_url unset: each hub its own public URL); in the proxied
    # mode the hubs' URLs are computed, one prefix each.
    url = "http://jupyter.example.org:{{ 8001 + groups['hubs'].index(inventory_hostname) }}"
    extra = {"multijhub_public_url": "", "jupyterhub_public_url": url}
    result = playbook.run("site.yml", "-e", json.dumps(extra))
    assert result.returncode != 0
    out = result.stdout
    assert "hubs hub1 and hub2 have public URLs" in out, out[-3000:]
    assert "browsers share cookies across ports" in out
    assert all(stats["changed"] == 0 for stats in recap(out).values())
