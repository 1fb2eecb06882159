"""JupyterHub finds multijhub's authenticator and spawners by name (the wheel's entry points),
and jupyter_client its kernel provisioner, the way their own plugins register themselves."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

jupyterhub_app = pytest.importorskip("jupyterhub.app", reason="JupyterHub is not installed")

from multijhub.hub.authenticator import FrontDoorAuthenticator  # noqa: E402
from multijhub.hub.kernels import OomFirstProvisioner  # noqa: E402
from multijhub.hub.spawners import RangeLocalProcessSpawner, RangeSystemdSpawner  # noqa: E402


def test_jupyterhub_resolves_the_names_of_the_config() -> None:
    app = jupyterhub_app.JupyterHub(
        authenticator_class="multijhub-frontdoor", spawner_class="multijhub-systemd"
    )
    assert app.authenticator_class is FrontDoorAuthenticator
    assert app.spawner_class is RangeSystemdSpawner
    app.spawner_class = "multijhub-localprocess"
    assert app.spawner_class is RangeLocalProcessSpawner


def test_the_kernel_provisioner_is_registered_for_jupyter_client() -> None:
    (found,) = entry_points(group="jupyter_client.kernel_provisioners", name="multijhub-oom-first")
    assert found.load() is OomFirstProvisioner


def test_the_config_template_uses_the_names() -> None:
    from pathlib import Path  # noqa: PLC0415

    template = (
        Path(__file__).resolve().parents[3] / "roles/jupyterhub/templates/jupyterhub_config.py.j2"
    ).read_text()
    assert 'c.JupyterHub.authenticator_class = "multijhub-frontdoor"' in template
    assert 'c.JupyterHub.spawner_class = "multijhub-systemd"' in template
    assert 'c.JupyterHub.spawner_class = "multijhub-localprocess"' in template
    assert "PYTHONPATH" not in template
