"""The pure ACL logic of runtime_acl, checked against real ACLs (setfacl/getfacl on ext4)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from multijhub.core.acl import (
    AclError,
    acl_from_mode,
    changes,
    format_acl,
    grant,
    parse_getfacl,
    parse_perms,
    parse_xattr,
    perms_text,
    revoke,
    runtime_entries,
    setfacl_args,
    to_xattr,
    traverse_entries,
)

GID = 4242  # no group needs to exist for numeric entries
OTHER_UID = 4243


@pytest.fixture
def directory() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="multijhub-acl-", dir="/tmp"))
    path = base / "d"
    path.mkdir()
    path.chmod(0o700)
    yield path
    subprocess.run(["rm", "-rf", str(base)], check=True)


def getfacl(path: Path) -> str:
    return subprocess.run(
        ["getfacl", "--absolute-names", "--numeric", "--omit-header", "--no-effective", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def real_acl(path: Path) -> tuple[dict, dict]:
    """The ACL through the xattrs (what the module reads)."""
    try:
        access = parse_xattr(os.getxattr(path, "system.posix_acl_access"))
    except OSError:
        access = acl_from_mode(path.stat().st_mode)
    try:
        default = parse_xattr(os.getxattr(path, "system.posix_acl_default"))
    except OSError:
        default = {}
    return access, default


def setfacl(path: Path, *args: str) -> None:
    subprocess.run(["setfacl", *args, str(path)], check=True)


# --- permissions, parsing, formatting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bits"), [("---", 0), ("--x", 1), ("r-x", 5), ("rwx", 7), ("rx", 5), ("-", 0)]
)
def test_perms(text: str, bits: int) -> None:
    assert parse_perms(text) == bits
    assert parse_perms(perms_text(bits)) == bits


def test_bad_perms() -> None:
    with pytest.raises(AclError):
        parse_perms("rwz")


def test_parse_getfacl_with_headers_effective_rights_and_escaped_names() -> None:
    text = (
        "# file: /home/a\\040b\n# owner: 1001\n# group: 1001\n# flags: -s-\n"
        "user::rwx\ngroup::r-x\t\t\t#effective:--x\ngroup:4242:--x\nmask::--x\nother::---\n\n"
        "# file: /home/c\nuser::rwx\ngroup::---\nother::---\n"
        "default:user::rwx\ndefault:group::---\ndefault:group:4242:---\ndefault:mask::---\ndefault:other::---\n"
    )
    parsed = parse_getfacl(text)
    assert set(parsed) == {"/home/a b", "/home/c"}
    access, default = parsed["/home/a b"]
    assert access == {
        ("user", None): 7,
        ("group", None): 5,
        ("group", 4242): 1,
        ("mask", None): 1,
        ("other", None): 0,
    }
    assert default == {}
    assert parsed["/home/c"][1][("group", 4242)] == 0


@pytest.mark.parametrize(
    "text", ["user:alice:rwx\n", "group::rwz\n", "mask:12:rwx\n", "something\n", "default:user::r\n"]
)
def test_parse_getfacl_refuses_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(AclError):
        parse_getfacl(text)


@pytest.mark.parametrize(
    "data", [b"", b"\x02\x00\x00", b"\x01\x00\x00\x00", b"\x02\x00\x00\x00\x40\x00\x07\x00\xff\xff\xff\xff"]
)
def test_parse_xattr_refuses_garbage(data: bytes) -> None:
    with pytest.raises(AclError):
        parse_xattr(data)


def test_xattr_and_getfacl_agree_on_a_real_acl(directory: Path) -> None:
    setfacl(
        directory,
        "-m",
        f"u:{OTHER_UID}:r--,g:{GID}:r-x,d:u::rwx,d:g::---,d:o::---,d:g:{GID}:---",
    )
    access, default = real_acl(directory)
    assert parse_getfacl(getfacl(directory)) == {"": (access, default)}
    assert format_acl(access, default) == getfacl(directory).rstrip("\n") + "\n"
    # The kernel's binary form round-trips.
    assert to_xattr(access) == os.getxattr(directory, "system.posix_acl_access")
    assert to_xattr(default) == os.getxattr(directory, "system.posix_acl_default")


def test_acl_from_mode(directory: Path) -> None:
    directory.chmod(0o751)
    assert real_acl(directory) == (acl_from_mode(0o40751), {})
    assert format_acl(acl_from_mode(0o751), {}) == "user::rwx\ngroup::r-x\nother::--x\n"


# --- the wanted entries, grant and revoke -----------------------------------------------------------------


def test_wanted_entries() -> None:
    assert traverse_entries(GID) == {("group", GID): 1}
    access, default = runtime_entries(GID)
    assert format_acl(access, default) == (
        f"user::rwx\ngroup::---\ngroup:{GID}:r-x\nother::---\n"
        f"default:user::rwx\ndefault:group::---\ndefault:group:{GID}:---\ndefault:other::---\n"
    )


def test_grant_on_a_fresh_directory_computes_the_mask_like_setfacl(directory: Path) -> None:
    before = real_acl(directory)
    after = (grant(before[0], traverse_entries(GID)), before[1])
    setfacl(directory, "-m", f"g:{GID}:--x")  # what setfacl itself computes
    assert real_acl(directory) == after
    assert after[0][("mask", None)] == 1


def test_grant_repairs_the_mask_trap_and_keeps_a_users_narrowed_mask() -> None:
    wanted, _ = runtime_entries(GID)
    trapped = {
        ("user", None): 7,
        ("group", None): 0,
        ("group", GID): 5,
        ("mask", None): 0,
        ("other", None): 0,
    }
    assert grant(trapped, wanted)[("mask", None)] == 5
    # A home whose owning group had r-x, narrowed by the user to --x: stays --x (not widened to r-x).
    home = {("user", None): 7, ("group", None): 5, ("group", GID): 1, ("mask", None): 1, ("other", None): 0}
    assert grant(home, traverse_entries(GID)) == home
    # Without a mask yet: the union of the group class.
    assert grant(acl_from_mode(0o750), traverse_entries(GID))[("mask", None)] == 5


def test_grant_keeps_other_entries() -> None:
    current = {
        ("user", None): 7,
        ("user", OTHER_UID): 4,
        ("group", None): 0,
        ("mask", None): 4,
        ("other", None): 0,
    }
    after = grant(current, traverse_entries(GID))
    assert after[("user", OTHER_UID)] == 4
    assert after[("group", GID)] == 1
    assert after[("mask", None)] == 5


def test_grant_of_what_is_there_changes_nothing() -> None:
    access, default = runtime_entries(GID)
    once = grant(acl_from_mode(0o700), access), grant({}, default)
    assert grant(once[0], access) == once[0]
    assert grant(once[1], default) == once[1]
    assert setfacl_args(once, once) == []


def test_revoke_restores_the_mode_and_keeps_effective_rights() -> None:
    granted = grant(acl_from_mode(0o700), traverse_entries(GID))
    assert revoke(granted, GID) == acl_from_mode(0o700)
    # The user narrowed the mask: the owning group keeps only what the mask let through.
    narrowed = {
        ("user", None): 7,
        ("group", None): 5,
        ("group", GID): 1,
        ("mask", None): 1,
        ("other", None): 0,
    }
    assert revoke(narrowed, GID) == {("user", None): 7, ("group", None): 1, ("other", None): 0}
    # Another named entry stays, and so does the mask.
    shared = dict(narrowed)
    shared[("user", OTHER_UID)] = 4
    assert revoke(shared, GID) == {key: value for key, value in shared.items() if key != ("group", GID)}


def test_changes_refuses_an_acl_without_base_entries_or_mask() -> None:
    with pytest.raises(AclError):
        changes({}, {("user", None): 7}, default=False)
    with pytest.raises(AclError):
        changes(
            {}, {("user", None): 7, ("group", None): 0, ("other", None): 0, ("group", GID): 1}, default=False
        )


# --- setfacl_args applied to real directories ---------------------------------------------------------------


def apply(directory: Path, after: tuple[dict, dict]) -> list[str]:
    before = real_acl(directory)
    args = setfacl_args(before, after)
    if args:
        setfacl(directory, *args)
    assert real_acl(directory) == after, (args, getfacl(directory))
    return args


def test_setfacl_args_grant_the_runtime_directory_for_real(directory: Path) -> None:
    access, default = runtime_entries(GID)
    before = real_acl(directory)
    args = apply(directory, (grant(before[0], access), grant(before[1], default)))
    assert args[0] == "-n"
    assert "-x" not in args
    assert f"group:{GID}:r-x" in args[-1] and "mask::r-x" in args[-1]
    assert f"default:group:{GID}:---" in args[-1]
    assert getfacl(directory) == (
        f"user::rwx\ngroup::---\ngroup:{GID}:r-x\nmask::r-x\nother::---\n"
        f"default:user::rwx\ndefault:group::---\ndefault:group:{GID}:---\ndefault:mask::---\ndefault:other::---\n\n"
    )
    # The mask trap: chmod 0700 hides the grant; only the mask is set back.
    directory.chmod(0o700)
    current = real_acl(directory)
    assert current[0][("mask", None)] == 0
    repaired = (grant(current[0], access), grant(current[1], default))
    assert apply(directory, repaired) == ["-n", "-m", "mask::r-x"]


def test_setfacl_args_revoke_for_real(directory: Path) -> None:
    access, default = runtime_entries(GID)
    before = real_acl(directory)
    apply(directory, (grant(before[0], access), grant(before[1], default)))
    current = real_acl(directory)
    args = apply(directory, (revoke(current[0], GID), revoke(current[1], GID)))
    assert args == ["-n", "-x", f"group:{GID},mask:,default:group:{GID},default:mask:"]
    # Back to a plain 0700 directory, with the default ACL that keeps new files private.
    assert (directory.stat().st_mode & 0o777) == 0o700
    assert getfacl(directory) == (
        "user::rwx\ngroup::---\nother::---\ndefault:user::rwx\ndefault:group::---\ndefault:other::---\n\n"
    )


def test_setfacl_args_remove_a_whole_default_acl(directory: Path) -> None:
    setfacl(directory, "-d", "-m", "u::rwx,g::---,o::---")
    before = real_acl(directory)
    assert apply(directory, (before[0], {})) == ["-n", "-k"]
