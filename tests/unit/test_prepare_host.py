"""molecule/host/prepare-host.sh --check: the machine check that ends every set-up.

A missing program is named with the Debian package that has it (the fault behind a `make demo`
that failed on a fresh machine: netavark needs iptables, which Debian only suggests). The real
smoke test boots two containers of the cluster's image, so it runs where podman and the image
exist (make test builds them first) and is skipped elsewhere, except under make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "molecule" / "host" / "prepare-host.sh"
IMAGE = os.environ.get("MULTIJHUB_IMAGE", "localhost/multijhub-debian12:latest")


def run_check(env_path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": env_path}
    env.setdefault("CONTAINERS_CONF", str(REPO / "molecule" / "host" / "containers.conf"))
    return subprocess.run(
        ["bash", str(SCRIPT), "--check"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


def path_without(tmp_path: Path, hidden: set[str]) -> str:
    """A PATH of one directory holding links to every program on today's PATH but `hidden`."""
    shadow = tmp_path / "bin"
    shadow.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            name = entry.name
            if name in hidden or (shadow / name).exists():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                (shadow / name).symlink_to(entry.path)
    return str(shadow)


@pytest.mark.parametrize(
    ("program", "package"),
    [("iptables", "iptables"), ("podman", "podman"), ("ssh", "openssh-client"), ("runc", "runc")],
)
def test_a_missing_program_is_named_with_its_package(tmp_path: Path, program: str, package: str) -> None:
    result = run_check(path_without(tmp_path, {program}))
    assert result.returncode == 1, result.stdout
    assert f"missing program '{program}'" in result.stdout
    assert f"apt-get install {package}" in result.stdout
    # Nothing else is reported missing, and no container was started.
    assert result.stdout.count("missing program") == 1, result.stdout
    assert "smoke test" not in result.stdout


def test_unknown_option_is_refused() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--install-everything"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "usage:" in result.stdout


def test_the_smoke_test_passes_on_a_prepared_machine() -> None:
    if (
        shutil.which("podman") is None
        or subprocess.run(["podman", "image", "exists", IMAGE], check=False).returncode
    ):
        reason = f"podman or the image {IMAGE} is absent (molecule/host/prepare-host.sh builds it)"
        if os.environ.get("MULTIJHUB_REQUIRE_ALL_TESTS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    result = run_check(os.environ["PATH"])
    assert result.returncode == 0, result.stdout
    assert "smoke test passed" in result.stdout
    # It leaves nothing behind.
    leftovers = subprocess.run(
        ["podman", "ps", "-a", "--filter", "name=multijhub-smoke", "--format", "{{.Names}}"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    assert leftovers.stdout.strip() == ""


def test_the_images_take_their_mirror_from_this_machines_apt_sources() -> None:
    """molecule/host/host-apt.sh, shared by the container and the VM image builds."""
    script = f'. {REPO / "molecule/host/host-apt.sh"}; host_apt_mirror && echo "$host_apt_mirror"'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(("http://", "https://", "file:/")), result.stdout
