"""/metrics: Prometheus text that parses, and counters that move with logins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

from frontdoor_env import ROOT, GiB, build_env, evidence, login
from prometheus_client.parser import text_string_to_metric_families

from multijhub.frontdoor import gunicorn_conf


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


P = "multijhub_frontdoor_"


def test_metrics_parse_and_start_at_zero(env):
    samples = scrape(env.client())
    assert value(samples, P + "logins_total") == 0
    assert value(samples, P + "resolution_seconds_count") == 0
    for kind in ("login_refused", "unknown", "no_node"):
        assert (P + "failures_total", (("kind", kind),)) in samples
    assert (P + "placements_total", (("node", "hub1"),)) in samples


def test_counters_move_with_logins(env):
    env.probe.mem = {"hub1": (10 * GiB, 16 * GiB), "hub2": (4 * GiB, 8 * GiB)}
    env.login("juser1").get("/")  # placed on hub1
    env.hubs.set_server("hub2", "juser2")
    env.login("juser2").get("/")  # running on hub2
    samples = scrape(env.client())
    assert value(samples, P + "logins_total") == 2
    assert value(samples, P + "resolution_seconds_count") == 2
    assert value(samples, P + "resolution_seconds_sum") > 0
    assert value(samples, P + "placements_total", node="hub1") == 1
    assert value(samples, P + "placements_total", node="hub2") == 0
    assert value(samples, P + "handoffs_total", node="hub1") == 1
    assert value(samples, P + "handoffs_total", node="hub2") == 1
    assert value(samples, P + "nodes_up") == 2
    assert value(samples, P + "node_up", node="hub2") == 1
    assert value(samples, P + "node_mem_available_bytes", node="hub1") == 10 * GiB
    assert value(samples, P + "node_mem_total_bytes", node="hub2") == 8 * GiB


def test_failures_by_kind(env):
    client = env.client()
    assert login(client, "juser1", "wrong").status_code == 401
    env.probe.mode["hub2"] = "fail"
    env.login("juser1").get("/")  # unknown: hub2 did not answer
    env.probe.mode["hub2"] = "ok"
    env.hubs.set_server("hub1", "juser2")
    env.probe.evidence[("hub2", "juser2")] = [evidence(12)]
    env.login("juser2").get("/")  # several
    samples = scrape(env.client())
    assert value(samples, P + "failures_total", kind="login_refused") == 1
    assert value(samples, P + "failures_total", kind="unknown") == 1
    assert value(samples, P + "failures_total", kind="node_unanswered") == 1
    assert value(samples, P + "failures_total", kind="several") == 1
    assert value(samples, P + "node_up", node="hub2") == 1  # the last resolution saw it again


def test_each_app_has_its_own_registry(tmp_path, hubs, env):
    env.login("juser1").get("/")
    (tmp_path / "other").mkdir()
    other = build_env(tmp_path / "other", hubs)
    try:
        assert value(scrape(other.client()), P + "logins_total") == 0
        assert value(scrape(env.client()), P + "logins_total") == 1
    finally:
        other.resolver.close()


_MULTIPROC = """
import json, sys
from multijhub.frontdoor.metrics import Metrics, multiprocess_dir
from prometheus_client.parser import text_string_to_metric_families
role = sys.argv[1]
m = Metrics(["hub1", "hub2"], multiproc_dir=multiprocess_dir())
if role == "worker":
    m.logins.inc()
    m.placements.labels(node="hub2").inc()
    m.nodes_up.set(2)
else:
    body, _ = m.render()
    out = {{}}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    print(json.dumps(out))
"""


def test_multiprocess_mode_adds_up_workers(tmp_path):
    """Two worker processes count, a third renders the sum (PROMETHEUS_MULTIPROC_DIR)."""
    script = _MULTIPROC.format()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script, "worker"], env=env, check=True)
    out = subprocess.run([sys.executable, "-c", script, "render"], env=env, check=True, capture_output=True)
    samples = json.loads(out.stdout)
    assert samples[P + "logins_total{}"] == 2
    assert samples[P + 'placements_total{"node": "hub2"}'] == 2
    assert samples[P + "nodes_up{}"] == 2


def test_gunicorn_child_exit_marks_the_worker_dead(monkeypatch):
    """Issue 17: the hook the unit loads (--config python:multijhub.frontdoor.gunicorn_conf)."""
    dead: list[int] = []
    monkeypatch.setattr(gunicorn_conf.multiprocess, "mark_process_dead", dead.append)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/run/multijhub-frontdoor-metrics")
    gunicorn_conf.child_exit(None, SimpleNamespace(pid=4242))
    assert dead == [4242]
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    gunicorn_conf.child_exit(None, SimpleNamespace(pid=4243))
    assert dead == [4242]


def test_the_unit_sets_a_multiprocess_dir_emptied_at_every_start():
    unit = (ROOT / "roles/redirector/templates/multijhub-frontdoor.service.j2").read_text()
    assert "Environment=PROMETHEUS_MULTIPROC_DIR=/run/{{ redirector_runtime_dir_name }}-metrics" in unit
    runtime = next(line for line in unit.splitlines() if line.startswith("RuntimeDirectory="))
    assert "{{ redirector_runtime_dir_name }}-metrics" in runtime
    assert "--config python:multijhub.frontdoor.gunicorn_conf" in unit
