"""The runtime_acl module on real users, real homes and real ACLs (ext4 under /tmp, run as root)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.multijhub.cluster.plugins.modules import runtime_acl
from module_harness import AnsibleExitJson, AnsibleFailJson

ROOT = Path(__file__).resolve().parents[3]
USERS = [f"mjhacl{n}" for n in range(1, 5)]
GROUP = "mjhaclsvc"
SUBDIR = ".local/share/jupyter/runtime"
PARENTS = ["", ".local", ".local/share", ".local/share/jupyter"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: real users, chown and ACLs")


@dataclass
class Site:
    root: Path
    gid: int
    users: list[str]

    def home(self, user: str) -> Path:
        return self.root / user

    def runtime(self, user: str) -> Path:
        return self.home(user) / SUBDIR

    def args(self, users: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "users": self.users[:2] if users is None else users,
            "service_group": GROUP,
            "home_root": str(self.root),
            **extra,
        }


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True)


def getfacl(path: Path) -> list[str]:
    out = sh("getfacl", "--absolute-names", "--numeric", "--omit-header", "--no-effective", str(path)).stdout
    return [line for line in out.splitlines() if line]


def has_acl_xattr(path: Path) -> bool:
    try:
        os.getxattr(path, "system.posix_acl_access", follow_symlinks=False)
    except OSError:
        return False
    return True


def tree_state(site: Site) -> dict[str, Any]:
    """Everything the module may touch under the home root: paths, owners, modes and ACLs."""
    state: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(site.root):
        for name in [*dirnames, *filenames, ""]:
            path = Path(dirpath) / name
            info = path.lstat()
            acl = "" if path.is_symlink() else "\n".join(getfacl(path))
            state[str(path)] = (info.st_uid, info.st_gid, info.st_mode, acl)
    return state


def _cleanup_accounts() -> None:
    for user in USERS:
        subprocess.run(["userdel", user], capture_output=True, check=False)
        subprocess.run(["groupdel", user], capture_output=True, check=False)
    subprocess.run(["groupdel", GROUP], capture_output=True, check=False)


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[Path, int]]:
    """Real users mjhacl1..4 (user private groups) with homes under a temp home root, and a service group."""
    _cleanup_accounts()
    root = Path(tempfile.mkdtemp(prefix="multijhub-homes-", dir="/tmp"))
    root.chmod(0o755)
    try:
        sh("groupadd", GROUP)
        for user in USERS:
            sh("useradd", "--no-create-home", "--user-group", "--home-dir", str(root / user), user)
        yield root, grp.getgrnam(GROUP).gr_gid
    finally:
        _cleanup_accounts()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def site(accounts: tuple[Path, int]) -> Iterator[Site]:
    """Fresh 0700 homes for every test."""
    root, gid = accounts
    for user in USERS:
        home = root / user
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        pw = pwd.getpwnam(user)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        home.chmod(0o700)
    yield Site(root, gid, USERS)
    for user in USERS:
        shutil.rmtree(root / user, ignore_errors=True)
    for extra in root.iterdir():
        if extra.name in USERS:
            continue
        if extra.is_dir() and not extra.is_symlink():
            shutil.rmtree(extra, ignore_errors=True)
        else:
            extra.unlink()


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda _self, warning, **_kw: seen.append(warning))
    return seen


def run(args: dict[str, Any], *, check: bool = False, diff: bool = False) -> dict[str, Any]:
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(AnsibleExitJson) as info:
        runtime_acl.main()
    result = info.value.args[0]
    json.dumps(result)
    return result


def fail(args: dict[str, Any]) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(AnsibleFailJson) as info:
        runtime_acl.main()
    return info.value.args[0]


def assert_granted(site: Site, user: str) -> None:
    gid = site.gid
    pw = pwd.getpwnam(user)
    for parent in PARENTS:
        path = site.home(user) / parent
        assert f"group:{gid}:--x" in getfacl(path), path
        assert not any(line.startswith("default:") for line in getfacl(path)), path
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (pw.pw_uid, pw.pw_gid), path
    runtime = site.runtime(user)
    assert getfacl(runtime) == [
        "user::rwx",
        "group::---",
        f"group:{gid}:r-x",
        "mask::r-x",
        "other::---",
        "default:user::rwx",
        "default:group::---",
        f"default:group:{gid}:---",
        "default:mask::---",
        "default:other::---",
    ]
    info = runtime.stat()
    assert (info.st_uid, info.st_gid) == (pw.pw_uid, pw.pw_gid)
    assert info.st_mode & 0o7707 == 0o700


def assert_no_grant(site: Site, user: str) -> None:
    for parent in [*PARENTS, SUBDIR]:
        path = site.home(user) / parent
        if path.is_dir():
            assert not any(f":{site.gid}:" in line for line in getfacl(path)), path


# --- grants --------------------------------------------------------------------------------------------


def test_first_run_creates_and_grants_exactly_the_entries(site: Site) -> None:
    result = run(site.args())
    assert result["changed"] is True
    assert result["service_gid"] == site.gid
    assert result["revoked_homes"] == []
    for user in site.users[:2]:
        assert_granted(site, user)
        info = result["users"][user]
        assert info["listed"] is True and info["changed"] is True and "error" not in info
        assert info["created"] == [str(site.home(user) / p) for p in [*PARENTS[1:], SUBDIR]]
        assert [g["path"] for g in info["granted"]] == [
            str(site.home(user) / p).rstrip("/") for p in [*PARENTS, SUBDIR]
        ]
        assert f"group:{site.gid}:r-x" in info["granted"][-1]["entries"]
        # Created directories are private to the user apart from the grant (0700 plus the ACL mask).
        for parent in PARENTS[1:]:
            assert (site.home(user) / parent).stat().st_mode & 0o777 == 0o710
    # Users not listed get nothing.
    assert_no_grant(site, site.users[2])
    assert not (site.home(site.users[2]) / ".local").exists()


def test_second_run_changes_nothing(site: Site) -> None:
    run(site.args())
    before = tree_state(site)
    again = run(site.args(), diff=True)
    assert again["changed"] is False
    assert again["diff"] == []
    for info in again["users"].values():
        assert info["changed"] is False and info["created"] == info["granted"] == info["revoked"] == []
    assert tree_state(site) == before


def test_existing_directories_keep_their_mode_and_files_are_never_touched(site: Site) -> None:
    user = site.users[0]
    runtime = site.runtime(user)
    pw = pwd.getpwnam(user)
    runtime.mkdir(parents=True)
    for path in [runtime, *runtime.parents]:
        if path == site.home(user):
            break
        os.chown(path, pw.pw_uid, pw.pw_gid)
    (site.home(user) / ".local").chmod(0o755)
    runtime.chmod(0o755)
    token = runtime / "jpserver-4242-open.html"
    token.write_text("token")
    token.chmod(0o644)
    result = run(site.args([user]))
    assert result["users"][user]["created"] == []
    # ~/.local keeps r-x for others; the runtime directory's other bits go (it is the exception).
    assert (site.home(user) / ".local").stat().st_mode & 0o777 == 0o755
    assert "other::---" in getfacl(runtime)
    assert token.stat().st_mode & 0o777 == 0o644
    assert not has_acl_xattr(token)


def test_a_users_own_entries_are_kept(site: Site) -> None:
    user, friend = site.users[0], pwd.getpwnam(site.users[1]).pw_uid
    sh("setfacl", "-m", f"u:{friend}:r-x", str(site.home(user)))
    run(site.args([user]))
    acl = getfacl(site.home(user))
    assert f"user:{friend}:r-x" in acl and f"group:{site.gid}:--x" in acl and "mask::r-x" in acl


# --- check mode and diff -------------------------------------------------------------------------------


def test_check_mode_reports_and_changes_nothing(site: Site) -> None:
    before = tree_state(site)
    result = run(site.args(), check=True, diff=True)
    assert result["changed"] is True
    assert result["users"][site.users[0]]["created"][-1] == str(site.runtime(site.users[0]))
    assert tree_state(site) == before
    # The diff shows what the new directories would get.
    runtime_diff = next(d for d in result["diff"] if d["after_header"] == str(site.runtime(site.users[0])))
    assert runtime_diff["before"] == "" and "(absent)" in runtime_diff["before_header"]
    assert f"group:{site.gid}:r-x\n" in runtime_diff["after"]
    # The real run does what check mode announced.
    real = run(site.args(), diff=True)
    assert real["users"] == result["users"]
    assert real["diff"] == result["diff"]


def test_check_mode_on_a_lost_grant(site: Site) -> None:
    run(site.args())
    runtime = site.runtime(site.users[1])
    sh("setfacl", "-x", f"g:{site.gid}", str(runtime))
    before = tree_state(site)
    result = run(site.args(), check=True)
    assert result["changed"] is True
    assert result["users"][site.users[0]]["changed"] is False
    assert result["users"][site.users[1]]["granted"] == [
        {"path": str(runtime), "entries": [f"group:{site.gid}:r-x", "mask::r-x"]}
    ]
    assert tree_state(site) == before
    assert run(site.args())["changed"] is True
    assert_granted(site, site.users[1])


def test_diff_shows_the_acl_before_and_after(site: Site) -> None:
    user = site.users[0]
    site.runtime(user).mkdir(parents=True)
    result = run(site.args([user]), diff=True)
    home_diff = next(d for d in result["diff"] if d["after_header"] == str(site.home(user)))
    assert home_diff["before"] == "user::rwx\ngroup::---\nother::---\n"
    assert home_diff["after"] == f"user::rwx\ngroup::---\ngroup:{site.gid}:--x\nmask::--x\nother::---\n"
    runtime_diff = next(d for d in result["diff"] if d["after_header"] == str(site.runtime(user)))
    assert runtime_diff["before"] == "user::rwx\ngroup::r-x\nother::r-x\n"  # mkdir with umask 022
    assert runtime_diff["after"] == "\n".join(getfacl(site.runtime(user))) + "\n"
    assert len(result["diff"]) == 5


# --- the mask trap -------------------------------------------------------------------------------------


def test_chmod_by_the_user_is_repaired_and_reported(site: Site) -> None:
    user = site.users[0]
    run(site.args([user]))
    runtime = site.runtime(user)
    sh("runuser", "-u", user, "--", "chmod", "0700", str(runtime))
    assert "mask::---" in getfacl(runtime)
    result = run(site.args([user]), diff=True)
    assert result["changed"] is True
    assert result["users"][user]["granted"] == [{"path": str(runtime), "entries": ["mask::r-x"]}]
    assert [d["after_header"] for d in result["diff"]] == [str(runtime)]
    assert_granted(site, user)
    assert run(site.args([user]))["changed"] is False


def test_chmod_of_the_home_is_repaired_too(site: Site) -> None:
    user = site.users[0]
    run(site.args([user]))
    sh("runuser", "-u", user, "--", "chmod", "0700", str(site.home(user)))
    result = run(site.args([user]))
    assert result["users"][user]["granted"] == [{"path": str(site.home(user)), "entries": ["mask::--x"]}]
    assert_granted(site, user)


# --- revocation ----------------------------------------------------------------------------------------


def test_an_unlisted_user_loses_the_grants(site: Site) -> None:
    first, second = site.users[:2]
    run(site.args([first, second]))
    result = run(site.args([first]), diff=True)
    assert result["changed"] is True
    assert result["revoked_homes"] == [str(site.home(second))]
    info = result["users"][second]
    assert info["listed"] is False
    assert [r["path"] for r in info["revoked"]] == [
        str(site.home(second) / p).rstrip("/") for p in [*PARENTS, SUBDIR]
    ]
    assert info["revoked"][-1]["entries"] == [
        f"group:{site.gid}",
        "mask:",
        f"default:group:{site.gid}",
        "default:mask:",
    ]
    assert result["users"][first]["changed"] is False
    assert_no_grant(site, second)
    assert_granted(site, first)
    # Back to plain 0700 directories; the default ACL that keeps new files private stays.
    assert not has_acl_xattr(site.home(second))
    assert site.home(second).stat().st_mode & 0o777 == 0o700
    assert getfacl(site.runtime(second)) == [
        "user::rwx",
        "group::---",
        "other::---",
        "default:user::rwx",
        "default:group::---",
        "default:other::---",
    ]
    # Nothing left to take away.
    again = run(site.args([first]))
    assert again["changed"] is False and again["revoked_homes"] == []


def test_revoke_unlisted_false_keeps_the_grants(site: Site) -> None:
    run(site.args())
    result = run(site.args([site.users[0]], revoke_unlisted=False))
    assert result["changed"] is False
    assert_granted(site, site.users[1])


def test_revocation_in_check_mode(site: Site) -> None:
    run(site.args())
    before = tree_state(site)
    result = run(site.args([]), check=True)
    assert result["changed"] is True
    assert result["revoked_homes"] == [str(site.home(u)) for u in site.users[:2]]
    assert tree_state(site) == before


def test_revocation_does_not_follow_a_symlink(site: Site, warnings: list[str]) -> None:
    first, second = site.users[:2]
    run(site.args([first, second]))
    # The unlisted user swaps ~/.local for a link to the listed user's ~/.local.
    local = site.home(second) / ".local"
    shutil.rmtree(local)
    local.symlink_to(site.home(first) / ".local")
    result = run(site.args([first]))
    assert result["users"][second]["revoked"] == [
        {"path": str(site.home(second)), "entries": [f"group:{site.gid}", "mask:"]}
    ]
    assert any("symbolic link" in w for w in warnings)
    assert_granted(site, first)


# --- refusals and bad input ----------------------------------------------------------------------------


def test_unknown_user_fails_before_anything_changes(site: Site) -> None:
    run(site.args())
    sh("setfacl", "-x", f"g:{site.gid}", str(site.runtime(site.users[0])))
    before = tree_state(site)
    result = fail(site.args([site.users[0], "mjhacl_nosuch", "mjhacl_nosuch2"]))
    assert result["msg"] == "users: unknown users: 'mjhacl_nosuch', 'mjhacl_nosuch2'"
    assert result["unknown"] == ["mjhacl_nosuch", "mjhacl_nosuch2"]
    assert tree_state(site) == before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"service_group": "mjhacl_nogroup"}, "service_group 'mjhacl_nogroup' does not exist"),
        ({"home_root": "/etc/hostname"}, "home_root /etc/hostname is not a directory"),
        ({"home_root": "relative/home"}, "home_root must be an absolute path"),
        ({"runtime_subdir": "/abs/runtime"}, "runtime_subdir must be a relative path"),
        ({"runtime_subdir": ".local/../../etc"}, "runtime_subdir must be a relative path"),
        ({"runtime_subdir": ""}, "runtime_subdir must be a relative path"),
    ],
)
def test_bad_options_fail_clearly(site: Site, override: dict[str, Any], message: str) -> None:
    before = tree_state(site)
    result = fail({**site.args(), **override})
    assert result["msg"].startswith(message), result["msg"]
    assert tree_state(site) == before


def test_missing_required_option() -> None:
    result = fail({"users": ["root"]})
    assert "service_group" in result["msg"]


def test_a_symlinked_local_is_refused(site: Site, warnings: list[str]) -> None:
    first, second = site.users[:2]
    elsewhere = site.root / "elsewhere"
    (elsewhere / "share" / "jupyter").mkdir(parents=True)
    (site.home(first) / ".local").symlink_to(elsewhere)
    before = tree_state(site)
    result = run(site.args([first, second]))
    info = result["users"][first]
    assert "symbolic link" in info["error"] and str(site.home(first) / ".local") in info["error"]
    assert info["changed"] is False and info["granted"] == [] and info["created"] == []
    assert any(first in w and "symbolic link" in w for w in warnings)
    # Nothing at the link's target, nothing on the refused user's home either.
    for path in [elsewhere, elsewhere / "share", elsewhere / "share" / "jupyter", site.home(first)]:
        assert tree_state(site)[str(path)] == before[str(path)], path
    assert not (elsewhere / "share" / "jupyter" / "runtime").exists()
    # The other user is handled.
    assert_granted(site, second)
    assert result["changed"] is True


def test_a_symlinked_runtime_dir_is_refused(site: Site, warnings: list[str]) -> None:
    user = site.users[0]
    target = site.root / "target"
    target.mkdir()
    site.runtime(user).parent.mkdir(parents=True)
    site.runtime(user).symlink_to(target)
    result = run(site.args([user]))
    assert "symbolic link" in result["users"][user]["error"]
    assert not has_acl_xattr(target)
    assert warnings


def test_a_missing_home_is_reported(site: Site, warnings: list[str]) -> None:
    first, second = site.users[:2]
    shutil.rmtree(site.home(first))
    result = run(site.args([first, second]))
    assert "does not exist" in result["users"][first]["error"]
    assert not site.home(first).exists()
    assert_granted(site, second)
    assert warnings


def test_several_runs_with_other_subdir(site: Site) -> None:
    user = site.users[0]
    result = run(site.args([user], runtime_subdir="jupyter-runtime/"))
    assert result["users"][user]["runtime_dir"] == str(site.home(user) / "jupyter-runtime")
    assert f"group:{site.gid}:r-x" in getfacl(site.home(user) / "jupyter-runtime")
    assert run(site.args([user], runtime_subdir="jupyter-runtime"))["changed"] is False


# --- through ansible itself (AnsiballZ) ----------------------------------------------------------------


def ansible(site: Site, args: dict[str, Any], *extra: str) -> dict[str, Any]:
    env = dict(
        os.environ,
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    proc = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "ansible"),
            "localhost",
            "-m",
            "multijhub.cluster.runtime_acl",
            "-a",
            json.dumps(args),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_through_ansible(site: Site) -> None:
    checked = ansible(site, site.args(), "--check")
    assert checked["changed"] is True
    assert not (site.home(site.users[0]) / ".local").exists()
    first = ansible(site, site.args(), "--diff")
    assert first["changed"] is True
    assert set(first["users"]) == set(site.users[:2])
    for user in site.users[:2]:
        assert_granted(site, user)
    second = ansible(site, site.args())
    assert second["changed"] is False
