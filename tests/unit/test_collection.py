"""The repository is the collection multijhub.cluster: it builds, installs, and its playbooks
resolve by FQCN both from the checkout and from the installed collection."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("collection")
    build = run(
        [str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(work)], work
    )
    assert build.returncode == 0, build.stdout
    tarball = next(work.glob("multijhub-cluster-*.tar.gz"))
    target = work / "collections"
    install = run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--force",
            "--no-deps",
            "-p",
            str(target),
            str(tarball),
        ],
        work,
    )
    assert install.returncode == 0, install.stdout
    return target


def test_the_build_leaves_out_the_development_files(installed: Path) -> None:
    root = installed / "ansible_collections" / "multijhub" / "cluster"
    for wanted in ("MANIFEST.json", "playbooks/site.yml", "roles/jupyterhub", "plugins/modules"):
        assert (root / wanted).exists(), wanted
    for unwanted in (".venv", ".cache", "collections", ".git", ".ansible"):
        assert not (root / unwanted).exists(), unwanted


@pytest.mark.parametrize(
    "playbook", ["multijhub.cluster.site", "multijhub.cluster.where", "multijhub.cluster.drain"]
)
def test_installed_playbooks_run_by_their_fqcn(installed: Path, tmp_path: Path, playbook: str) -> None:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text((REPO / "inventory.example.ini").read_text())
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_CONFIG=str(tmp_path / "none.cfg"))
    result = run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), playbook, "--syntax-check"], tmp_path, env
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("playbook", ["site.yml", "where.yml", "drain.yml"])
def test_checkout_playbooks_run_as_written(tmp_path: Path, playbook: str) -> None:
    env = dict(os.environ)
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)  # ansible.cfg of the checkout is what must work
    result = run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(REPO / "inventory.example.ini"),
            playbook,
            "--syntax-check",
        ],
        REPO,
        env,
    )
    assert result.returncode == 0, result.stdout


def test_the_installed_collection_builds_the_same_wheel(installed: Path, tmp_path: Path) -> None:
    """The lookup multijhub.cluster.wheel works from ansible-galaxy's install as from the checkout."""
    root = installed / "ansible_collections" / "multijhub" / "cluster"
    for wanted in ("pyproject.toml", "src/multijhub/frontdoor/app.py", "src/multijhub/hub/spawners.py"):
        assert (root / wanted).is_file(), wanted
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(installed),
        ANSIBLE_CONFIG=str(tmp_path / "none.cfg"),
        MULTIJHUB_WHEEL_CACHE=str(tmp_path / "cache"),
    )
    query = "msg={{ query('multijhub.cluster.wheel') | first | to_json }}"
    result = run(
        [str(BIN / "ansible"), "localhost", "-m", "ansible.builtin.debug", "-a", query], tmp_path, env
    )
    assert result.returncode == 0, result.stdout
    from_install = result.stdout
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "collections")
    result = run(
        [str(BIN / "ansible"), "localhost", "-m", "ansible.builtin.debug", "-a", query], tmp_path, env
    )
    assert result.returncode == 0, result.stdout
    version = re.search(r"multijhub-(0\.1\.0\+s[0-9a-f]{12})-py3-none-any\.whl", from_install)
    assert version, from_install
    assert version.group(0) in result.stdout  # the same sources: the same version
    assert str(tmp_path / "cache") in from_install


def test_the_wheel_and_the_collection_share_one_version() -> None:
    galaxy = re.search(r"^version: (\S+)$", (REPO / "galaxy.yml").read_text(), re.M)
    project = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert galaxy and project and galaxy.group(1) == project.group(1)
