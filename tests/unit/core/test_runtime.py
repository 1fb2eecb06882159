from __future__ import annotations

import builtins
import errno
import os
import pwd
from pathlib import Path

import pytest
from multijhub.core.runtime import (
    MAX_SERVER_FILES,
    RuntimeDirError,
    RuntimeFile,
    list_runtime_files,
    list_runtime_files_as,
    parse_runtime_name,
    remove_runtime_files,
    runtime_dir_for,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("jpserver-1.json", ("jpserver", 1)),
        ("jpserver-4242.json", ("jpserver", 4242)),
        ("nbserver-42.json", ("nbserver", 42)),
        ("jpserver-4242-open.html", None),
        ("nbserver-4242-open.html", None),
        ("jpserver-.json", None),
        ("jpserver-0.json", None),
        ("jpserver-0123.json", None),
        ("jpserver-1.json.bak", None),
        ("jpserver-1a.json", None),
        ("jpserver-\u0661.json", None),  # an Arabic-Indic digit
        ("kernel-1234.json", None),
        ("jupyter_cookie_secret", None),
        ("xjpserver-1.json", None),
        ("jpserver-1.json\n", None),
        ("JPSERVER-1.json", None),
        ("../jpserver-1.json", None),
    ],
)
def test_parse_runtime_name(name: str, expected: tuple[str, int] | None) -> None:
    assert parse_runtime_name(name) == expected


def test_runtime_dir_for() -> None:
    assert runtime_dir_for("/home/juser1") == "/home/juser1/.local/share/jupyter/runtime"
    assert runtime_dir_for("/home/u", "{home}/rt") == "/home/u/rt"
    assert runtime_dir_for("/home/u", "/run/jupyter/{user}", user="u") == "/run/jupyter/u"
    assert runtime_dir_for("/home/u", ".jupyter/runtime") == "/home/u/.jupyter/runtime"
    for bad in ("{home.__class__}", "{user}", "{0}", "/x/{home", ""):
        with pytest.raises(ValueError):
            runtime_dir_for("/home/u", bad)


def test_list_runtime_files_names_only(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("jpserver-10.json", "nbserver-20.json", "jpserver-10-open.html", "jupyter_cookie_secret"):
        (shared_dir / name).write_text("{}")
    os.utime(shared_dir / "jpserver-10.json", (1000.0, 1000.0))
    (shared_dir / "jpserver-30.json").symlink_to("/etc/passwd")
    (shared_dir / "jpserver-40.json").mkdir()

    def no_open(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a runtime file was opened")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr(os, "open", no_open)
    files = list_runtime_files(str(shared_dir))
    monkeypatch.undo()
    assert [f.name for f in files] == ["jpserver-10.json", "nbserver-20.json"]
    assert files[0] == RuntimeFile("jpserver-10.json", 10, "jpserver", 1000.0)
    assert files[1].kind == "nbserver" and files[1].pid == 20


def test_missing_dir_is_empty(shared_dir: Path) -> None:
    assert list_runtime_files(str(shared_dir / "nope")) == []


def test_not_a_directory(shared_dir: Path) -> None:
    (shared_dir / "f").write_text("")
    with pytest.raises(RuntimeDirError, match="not a directory"):
        list_runtime_files(str(shared_dir / "f"))


def test_list_as_user(shared_dir: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    readable = shared_dir / "readable"
    readable.mkdir()
    (readable / "jpserver-7.json").write_text("{}")
    assert list_runtime_files_as(str(readable), nobody.pw_uid, nobody.pw_gid) == list_runtime_files(
        str(readable)
    )
    private = shared_dir / "private"
    private.mkdir(mode=0o700)
    (private / "jpserver-8.json").write_text("{}")
    assert [f.name for f in list_runtime_files(str(private))] == ["jpserver-8.json"]  # root may
    with pytest.raises(RuntimeDirError, match="permission denied"):
        list_runtime_files_as(str(private), nobody.pw_uid, nobody.pw_gid)


def test_remove_runtime_files(shared_dir: Path) -> None:
    home = shared_dir / "home"
    rt = home / ".local/share/jupyter/runtime"
    rt.mkdir(parents=True)
    for name in ("jpserver-1.json", "jpserver-2.json", "jpserver-2-open.html", "nbserver-3.json"):
        (rt / name).write_text("{}")
    removed, absent = remove_runtime_files(
        str(rt), ["jpserver-1.json", "nbserver-3.json", "jpserver-9.json"], trusted=str(home), dry_run=True
    )
    assert (removed, absent) == (["jpserver-1.json", "nbserver-3.json"], ["jpserver-9.json"])
    assert (rt / "jpserver-1.json").exists()
    removed, absent = remove_runtime_files(str(rt), ["jpserver-1.json", "nbserver-3.json"], trusted=str(home))
    assert removed == ["jpserver-1.json", "nbserver-3.json"]
    assert sorted(p.name for p in rt.iterdir()) == ["jpserver-2-open.html", "jpserver-2.json"]
    assert remove_runtime_files(str(rt), ["jpserver-1.json"], trusted=str(home)) == ([], ["jpserver-1.json"])


@pytest.mark.parametrize(
    "name", ["../jpserver-1.json", "jpserver-2-open.html", "jupyter_cookie_secret", "/etc/passwd", "", 5]
)
def test_remove_refuses_other_names(shared_dir: Path, name: object) -> None:
    (shared_dir / "jpserver-2-open.html").write_text("x")
    with pytest.raises(ValueError, match="not a Jupyter server runtime file name"):
        remove_runtime_files(str(shared_dir), [name], trusted=str(shared_dir))  # type: ignore[list-item]
    assert (shared_dir / "jpserver-2-open.html").exists()


def test_remove_does_not_follow_a_symlinked_directory(shared_dir: Path) -> None:
    home = shared_dir / "home"
    home.mkdir()
    victim = shared_dir / "victim"
    (victim / "share/jupyter/runtime").mkdir(parents=True)
    (victim / "share/jupyter/runtime/jpserver-1.json").write_text("{}")
    (home / ".local").symlink_to(victim)  # the user swapped a directory for a symlink
    with pytest.raises(RuntimeDirError):
        remove_runtime_files(
            str(home / ".local/share/jupyter/runtime"), ["jpserver-1.json"], trusted=str(home)
        )
    assert (victim / "share/jupyter/runtime/jpserver-1.json").exists()


def test_remove_skips_a_symlink_file(shared_dir: Path) -> None:
    target = shared_dir / "target"
    target.write_text("keep")
    (shared_dir / "jpserver-5.json").symlink_to(target)
    assert remove_runtime_files(str(shared_dir), ["jpserver-5.json"], trusted=str(shared_dir)) == (
        [],
        ["jpserver-5.json"],
    )
    assert target.read_text() == "keep"


def test_a_flooded_runtime_directory_is_not_examined(shared_dir: Path) -> None:
    """Any user can fill their runtime directory: the listing stops at a bound, never costs seconds."""
    for pid in range(1, MAX_SERVER_FILES + 2):
        (shared_dir / f"jpserver-{pid}.json").write_text("")
    with pytest.raises(RuntimeDirError, match="too many files") as err:
        list_runtime_files(str(shared_dir))
    assert err.value.errno == errno.E2BIG
    for pid in range(2, MAX_SERVER_FILES + 2):
        (shared_dir / f"jpserver-{pid}.json").unlink()
    assert [f.pid for f in list_runtime_files(str(shared_dir))] == [1]
