"""The admin status page: only for the admin group; memory bars, users, drain/undrain."""

from __future__ import annotations

import re

import pytest
from frontdoor_env import GiB, build_env, csrf_token

ADMINS = {"juser3"}


def group_check(user: str, group: str) -> bool:
    return group == "hubadmins" and user in ADMINS


@pytest.fixture
def aenv(tmp_path, hubs):
    e = build_env(tmp_path, hubs, group_check=group_check, admin_group="hubadmins")
    yield e
    e.probe.release.set()
    e.resolver.close()


def drain(client, node: str, action: str = "drain", token: str | None = None):
    token = token if token is not None else csrf_token(client, "/admin")
    return client.post("/admin/drain", data={"csrf_token": token, "node": node, "action": action})


def test_anonymous_is_sent_to_login(aenv):
    resp = aenv.client().get("/admin")
    assert (resp.status_code, resp.headers["Location"]) == (302, "/login")
    assert aenv.client().post("/admin/drain", data={"node": "hub1", "action": "drain"}).status_code in (
        400,
        403,
    )


def test_non_admin_gets_403(aenv):
    client = aenv.login("juser1")
    assert client.get("/admin").status_code == 403
    token = csrf_token(client, "/logout")
    resp = client.post("/admin/drain", data={"csrf_token": token, "node": "hub1", "action": "drain"})
    assert resp.status_code == 403
    assert aenv.store.drained_nodes() == frozenset()


def test_without_admin_group_nobody_is_admin(tmp_path, hubs):
    e = build_env(tmp_path, hubs, group_check=lambda u, g: True)
    try:
        assert e.login("juser3").get("/admin").status_code == 403
    finally:
        e.resolver.close()


def test_status_shows_nodes_memory_users_and_states(aenv):
    aenv.probe.mem = {"hub1": (12 * GiB, 16 * GiB), "hub2": (2 * GiB, 8 * GiB)}
    aenv.hubs.set_server("hub1", "juser1")
    aenv.hubs.set_server("hub1", "juser2")
    aenv.hubs.set_server("hub2", "juser2", ready=False, pending="spawn")
    page = aenv.login("juser3").get("/admin")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    hub1, hub2 = html.split('<section class="node')[1:3]
    assert "hub1" in hub1 and 'class="badge up">up' in hub1
    assert "used 4.0 GiB · available 12.0 GiB · limit 16.0 GiB" in hub1
    assert re.search(r'<rect class="used" x="0" y="0" width="25.0"', hub1)
    assert re.search(r'<rect class="avail" x="25.0" y="0" width="75.0"', hub1)
    assert "<li>juser1</li><li>juser2</li>" in hub1
    assert "used 6.0 GiB · available 2.0 GiB · limit 8.0 GiB" in hub2
    assert "None." in hub2  # juser2's server there is not ready
    assert ">Drain hub1</button>" in hub1


def test_unanswering_node_is_unknown(aenv):
    aenv.probe.mode["hub2"] = "fail"
    aenv.hubs.mode["hub2"] = "nolist"
    html = aenv.login("juser3").get("/admin").get_data(as_text=True)
    hub2 = html.split('<section class="node')[2]
    assert 'class="badge unknown">unknown' in hub2
    assert "Memory unknown" in hub2
    assert "token lacks scope list:users" in hub2


def test_drain_and_undrain(aenv):
    client = aenv.login("juser3")
    resp = drain(client, "hub1")
    assert (resp.status_code, resp.headers["Location"]) == (303, "/admin")
    assert aenv.store.drained_nodes() == {"hub1"}
    html = client.get("/admin").get_data(as_text=True)
    hub1 = html.split('<section class="node')[1]
    assert 'class="badge drained">drained' in hub1 and "answering, by page" in hub1
    assert ">Undrain hub1</button>" in hub1
    # a new user now lands on the other node, even with more memory on hub1
    aenv.probe.mem = {"hub1": (15 * GiB, 16 * GiB), "hub2": (3 * GiB, 16 * GiB)}
    resp = aenv.login("juser1").get("/")
    assert resp.headers["Location"].endswith("/hub2/hub/spawn")
    assert drain(client, "hub1", "undrain").status_code == 303
    assert aenv.store.drained_nodes() == frozenset()
    resp = aenv.login("juser2").get("/")
    assert resp.headers["Location"].endswith("/hub1/hub/spawn")


@pytest.mark.parametrize(
    ("node", "action"),
    [("hub9", "drain"), ("", "drain"), ("hub1", "explode"), ("../hub1", "drain"), ("x" * 100, "drain")],
)
def test_bad_drain_requests(aenv, node, action):
    client = aenv.login("juser3")
    assert drain(client, node, action).status_code == 400
    assert aenv.store.drained_nodes() == frozenset()


def test_drain_needs_csrf(aenv):
    client = aenv.login("juser3")
    assert drain(client, "hub1", token="").status_code == 400
    assert client.post("/admin/drain", data={"node": "hub1", "action": "drain"}).status_code == 400
    assert aenv.store.drained_nodes() == frozenset()


def test_inventory_drained_node_cannot_be_undrained_here(tmp_path, hubs):
    e = build_env(tmp_path, hubs, group_check=group_check, admin_group="hubadmins", drained=["hub2"])
    try:
        client = e.login("juser3")
        html = client.get("/admin").get_data(as_text=True)
        assert "Drained in the inventory" in html.split('<section class="node')[2]
        assert drain(client, "hub2", "undrain").status_code == 409
    finally:
        e.resolver.close()


def test_user_list_follows_pages(aenv):
    for i in range(5):
        aenv.hubs.set_server("hub1", f"user{i}")
    api = aenv.resolver.apis["hub1"]
    assert api.ready_users(1.0, page=2) == [f"user{i}" for i in range(5)]


def cg(user: str, current: float, peak: float, session: str, oom: int = 0) -> dict:
    return {
        "user": user,
        "current": int(current * GiB),
        "peak": int(peak * GiB),
        "oom_kills": oom,
        "session": session,
    }


def test_status_shows_learned_sizes_promised_memory_and_oom_kills(aenv):
    # juser1 peaked at 6 GiB in an earlier session; now juser1 runs small on hub1 and juser2 on hub2
    aenv.probe.units = {"hub1": [cg("juser1", 5, 6, "old")]}
    aenv.login("juser2").get("/")
    aenv.probe.units = {"hub1": [cg("juser1", 1, 1, "new")], "hub2": [cg("juser2", 2, 3, "s2", oom=2)]}
    body = aenv.login("juser3").get("/admin").get_data(as_text=True)
    hub1 = body.split("<h2>hub1")[1].split("</section>")[0]
    hub2 = body.split("<h2>hub2")[1].split("</section>")[0]
    assert "servers: 1 · in use 1.0 GiB · promised by learned sizes 6.0 GiB" in hub1
    assert "servers: 1 · in use 2.0 GiB · promised by learned sizes 3.0 GiB" in hub2
    learned = body.split("Largest learned sizes")[1].split("</section>")[0]
    rows = re.findall(r"<tr><td>(\w+)</td><td>([\d.]+) GiB</td>", learned)
    assert rows == [("juser1", "6.0"), ("juser2", "3.0")]
    oom = body.split("Out-of-memory kills")[1].split("</section>")[0]
    assert re.search(r"<td>juser2</td><td>hub2</td><td>2</td>", oom)
    assert 'multijhub_frontdoor_oom_kills_total{node="hub2"} 2.0' in aenv.client().get("/metrics").get_data(
        as_text=True
    )


def test_a_broken_grant_is_counted_listed_with_its_repair_and_cleared_once_repaired(aenv):
    """Issue 16, case 3: chmod 700 on juser2's home; the probe cannot list the runtime directory."""
    denied = "cannot list the runtime directory /home/juser2/x: permission denied"
    aenv.probe.extra[("hub2", "juser2")] = {"runtime_error": denied, "grant_error": denied, "processes": []}
    # A flooded directory (another runtime_error) is not a broken grant.
    aenv.probe.extra[("hub1", "juser2")] = {"runtime_error": "too many files in ...", "processes": []}
    user = aenv.login("juser2")
    user.get("/")
    text = user.get("/metrics").get_data(as_text=True)
    assert 'multijhub_frontdoor_broken_grants_total{node="hub2"} 1.0' in text
    assert 'multijhub_frontdoor_broken_grants_total{node="hub1"} 0.0' in text
    page = aenv.login("juser3").get("/admin").get_data(as_text=True)
    grants = page.split('id="grants"', 1)[1]
    assert "<td>juser2</td><td>hub2</td>" in grants and "permission denied" in grants
    assert "ansible-playbook site.yml --limit home" in grants
    del aenv.probe.extra[("hub2", "juser2")]  # repaired
    user.get("/")
    page = aenv.login("juser3").get("/admin").get_data(as_text=True)
    assert "None seen." in page.split('id="grants"', 1)[1]


def test_a_node_marked_down_is_shown(aenv):
    aenv.store.set_down("hub2", True, by="drain.yml")
    page = aenv.login("juser3").get("/admin").get_data(as_text=True)
    assert '<span class="badge down">marked down</span>' in page
