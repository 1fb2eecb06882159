"""Jupyter runtime files: names only, the files are never opened."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass

__all__ = [
    "RuntimeDirError",
    "RuntimeFile",
    "list_runtime_files",
    "list_runtime_files_as",
    "parse_runtime_name",
    "remove_runtime_files",
    "runtime_dir_for",
]

DEFAULT_RUNTIME_SUBDIR = ".local/share/jupyter/runtime"
KINDS = ("jpserver", "nbserver")

_NAME = re.compile(r"(jpserver|nbserver)-([1-9][0-9]{0,9})\.json")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


# A user's runtime directory holds a few files. A user who fills it (any user can) must not make
# every probe about them cost seconds of CPU and megabytes of answer: past these bounds the
# directory counts as one that cannot be listed (the answer then rests on the hub and the
# user's processes, as for a broken grant).
MAX_SERVER_FILES = 256
MAX_ENTRIES = 10000


class RuntimeDirError(OSError):
    """The runtime directory exists but cannot be listed (or changed)."""


@dataclass(frozen=True)
class RuntimeFile:
    """One ``jpserver-<pid>.json`` / ``nbserver-<pid>.json`` name with its mtime."""

    name: str
    pid: int
    kind: str  # "jpserver" | "nbserver"
    mtime: float


def runtime_dir_for(home: str, template: str | None = None, *, user: str | None = None) -> str:
    """The runtime directory of a user whose home is ``home``.

    Default ``{home}/.local/share/jupyter/runtime``. A template may use ``{home}`` and
    ``{user}`` (nothing else); a relative result is taken relative to the home.
    """
    if template is None:
        return os.path.join(home, DEFAULT_RUNTIME_SUBDIR)
    values = {"home": home, "user": user}

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        value = values.get(key)
        if value is None:
            raise ValueError(
                f"runtime template {template!r}: unknown or unset placeholder {{{key}}}"
                " (only {home} and {user} are allowed)"
            )
        return value

    path = _PLACEHOLDER.sub(substitute, template)
    if "{" in path or "}" in path:
        raise ValueError(f"runtime template {template!r} has an unbalanced brace")
    if not path:
        raise ValueError("runtime template is empty")
    return os.path.normpath(os.path.join(home, path))


def parse_runtime_name(name: str) -> tuple[str, int] | None:
    """``("jpserver", 1234)`` for ``jpserver-1234.json``; None for any other name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def list_runtime_files(path: str) -> list[RuntimeFile]:
    """The server files in ``path`` sorted by name; [] when the directory is missing.

    Only regular files count (a symlink named like a server file is ignored).
    """
    found: list[RuntimeFile] = []
    try:
        with os.scandir(path) as entries:
            for seen, entry in enumerate(entries, 1):
                if seen > MAX_ENTRIES or len(found) >= MAX_SERVER_FILES:
                    raise RuntimeDirError(
                        errno.E2BIG,
                        f"too many files in the runtime directory {path} (over {MAX_SERVER_FILES} server"
                        f" files or {MAX_ENTRIES} entries): not examined",
                    )
                parsed = parse_runtime_name(entry.name)
                if parsed is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed since the listing
                if not stat.S_ISREG(st.st_mode):
                    continue
                found.append(RuntimeFile(entry.name, parsed[1], parsed[0], st.st_mtime))
    except FileNotFoundError:
        return []
    except PermissionError as exc:
        raise RuntimeDirError(
            exc.errno, f"cannot list the runtime directory {path}: permission denied"
        ) from exc
    except NotADirectoryError as exc:
        raise RuntimeDirError(exc.errno, f"runtime path {path} is not a directory") from exc
    return sorted(found, key=lambda f: f.name)


def list_runtime_files_as(path: str, uid: int, gid: int) -> list[RuntimeFile]:
    """list_runtime_files run in a child process with the given uid/gid (root only).

    Root on an NFS client is squashed and cannot enter a user's 0700 home; the user can.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 0
        try:
            os.close(read_fd)
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            try:
                payload = {"files": [f.__dict__ for f in list_runtime_files(path)]}
            except OSError as exc:
                payload = {"error": exc.strerror or str(exc), "errno": exc.errno or 0}
            with os.fdopen(write_fd, "w") as out:
                json.dump(payload, out)
        except BaseException:  # the child must never return into the caller
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe_in:
        data = pipe_in.read()
    _pid, status = os.waitpid(pid, 0)
    if os.WEXITSTATUS(status) != 0 or not data:
        raise RuntimeDirError(0, f"cannot list the runtime directory {path} as uid {uid}")
    payload = json.loads(data)
    if "error" in payload:
        raise RuntimeDirError(payload["errno"], payload["error"])
    return [RuntimeFile(**item) for item in payload["files"]]


def _open_dir_nofollow(path: str, trusted: str) -> int:
    """Open ``path`` without following symlinks below the trusted prefix."""
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
    trusted_real = os.path.realpath(trusted)
    rel = os.path.relpath(os.path.normpath(path), trusted)
    if rel in {".", os.pardir} or rel.startswith(os.pardir + os.sep):
        return os.open(os.path.realpath(path), os.O_RDONLY | os.O_DIRECTORY)
    fd = os.open(trusted_real, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in rel.split(os.sep):
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_runtime_files(
    path: str, names: list[str], *, trusted: str, dry_run: bool = False
) -> tuple[list[str], list[str]]:
    """Remove the named server files from ``path``; return (removed, absent).

    Every name must be a ``jpserver-/nbserver-<pid>.json`` name (ValueError otherwise).
    Directories below ``trusted`` (the user's home) are opened without following symlinks,
    and only regular files are removed. With ``dry_run`` nothing is removed.
    """
    for name in names:
        if not isinstance(name, str) or parse_runtime_name(name) is None:
            raise ValueError(f"not a Jupyter server runtime file name: {name!r}")
    try:
        fd = _open_dir_nofollow(path, trusted)
    except FileNotFoundError:
        return [], sorted(set(names))
    except OSError as exc:
        raise RuntimeDirError(exc.errno, f"cannot open the runtime directory {path}: {exc.strerror}") from exc
    removed: list[str] = []
    absent: list[str] = []
    try:
        for name in sorted(set(names)):
            try:
                st = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                absent.append(name)
                continue
            if not stat.S_ISREG(st.st_mode):
                absent.append(name)
                continue
            if not dry_run:
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    absent.append(name)
                    continue
            removed.append(name)
    except OSError as exc:
        raise RuntimeDirError(exc.errno, f"cannot remove files in {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return removed, absent
