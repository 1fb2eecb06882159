"""The app end to end through the Flask test client: login, every resolution state, placing."""

from __future__ import annotations

import datetime
import ssl
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from frontdoor_env import GiB, build_env, csrf_token, evidence, login

from multijhub.frontdoor.app import hub_ssl_context
from multijhub.frontdoor.config import Config, ConfigError, SshConfig, StoreConfig


def hub_url(env, node: str) -> str:
    return f"http://127.0.0.1:{env.hubs.port}/{node}/hub/spawn"


def target(resp) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(resp.headers["Location"])
    return parts._replace(query="").geturl(), parse_qs(parts.query)


# ----------------------------------------------------------------------------- basics


def test_healthz(env):
    resp = env.client().get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_index_without_login_goes_to_login_keeping_next(env):
    resp = env.client().get("/")
    assert (resp.status_code, resp.headers["Location"]) == (302, "/login")
    resp = env.client().get("/?next=/user/juser1/lab")
    assert resp.headers["Location"] == "/login?next=%2Fuser%2Fjuser1%2Flab"


def test_login_page_has_csrf_and_security_headers(env):
    resp = env.client().get("/login")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'name="csrf_token"' in html
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"


def test_session_cookie_flags(env):
    client = env.client()
    resp = login(client, "juser1", "pw-juser1")
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("multijhub-frontdoor="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_secure_under_tls(tmp_path, hubs):
    env = build_env(tmp_path, hubs, tls=True)
    client = env.client()
    token = csrf_token(client)
    resp = client.post(
        "/login",
        data={"csrf_token": token, "username": "juser1", "password": "pw-juser1"},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/login"},
    )
    assert resp.status_code == 303
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("multijhub-frontdoor="))
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert "Strict-Transport-Security" in resp.headers
    env.resolver.close()


def test_login_success_sets_user_only_in_session(env):
    client = env.client()
    resp = login(client, "juser1", "pw-juser1")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/"
    with client.session_transaction() as sess:
        assert sess["user"] == "juser1"
    assert env.auth.calls == [("juser1", "pw-juser1")]


def test_wrong_password_is_401_and_the_login_page(env):
    resp = login(env.client(), "juser1", "nope")
    assert resp.status_code == 401
    assert "Wrong user name or password" in resp.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(env):
    resp = env.client().post("/login", data={"username": "juser1", "password": "pw-juser1"})
    assert resp.status_code == 400
    assert env.auth.calls == []


def test_login_is_rate_limited(tmp_path, hubs):
    env = build_env(tmp_path, hubs, login_rate_limit="3 per minute")
    client = env.client()
    codes = [login(client, "juser1", "wrong").status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429]
    assert len(env.auth.calls) == 3
    env.resolver.close()


def test_next_survives_login(env):
    env.hubs.set_server("hub1", "juser1")
    client = env.client()
    page = client.get("/login?next=/user/juser1/lab/tree/a.ipynb").get_data(as_text=True)
    assert 'value="/user/juser1/lab/tree/a.ipynb"' in page
    resp = login(client, "juser1", "pw-juser1", next="/user/juser1/lab/tree/a.ipynb")
    assert resp.headers["Location"] == "/?next=%2Fuser%2Fjuser1%2Flab%2Ftree%2Fa.ipynb"
    resp = client.get(resp.headers["Location"])
    url, query = target(resp)
    assert url == hub_url(env, "hub1")
    assert query == {"next": ["/hub1/user/juser1/lab/tree/a.ipynb"]}


def test_logout(env):
    client = env.login()
    assert "Log out" in client.get("/logout").get_data(as_text=True)
    token = csrf_token(client, "/logout")
    resp = client.post("/logout", data={"csrf_token": token})
    assert (resp.status_code, resp.headers["Location"]) == (303, "/login")
    assert env.client().get("/").status_code == 302
    with client.session_transaction() as sess:
        assert "user" not in sess


def test_logout_post_without_csrf_is_refused(env):
    client = env.login()
    assert client.post("/logout").status_code == 400
    with client.session_transaction() as sess:
        assert sess["user"] == "juser1"


def test_logged_in_user_visiting_login_goes_on(env):
    client = env.login()
    resp = client.get("/login?next=/hub/home")
    assert resp.headers["Location"] == "/?next=%2Fhub%2Fhome"


def test_tampered_session_cookie_is_ignored(env):
    client = env.client()
    client.set_cookie("multijhub-frontdoor", "eyJ1c2VyIjoicm9vdCJ9.forged.sig")
    resp = client.get("/")
    assert (resp.status_code, resp.headers["Location"]) == (302, "/login")
    assert env.probe.calls == []


# ----------------------------------------------------------------------------- resolution states


def test_running_via_hub_api(env):
    env.hubs.set_server("hub2", "juser1")
    resp = env.login().get("/")
    assert (resp.status_code, resp.headers["Location"]) == (302, hub_url(env, "hub2"))
    assert env.store.previous_node("juser1") == "hub2"


def test_pending_spawn_counts_as_running(env):
    env.hubs.set_server("hub1", "juser1", ready=False, pending="spawn")
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub1")


def test_running_via_runtime_evidence_only(env):
    env.probe.evidence[("hub2", "juser1")] = [evidence(4242)]
    env.probe.evidence[("hub1", "juser1")] = [evidence(4242, verdict="not-here")]
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub2")


def test_several_nodes_are_offered(env):
    env.hubs.set_server("hub1", "juser1")
    env.probe.evidence[("hub2", "juser1")] = [evidence(77)]
    resp = env.login().get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "several nodes" in html
    assert html.count('action="/go"') == 2
    assert 'name="node" type="hidden" value="hub1"' in html
    assert 'name="node" type="hidden" value="hub2"' in html


def test_several_nodes_choice_goes_to_the_chosen_node(env):
    env.hubs.set_server("hub1", "juser1")
    env.probe.evidence[("hub2", "juser1")] = [evidence(77)]
    client = env.login()
    token = csrf_token(client, "/")
    resp = client.post("/go", data={"csrf_token": token, "node": "hub2", "next": "/user/juser1/lab"})
    assert resp.status_code == 302
    url, query = target(resp)
    assert url == hub_url(env, "hub2")
    assert query == {"next": ["/hub2/user/juser1/lab"]}


def test_several_nodes_choice_refuses_a_node_without_the_server(env):
    env.hubs.set_server("hub1", "juser1")
    env.probe.evidence[("hub2", "juser1")] = [evidence(77)]
    client = env.login()
    token = csrf_token(client, "/")
    for node in ("hub3", "../x", ""):
        resp = client.post("/go", data={"csrf_token": token, "node": node})
        assert resp.status_code in (303, 400), node
        assert not resp.headers.get("Location", "/").startswith("http")
    env.probe.evidence[("hub2", "juser1")] = []
    resp = client.post("/go", data={"csrf_token": token, "node": "hub2"})
    assert (resp.status_code, resp.headers["Location"]) == (303, "/")


def test_go_needs_csrf_and_a_session(env):
    assert env.client().post("/go", data={"node": "hub1"}).status_code in (303, 400)
    client = env.login()
    assert client.post("/go", data={"node": "hub1"}).status_code == 400


@pytest.fixture
def slow_env(tmp_path, hubs):
    """The env with a 3 s deadline: hub1's answer must not miss it on a loaded machine (it did once,
    with qemu saturating both cores: the page then named hub1 too)."""
    e = build_env(tmp_path, hubs, deadline=3.0)
    yield e
    e.probe.release.set()
    e.resolver.close()


def test_unknown_when_a_node_does_not_answer(slow_env):
    env = slow_env
    env.probe.mode["hub2"] = "hang"
    start = time.monotonic()
    resp = env.login().get("/")
    elapsed = time.monotonic() - start
    html = resp.get_data(as_text=True)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert "hub2" in html and "no answer within" in html, html
    assert "Try again" in html
    assert elapsed < env.config.deadline + 0.5
    assert env.store.placements("juser1") == []  # never placed elsewhere


def test_unknown_when_a_hub_api_fails(env):
    env.hubs.mode["hub1"] = "error"
    resp = env.login().get("/?next=/hub/home")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 503
    assert "hub1" in html and "HTTP 500" in html
    assert 'name="next" value="/hub/home"' in html


def test_black_holed_node_does_not_hide_a_server_elsewhere(env):
    env.hubs.mode["hub2"] = "blackhole"
    env.probe.mode["hub2"] = "hang"
    env.hubs.set_server("hub1", "juser1")
    start = time.monotonic()
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub1")
    assert time.monotonic() - start < env.config.deadline + 0.5


def test_not_running_places_on_most_free_memory(env):
    env.probe.mem = {"hub1": (4 * GiB, 16 * GiB), "hub2": (10 * GiB, 16 * GiB)}
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub2")
    assert [(u, n) for u, n, _ in env.store.placements()] == [("juser1", "hub2")]


def test_no_eligible_node_is_503(tmp_path, hubs):
    env = build_env(tmp_path, hubs, drained=["hub1", "hub2"])
    resp = env.login().get("/")
    assert resp.status_code == 503
    assert "No node can take a new server" in resp.get_data(as_text=True)
    env.resolver.close()


# ----------------------------------------------------------------------------- placement


def test_recent_placements_count_as_pending(env):
    env.probe.mem = {"hub1": (9 * GiB, 16 * GiB), "hub2": (8 * GiB, 16 * GiB)}
    first = env.login("juser1").get("/")
    second = env.login("juser2").get("/")
    # juser1 went to hub1; its 2 GiB reservation makes hub2 (8) beat hub1 (9 - 2).
    assert first.headers["Location"] == hub_url(env, "hub1")
    assert second.headers["Location"] == hub_url(env, "hub2")


def test_sticky_to_previous_node_with_room(env):
    env.store.record_running("juser1", "hub1")
    env.probe.mem = {"hub1": (6 * GiB, 16 * GiB), "hub2": (12 * GiB, 16 * GiB)}
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub1")


def test_not_sticky_when_previous_node_is_full(env):
    env.store.record_running("juser1", "hub1")
    env.probe.mem = {"hub1": (GiB, 16 * GiB), "hub2": (12 * GiB, 16 * GiB)}
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub2")


def test_drained_in_config_is_skipped(tmp_path, hubs):
    env = build_env(tmp_path, hubs, drained=["hub2"])
    env.probe.mem = {"hub1": (1 * GiB, 16 * GiB), "hub2": (15 * GiB, 16 * GiB)}
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub1")
    env.resolver.close()


def test_drained_in_store_is_skipped_even_when_previous(env):
    env.store.record_running("juser1", "hub2")
    env.store.set_drained("hub2", True, by="admin")
    env.probe.mem = {"hub1": (1 * GiB, 16 * GiB), "hub2": (15 * GiB, 16 * GiB)}
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub1")


def test_drained_node_still_reaches_a_running_server(env):
    env.store.set_drained("hub2", True)
    env.hubs.set_server("hub2", "juser1")
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub2")


def test_login_after_server_started_resolves_same_node(env):
    env.probe.mem = {"hub1": (4 * GiB, 16 * GiB), "hub2": (10 * GiB, 16 * GiB)}
    client = env.login()
    assert client.get("/").headers["Location"] == hub_url(env, "hub2")
    env.hubs.set_server("hub2", "juser1")
    env.probe.mem = {"hub1": (12 * GiB, 16 * GiB), "hub2": (2 * GiB, 16 * GiB)}
    assert client.get("/").headers["Location"] == hub_url(env, "hub2")


def test_stale_file_after_kill_places_again_by_memory(env):
    # The server on hub2 was SIGKILLed: its file remains, no node claims the PID.
    env.store.record_running("juser1", "hub2")
    for node in ("hub1", "hub2"):
        env.probe.evidence[(node, "juser1")] = [evidence(999, verdict="not-here")]
    env.probe.mem = {"hub1": (12 * GiB, 16 * GiB), "hub2": (1 * GiB, 16 * GiB)}
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub1")


@pytest.mark.parametrize("clients", [2, 8])
def test_concurrent_first_logins_get_the_same_node(env, clients):
    env.probe.mem = {"hub1": (8 * GiB, 16 * GiB), "hub2": (8 * GiB, 16 * GiB)}
    logged_in = [env.login() for _ in range(clients)]
    barrier = threading.Barrier(clients)
    locations: list[str] = []
    lock = threading.Lock()

    def go(client) -> None:
        barrier.wait()
        resp = client.get("/")
        with lock:
            locations.append(
                resp.headers.get("Location") or f"{resp.status_code} {resp.get_data(as_text=True)}"
            )

    threads = [threading.Thread(target=go, args=(c,)) for c in logged_in]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(locations) == clients
    assert len(set(locations)) == 1
    assert len(env.store.placements("juser1")) == 1


# ----------------------------------------------------------------------------- errors


def test_unknown_route_is_404_page(env):
    resp = env.client().get("/nope/../../etc/passwd")
    assert resp.status_code == 404
    assert "Not Found" in resp.get_data(as_text=True)


def test_wrong_method_is_405(env):
    assert env.client().delete("/login").status_code == 405


def test_huge_body_is_413(env):
    resp = env.client().post("/login", data={"username": "x" * 200_000, "password": "y"})
    assert resp.status_code == 413


def test_backend_failure_is_a_clean_500(env, monkeypatch):
    def boom(user):
        raise RuntimeError("database gone")

    monkeypatch.setattr(env.resolver, "resolve", boom)
    resp = env.login().get("/")
    assert resp.status_code == 500
    assert "database gone" not in resp.get_data(as_text=True)


# ----------------------------------------------------------------------------- learned sizes (issue 19)


def cg(user: str, current: float, peak: float, session: str, oom: int = 0) -> dict:
    """One entry of a probe answer's "units" (a unit's cgroup memory)."""
    return {
        "user": user,
        "current": int(current * GiB),
        "peak": int(peak * GiB),
        "oom_kills": oom,
        "session": session,
        "cgroup": 2,
    }


def test_returning_user_goes_where_their_learned_size_fits(env):
    # juser1's previous session on hub2 peaked at 7 GiB; it has ended since.
    env.probe.units = {"hub1": [], "hub2": [cg("juser1", 1, 7, "old")]}
    env.login("juser2").get("/")  # any login: every node reports its servers' memory (juser2 -> hub1)
    # now hub1 has the most free memory, but juser3's server there is small now and peaked at 8 GiB
    env.probe.units = {"hub1": [cg("juser3", 1, 8, "s3")], "hub2": []}
    env.probe.mem = {"hub1": (int(11.5 * GiB), 16 * GiB), "hub2": (9 * GiB, 16 * GiB)}
    resp = env.login("juser1").get("/")
    # learned: hub1 11.5 - 7 still promised to juser3 - 2 pending (juser2, no history) = 2.5 < 7; hub2: 9
    # (fixed sizes would give hub1 11.5 - 2 pending = 9.5 > 9: hub1)
    assert resp.headers["Location"] == hub_url(env, "hub2")


def test_oom_kills_recorded_counted_and_shown(env):
    env.probe.units = {"hub1": [cg("juser2", 2, 2, "s", oom=3)]}
    client = env.login("juser1")
    client.get("/")
    client.get("/")  # seen again: not counted twice
    text = client.get("/metrics").get_data(as_text=True)
    assert 'multijhub_frontdoor_oom_kills_total{node="hub1"} 3.0' in text
    assert [(k.user, k.node, k.kills) for k in env.store.oom_kills()] == [("juser2", "hub1", 3)]


def test_malformed_units_do_not_stop_a_login(env):
    env.probe.units = {"hub1": [{"user": "x"}, "junk", cg("juser2", 1, -5, "s")], "hub2": "nope"}
    env.probe.mem = {"hub1": (4 * GiB, 16 * GiB), "hub2": (10 * GiB, 16 * GiB)}
    resp = env.login().get("/")
    assert resp.headers["Location"] == hub_url(env, "hub2")
    assert env.store.session_peaks() == {}


# ------------------------------------------------------------------ a silent node (issue 16, case 9)


def test_a_silent_node_holds_up_only_the_users_who_may_have_a_server_there(env, caplog):
    # Both nodes answer and list their servers: juser2 runs one on hub2 (started at that hub).
    env.probe.units = {"hub1": [], "hub2": [cg("juser2", 1, 1, "s2")]}
    env.probe.mem = {"hub1": (10 * GiB, 16 * GiB), "hub2": (4 * GiB, 16 * GiB)}
    env.hubs.set_server("hub2", "juser2")
    assert env.login("juser2").get("/").headers["Location"] == hub_url(env, "hub2")
    # hub2 freezes.
    env.probe.mode["hub2"] = "hang"
    env.hubs.mode["hub2"] = "blackhole"
    # juser3 never had a server on hub2: placed on hub1, and the log says hub2 was silent.
    with caplog.at_level("WARNING", logger="multijhub.frontdoor.views"):
        resp = env.login("juser3").get("/")
    assert resp.headers["Location"] == hub_url(env, "hub1")
    assert "juser3: hub2 is silent" in caplog.text and "not among juser3's recent nodes" in caplog.text
    # juser2's server may be on hub2: still "cannot tell", with the retry.
    client = env.login("juser2")
    resp = client.get("/")
    assert resp.status_code == 503 and "Try again" in resp.get_data(as_text=True)
    assert env.store.placements("juser2") == []
    # An operator marks hub2 down: juser2 is released too, onto hub1.
    env.store.set_down("hub2", True, by="drain.yml")
    resp = client.get("/")
    assert resp.headers["Location"] == hub_url(env, "hub1")
    text = client.get("/metrics").get_data(as_text=True)
    released = "multijhub_frontdoor_silent_node_releases_total"
    assert released + '{node="hub2",reason="not_recent"} 1.0' in text
    assert released + '{node="hub2",reason="down"} 1.0' in text


def test_a_fresh_placement_on_the_silent_node_holds_the_user_up(env):
    env.probe.units = {"hub1": [], "hub2": []}
    env.probe.mem = {"hub1": (4 * GiB, 16 * GiB), "hub2": (10 * GiB, 16 * GiB)}
    assert env.login("juser1").get("/").headers["Location"] == hub_url(env, "hub2")  # placed
    env.probe.mode["hub2"] = "hang"  # before the new server showed in hub2's list
    assert env.login("juser1").get("/").status_code == 503


def test_a_node_whose_servers_were_never_listed_holds_everyone_up(env):
    env.probe.units = {"hub1": []}  # hub2's probe does not list its servers (an older probe)
    env.login("juser2").get("/")
    env.probe.mode["hub2"] = "hang"
    assert env.login("juser3").get("/").status_code == 503  # unknown is not absent


def test_the_hubs_api_is_checked_against_the_internal_ca_only(tmp_path):
    """Issue 18: with hub_ca_file the hubs' API certificates must come from the internal CA (the
    system's trust store is not asked); an unusable file is a clear error."""

    def config(ca: str) -> Config:
        return Config(
            nodes=(),
            ssh=SshConfig(user="p", key_file="/k", known_hosts_file="/kh", control_dir="/run/x"),
            store=StoreConfig(kind="sqlite", path="/x", dsn=""),
            secret_key_file="/s",
            hub_ca_file=ca,
        )

    system = hub_ssl_context(config(""))
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    ca = tmp_path / "ca.crt"
    ca.write_bytes(_self_signed_ca("multijhub test CA"))
    internal = hub_ssl_context(config(str(ca)))
    assert internal.verify_mode == ssl.CERT_REQUIRED and internal.check_hostname
    # Only the internal CA: no certificate of the system's trust store.
    assert [dict(c["subject"][0])["commonName"] for c in internal.get_ca_certs()] == ["multijhub test CA"]
    with pytest.raises(ConfigError, match="hub_ca_file"):
        hub_ssl_context(config(str(tmp_path / "absent.crt")))
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="hub_ca_file"):
        hub_ssl_context(config(str(bogus)))


def _self_signed_ca(name: str) -> bytes:
    """A CA certificate (PEM) made with the cryptography library."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
