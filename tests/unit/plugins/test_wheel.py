"""The lookup multijhub.cluster.wheel: one reproducible wheel of the core, the front door and the
hub extensions, versioned by its sources; installed in a clean virtualenv its commands work."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from ansible.errors import AnsibleError
from ansible_collections.multijhub.cluster.plugins.lookup import wheel as lookup

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return lookup.find_or_build(ROOT, tmp_path_factory.mktemp("cache"))


def test_the_wheel_holds_the_three_packages_and_their_entry_points(built: dict[str, str]) -> None:
    path = Path(built["path"])
    assert built["filename"] == path.name and built["filename"].startswith("multijhub-0.1.0+s")
    assert built["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
        ep = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = whl.read(ep).decode()
    for wanted in (
        "multijhub/core/probe.py",  # plugins/module_utils, the single source of the core
        "multijhub/core/placement.py",
        "multijhub/frontdoor/app.py",
        "multijhub/frontdoor/templates/login.html",
        "multijhub/frontdoor/static/style.css",
        "multijhub/hub/authenticator.py",
        "multijhub/hub/proof.py",
    ):
        assert wanted in names, wanted
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    for line in (
        "multijhub-probe = multijhub.core.probe:main",
        "multijhub-frontdoor-check-config = multijhub.frontdoor.config:main",
        "multijhub-frontdoor-drain = multijhub.frontdoor.drain:main",
        "multijhub-frontdoor = multijhub.hub.authenticator:FrontDoorAuthenticator",
        "multijhub-systemd = multijhub.hub.spawners:RangeSystemdSpawner",
        "multijhub-oom-first = multijhub.hub.kernels:OomFirstProvisioner",
    ):
        assert line in entry_points, line


def test_the_same_sources_give_the_same_bytes_found_again_without_a_build(
    built: dict[str, str], tmp_path: Path
) -> None:
    again = lookup.find_or_build(ROOT, Path(built["path"]).parents[1])
    assert again == built  # from the cache
    fresh = lookup.find_or_build(ROOT, tmp_path / "other-cache")
    assert (fresh["filename"], fresh["sha256"]) == (built["filename"], built["sha256"])  # rebuilt: same bytes


def test_a_changed_source_is_a_new_version(built: dict[str, str], tmp_path: Path) -> None:
    tree = _copy_sources(tmp_path)
    with (tree / "src/multijhub/hub/proof.py").open("a") as fh:
        fh.write("# changed\n")
    changed = lookup.find_or_build(tree, tmp_path / "cache")
    assert changed["version"] != built["version"] and changed["sha256"] != built["sha256"]


def test_in_a_clean_virtualenv_the_commands_work(built: dict[str, str], tmp_path: Path) -> None:
    """As the redirector role installs it: the front door's pinned requirements, then the wheel."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [str(BIN / "pip"), "--python", str(venv / "bin/python"), "install", "-q"]
    subprocess.run([*pip, "-r", str(ROOT / "roles/redirector/files/requirements.txt")], check=True)
    url = f"multijhub @ file://{built['path']}#sha256={built['sha256']}"
    subprocess.run([*pip, "--no-index", url], check=True)
    for command in ("multijhub-probe", "multijhub-frontdoor-check-config", "multijhub-frontdoor-drain"):
        out = subprocess.run(
            [str(venv / "bin" / command), "--help"], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, (command, out.stdout + out.stderr)
        assert "usage" in out.stdout.lower() or "probe [--node" in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("store = 3\n")
    out = subprocess.run(
        [str(venv / "bin/multijhub-frontdoor-check-config"), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1 and str(bad) in out.stderr
    code = (
        "import json, importlib.metadata as m; print(json.dumps(sorted("
        "[e.group, e.name] for e in m.distribution('multijhub').entry_points)))"
    )
    found = json.loads(
        subprocess.run([str(venv / "bin/python"), "-c", code], capture_output=True, check=True).stdout
    )
    assert ["jupyterhub.authenticators", "multijhub-frontdoor"] in found
    assert ["jupyterhub.spawners", "multijhub-systemd"] in found
    assert ["jupyter_client.kernel_provisioners", "multijhub-oom-first"] in found


def test_a_pinned_hash_that_does_not_match_installs_nothing(built: dict[str, str], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    wrong = "0" * 64
    out = subprocess.run(
        [str(BIN / "pip"), "--python", str(venv / "bin/python"), "install", "--no-index",
         f"multijhub @ file://{built['path']}#sha256={wrong}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode != 0 and "sha256" in (out.stdout + out.stderr).lower()
    assert not list(venv.glob("lib/*/site-packages/multijhub"))


def _copy_sources(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name in lookup.SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / name)
    return tree


def test_a_truncated_wheel_in_the_cache_is_built_again(built: dict[str, str], tmp_path: Path) -> None:
    """A partial copy (a full disk, a crash) under the final name is never handed to pip."""
    cache = tmp_path / "cache"
    shutil.copytree(Path(built["path"]).parents[1], cache)
    cached = cache / Path(built["path"]).parent.name / built["filename"]
    cached.write_bytes(cached.read_bytes()[:1000])
    stray = cached.parent / "multijhub-0.0.9-py3-none-any.whl"  # another wheel in the directory
    shutil.copy2(built["path"], stray)
    again = lookup.find_or_build(ROOT, cache)
    assert again["sha256"] == built["sha256"] and again["filename"] == built["filename"]
    assert lookup.usable(Path(again["path"]))


def test_a_symlink_in_the_sources_is_refused(tmp_path: Path) -> None:
    """rglob skipped a symlinked directory: the wheel lost the front door's templates silently."""
    tree = _copy_sources(tmp_path)
    templates = tree / "src/multijhub/frontdoor/templates"
    templates.rename(tmp_path / "real-templates")
    templates.symlink_to(tmp_path / "real-templates")
    with pytest.raises(AnsibleError, match="templates is a symbolic link"):
        lookup.find_or_build(tree, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.whl"))


def test_editor_leftovers_change_neither_the_wheel_nor_its_version(
    built: dict[str, str], tmp_path: Path
) -> None:
    tree = _copy_sources(tmp_path)
    (tree / "src/multijhub/frontdoor/static/style.css~").write_text("old")
    assert lookup.find_or_build(tree, tmp_path / "cache")["filename"] == built["filename"]


def test_a_cache_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AnsibleError, match=r"cannot use the wheel cache .*MULTIJHUB_WHEEL_CACHE"):
        lookup.find_or_build(ROOT, blocker / "cache")
