"""Log in once: the front door hands the user to the hub with a POSTed login proof."""

from __future__ import annotations

import html
import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from frontdoor_env import build_env, evidence, write_secret

from multijhub.frontdoor.app import _csp
from multijhub.frontdoor.config import ConfigError, parse_config
from multijhub.hub.proof import ProofError, ReplayCache, safe_next, verify_proof

KEY = "f" * 64
OLD = "e" * 64


@pytest.fixture
def penv(tmp_path, hubs):
    keys = [write_secret(tmp_path / "proof_key", KEY), write_secret(tmp_path / "proof_key.old", OLD)]
    e = build_env(tmp_path, hubs, proof_key_files=keys, proof_max_age=20)
    yield e
    e.probe.release.set()
    e.resolver.close()


def handoff(resp) -> tuple[str, str]:
    """(form action, proof) of a handoff page."""
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert "Location" not in resp.headers
    page = resp.get_data(as_text=True)
    action = re.search(r'<form id="handoff" method="post" action="([^"]+)"', page)
    proof = re.search(r'<input type="hidden" name="proof" value="([^"]+)">', page)
    assert action and proof, page
    return html.unescape(action.group(1)), html.unescape(proof.group(1))


def verify(token, node="hub1", **kw):
    return verify_proof(
        token, [KEY.encode(), OLD.encode()], audience=node, replay=kw.pop("replay", None), **kw
    )


def test_new_user_gets_a_proof_for_the_chosen_node(penv):
    penv.probe.mem = {"hub1": (4 * 2**30, 16 * 2**30), "hub2": (9 * 2**30, 16 * 2**30)}
    action, token = handoff(penv.login().get("/"))
    assert action == f"http://127.0.0.1:{penv.hubs.port}/hub2/hub/multijhub-login"
    claims = verify(token, "hub2")
    assert claims.sub == "juser1"
    assert claims.next == "/hub2/hub/spawn"
    assert claims.exp - claims.iat == 20
    assert safe_next(claims.next, "/hub2/") == claims.next
    with pytest.raises(ProofError) as info:
        verify(token, "hub1")
    assert info.value.kind == ProofError.AUDIENCE


def test_running_user_gets_a_proof_with_next(penv):
    penv.hubs.set_server("hub1", "juser1")
    resp = penv.login(next="/user/juser1/lab/tree/a.ipynb").get(
        "/?next=%2Fuser%2Fjuser1%2Flab%2Ftree%2Fa.ipynb"
    )
    action, token = handoff(resp)
    assert action.endswith("/hub1/hub/multijhub-login")
    claims = verify(token)
    parts = urlsplit(claims.next)
    assert parts.path == "/hub1/hub/spawn"
    assert parse_qs(parts.query) == {"next": ["/hub1/user/juser1/lab/tree/a.ipynb"]}


def test_each_visit_gets_a_fresh_single_use_proof(penv):
    penv.hubs.set_server("hub1", "juser1")
    client = penv.login()
    _, first = handoff(client.get("/"))
    _, second = handoff(client.get("/"))
    cache = ReplayCache()
    assert verify(first, replay=cache).jti != verify(second, replay=cache).jti
    with pytest.raises(ProofError):
        verify(first, replay=cache)


def test_page_submits_itself_with_a_noscript_button_and_a_strict_csp(penv):
    penv.hubs.set_server("hub1", "juser1")
    client = penv.login()
    resp = client.get("/")
    page = resp.get_data(as_text=True)
    assert '<script src="/static/handoff.js"></script>' in page
    assert re.search(r"<noscript>.*<button type=\"submit\">", page, re.S)
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert f"http://127.0.0.1:{penv.hubs.port}" in csp.split("form-action", 1)[1]
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    js = client.get("/static/handoff.js")
    assert js.status_code == 200 and b'getElementById("handoff").submit()' in js.data


def test_the_proof_never_reaches_a_url_or_a_log(penv, caplog):
    caplog.set_level(logging.DEBUG)
    penv.hubs.set_server("hub1", "juser1")
    client = penv.login()
    resp = client.get("/")
    _, token = handoff(resp)
    action, _ = handoff(resp)
    assert token not in action and "proof" not in urlsplit(action).query
    assert all(token not in r.getMessage() for r in caplog.records)
    assert all(token not in v for _, v in resp.headers.items())


def test_several_nodes_choice_hands_off_with_a_proof(penv):
    penv.hubs.set_server("hub1", "juser1")
    penv.probe.evidence[("hub2", "juser1")] = [evidence(77)]
    client = penv.login()
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    action, proof = handoff(client.post("/go", data={"csrf_token": token, "node": "hub2"}))
    assert action.endswith("/hub2/hub/multijhub-login")
    assert verify(proof, "hub2").sub == "juser1"


def test_without_keys_the_front_door_redirects(env):
    env.hubs.set_server("hub1", "juser1")
    resp = env.login().get("/")
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/hub1/hub/spawn")


def test_unsafe_proof_key_file_stops_the_app(tmp_path, hubs):
    key = tmp_path / "proof_key"
    key.write_text(KEY)
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="too open"):
        build_env(tmp_path, hubs, proof_key_files=[str(key)])


def test_short_proof_key_stops_the_app(tmp_path, hubs):
    key = write_secret(tmp_path / "proof_key", "short")
    with pytest.raises(ConfigError, match="shorter"):
        build_env(tmp_path, hubs, proof_key_files=[key])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"proof_key_files": ["relative/key"]}, "absolute path"),
        ({"proof_key_files": "/one/key"}, "expected list"),
        ({"proof_max_age": 0}, "between 1 and 300"),
        ({"proof_max_age": 3600}, "between 1 and 300"),
    ],
)
def test_proof_config_is_checked(tmp_path, hubs, extra, message):
    with pytest.raises(ConfigError, match=message):
        build_env(tmp_path, hubs, **extra)


def test_a_user_released_from_a_down_node_is_told_on_the_page(penv):
    """Issue 16, case 9: the page says the server on the down node is lost; a new one starts elsewhere."""
    penv.probe.units = {"hub1": [], "hub2": []}
    penv.hubs.set_server("hub2", "juser1")
    action, _ = handoff(penv.login().get("/"))
    assert action.endswith("/hub2/hub/multijhub-login")
    penv.probe.mode["hub2"] = "hang"
    penv.hubs.mode["hub2"] = "blackhole"
    assert penv.login().get("/").status_code == 503  # juser1's server may be there
    penv.store.set_down("hub2", True)
    resp = penv.login().get("/")
    action, _ = handoff(resp)
    assert action.endswith("/hub1/hub/multijhub-login")
    page = html.unescape(resp.get_data(as_text=True))
    assert "hub2 is marked down by the operators: a server you had there is lost or cannot be reached" in page
    assert "A new server is started for you on hub1." in page
    assert 'data-delay="6"' in page  # readable before the page goes on


def test_in_proxied_mode_the_csp_names_no_other_origin():
    """Issue 18: with the hubs under the front door's own address, forms post to 'self' only."""
    nodes = [
        {"name": n, "base_url": f"https://jupyter.example.org/node/{n}", "api_token_file": "/t"}
        for n in ("hub1", "hub2")
    ]
    base = {
        "store": "/var/lib/x.sqlite3",
        "secret_key_file": "/etc/x/secret",
        "ssh": {"user": "p", "key_file": "/k", "known_hosts_file": "/kh", "control_dir": "/run/x"},
        "nodes": nodes,
    }
    proxied = _csp(parse_config(base | {"public_url": "https://jupyter.example.org"}))
    assert "form-action 'self';" in proxied and "https://" not in proxied
    direct = _csp(parse_config(base))
    assert "form-action 'self' https://jupyter.example.org;" in direct
