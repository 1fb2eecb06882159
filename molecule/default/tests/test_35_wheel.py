"""Issue 15: one wheel, installed with pip into the hubs' and the front door's virtualenvs.

The same version (sources' sha256 as local label) everywhere, no PYTHONPATH in any unit, no copied
trees left to drift, JupyterHub running the authenticator and spawner found by entry point name.
"""

from __future__ import annotations

import json
import re

HUB_VENV = "/opt/multijhub/jupyterhub"
FRONTDOOR_VENV = "/opt/multijhub/frontdoor"
VERSION = re.compile(r"^0\.1\.0\+s[0-9a-f]{12}$")


def installed_version(host, venv: str) -> str:
    code = "import importlib.metadata as m; print(m.version('multijhub'))"
    return host.run_test(f'{venv}/bin/python -c "{code}"').stdout.strip()


def test_one_version_of_the_wheel_everywhere(hub1, hub2, frontdoor):
    versions = {
        installed_version(hub1, HUB_VENV),
        installed_version(hub2, HUB_VENV),
        installed_version(frontdoor, FRONTDOOR_VENV),
    }
    assert len(versions) == 1, versions
    (version,) = versions
    assert VERSION.match(version), version
    for host, lib in ((hub1, "/opt/multijhub/hub-lib"), (frontdoor, "/opt/multijhub/frontdoor-lib")):
        wheels = host.run_test(f"ls {lib}").stdout.split()
        assert [w for w in wheels if w.endswith(".whl")] == [f"multijhub-{version}-py3-none-any.whl"]


def test_no_unit_sets_pythonpath(hub1, frontdoor):
    for host, unit in ((hub1, "jupyterhub"), (frontdoor, "multijhub-frontdoor")):
        env = host.run_test(f"systemctl show -p Environment {unit}").stdout
        assert "PYTHONPATH" not in env, env
    assert "PYTHONPATH" not in hub1.file("/etc/multijhub/jupyterhub/jupyterhub_config.py").content_string


def test_no_copied_trees_remain(hub1, frontdoor):
    assert not hub1.file("/opt/multijhub/hub-lib/multijhub_hub").exists
    assert not hub1.file("/opt/multijhub/hub-lib/multijhub_hub-0.1.0.dist-info").exists
    assert not hub1.file("/opt/multijhub/probe-lib/multijhub_core").exists
    assert not frontdoor.file("/opt/multijhub/frontdoor-lib/multijhub_frontdoor").exists


def test_the_hub_runs_the_classes_named_by_entry_point(hub1):
    config = hub1.file("/etc/multijhub/jupyterhub/jupyterhub_config.py").content_string
    assert 'c.JupyterHub.authenticator_class = "multijhub-frontdoor"' in config
    code = (
        "import json; from jupyterhub.app import JupyterHub; "
        "a = JupyterHub(authenticator_class='multijhub-frontdoor', spawner_class='multijhub-systemd'); "
        "print(json.dumps([a.authenticator_class.__module__, a.spawner_class.__name__]))"
    )
    out = hub1.run_test(f'{HUB_VENV}/bin/python -c "{code}"').stdout
    assert json.loads(out) == ["multijhub.hub.authenticator", "RangeSystemdSpawner"]
    pid = hub1.run_test("systemctl show -p MainPID --value jupyterhub").stdout.strip()
    assert hub1.run_test(f"cat /proc/{pid}/cmdline").stdout.split("\0")[0].startswith(HUB_VENV)


def test_the_front_door_commands_are_installed(frontdoor):
    for command in ("multijhub-frontdoor-check-config", "multijhub-frontdoor-drain", "multijhub-probe"):
        assert frontdoor.run_test(f"{FRONTDOOR_VENV}/bin/{command} --help").rc == 0
    checked = frontdoor.run_test(
        f"{FRONTDOOR_VENV}/bin/multijhub-frontdoor-check-config /etc/multijhub/frontdoor/frontdoor.toml"
    )
    assert checked.stdout.strip().endswith(": ok")
