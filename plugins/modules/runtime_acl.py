#!/usr/bin/python
# Copyright (c) multijhub developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: runtime_acl
short_description: Let a service group list the users' Jupyter runtime directories, and nothing more
version_added: "0.1.0"
description:
  - For each user in O(users), creates the missing directories from the home down to the Jupyter
    runtime directory (owned by the user and the user's primary group, mode C(0700)) and sets the
    POSIX ACL entries that let the members of O(service_group) list the runtime directory and
    never read the files in it.
  - On the home and each directory above the runtime directory, the access entry
    C(group:<service_group>:--x). On the runtime directory, the access entries C(user::rwx),
    C(group::---), C(other::---), C(group:<service_group>:r-x) and the default entries
    C(user::rwx), C(group::---), C(other::---), C(group:<service_group>:---), so that every file
    created there is private to its owner whatever the umask (C(jpserver-<pid>-open.html) holds
    the server's token and is written with the user's umask).
  - Other entries (a user's own grants) are kept. A mask that hides a wanted entry (the mask trap,
    for example after C(chmod 0700) of the runtime directory) is widened by the bits the entry
    needs; a new mask is the union of the group class, as setfacl computes it.
  - Reads every ACL first (C(system.posix_acl_access) and C(system.posix_acl_default) through
    file descriptors) and runs C(setfacl) once for each directory whose ACL must change, so an
    unchanged tree costs only reads.
  - With O(revoke_unlisted=true), each directory directly under O(home_root) whose owner is not a
    listed user loses the service group's access and default entries on the home, the directories
    below it down to the runtime directory and the runtime directory.
  - Symbolic links are never followed below O(home_root). A home, or a directory between a home
    and its runtime directory, that is a symbolic link is refused with a warning and nothing is
    changed for that user. Files inside the runtime directory are never touched.
  - Run it as root on the host where the homes are on a local file system (setfacl does not work
    over NFSv4 from a client, and root is squashed there).
author:
  - multijhub developers (@multijhub)
requirements:
  - C(setfacl) (the C(acl) package) on the managed host.
  - A file system with POSIX ACL support under O(home_root).
options:
  users:
    description:
      - The users whose runtime directories the service group may list. Each must exist; unknown
        users make the module fail before anything is changed. The home is taken from the user
        database.
      - An empty list is allowed (with O(revoke_unlisted=true), every grant under O(home_root) is
        taken away).
    type: list
    elements: str
    required: true
  service_group:
    description:
      - The group whose members may list the runtime directories. Must exist; its numeric GID is
        what the ACL entries name.
    type: str
    required: true
  home_root:
    description:
      - The directory holding the homes. Must be a directory on a file system with POSIX ACLs.
      - Only used to find the homes of users that are no longer listed (O(revoke_unlisted)).
    type: path
    default: /home
  runtime_subdir:
    description:
      - The runtime directory relative to a user's home, without C(.) or C(..) components.
    type: str
    default: .local/share/jupyter/runtime
  revoke_unlisted:
    description:
      - Take the service group's entries away from the homes directly under O(home_root) whose
        owner is not one of O(users).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports what would be created, granted and revoked without changing anything.
  diff_mode:
    support: full
    description: The ACL of each directory that changes, before and after, as C(getfacl --numeric) shows it.
notes:
  - A user whose home is missing or refused is reported in RV(users) with an C(error) and a warning;
    the other users are still handled. Failing system calls (setfacl, mkdir) make the module fail
    after the other users have been handled.
  - Existing directories are never chmod-ed or chown-ed; only the runtime directory's owner and
    other bits are set, through its ACL (its group bits are the ACL mask).
seealso:
  - module: ansible.posix.acl
"""

EXAMPLES = r"""
- name: Let flask_users list the runtime directories of juser1 and juser2
  multijhub.cluster.runtime_acl:
    users: [juser1, juser2]
    service_group: flask_users

- name: Same, for the homes under /export/home, keeping the grants of unlisted users
  multijhub.cluster.runtime_acl:
    users: "{{ jupyter_users }}"
    service_group: flask_users
    home_root: /export/home
    revoke_unlisted: false
  register: acl_result
"""

RETURN = r"""
users:
  description:
    - Per user, what was (or in check mode would be) done. Listed users, plus the owners of the
      homes whose grants were revoked (keyed by name, or C(uid:<n>) when the owner has no name).
  returned: always
  type: dict
  sample:
    juser1:
      listed: true
      home: /home/juser1
      runtime_dir: /home/juser1/.local/share/jupyter/runtime
      created: [/home/juser1/.local/share/jupyter/runtime]
      granted:
        - path: /home/juser1
          entries: ["group:1001:--x", "mask::--x"]
      revoked: []
      changed: true
  contains:
    listed:
      description: Whether the user is one of O(users).
      type: bool
    home:
      description: The home directory.
      type: str
    runtime_dir:
      description: The runtime directory (listed users only).
      type: str
    created:
      description: The directories created.
      type: list
      elements: str
    granted:
      description: Per directory, the ACL entries set (C(setfacl -m) syntax, numeric).
      type: list
      elements: dict
    revoked:
      description: Per directory, the ACL entries removed (C(setfacl -x) syntax, numeric).
      type: list
      elements: dict
    changed:
      description: Whether anything changed for this user.
      type: bool
    error:
      description: Why nothing (or not everything) was done for this user.
      type: str
      returned: when the user was refused or a change failed
revoked_homes:
  description: The homes under O(home_root) that lost the service group's entries.
  returned: always
  type: list
  elements: str
  sample: [/home/olduser]
service_gid:
  description: The numeric GID of O(service_group).
  returned: always
  type: int
  sample: 1001
"""

import contextlib
import errno
import grp
import os
import pwd
import stat
import traceback
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.multijhub.cluster.plugins.module_utils.acl import (
    Acl,
    AclError,
    acl_from_mode,
    format_acl,
    grant,
    parse_xattr,
    revoke,
    runtime_entries,
    setfacl_args,
    traverse_entries,
)

_ACCESS = "system.posix_acl_access"
_DEFAULT = "system.posix_acl_default"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_DIR_MODE = 0o700


class Refused(Exception):
    """A user's tree cannot be handled safely (symlink, missing home): skip the user."""


class Failure(Exception):
    """A system call that should have worked failed."""


def _read_xattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return None
        raise


def read_acl(fd: int) -> tuple[Acl, Acl]:
    """The access and default ACL of an open directory."""
    access = _read_xattr(fd, _ACCESS)
    default = _read_xattr(fd, _DEFAULT)
    return (
        parse_xattr(access) if access is not None else acl_from_mode(os.fstat(fd).st_mode),
        parse_xattr(default) if default is not None else {},
    )


def _open_below(parent_fd: int, name: str, shown: str) -> int | None:
    """Open a directory below ``parent_fd`` without following a symlink; None when missing."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    info = os.lstat(name, dir_fd=parent_fd)
    if stat.S_ISLNK(info.st_mode):
        raise Refused(f"{shown} is a symbolic link: not followed, nothing changed for this user")
    raise Refused(f"{shown} is not a directory: nothing changed for this user")


class RuntimeAcl:
    def __init__(self, module: AnsibleModule, service_gid: int, parts: list[str], setfacl: str) -> None:
        self.module = module
        self.gid = service_gid
        self.parts = parts
        self.setfacl = setfacl
        self.check = module.check_mode
        self.diff: list[dict[str, str]] = []
        self.changed = False
        self.failures: list[str] = []

    # --- one directory ---------------------------------------------------------------------------

    def _apply(
        self,
        fd: int | None,
        path: str,
        before: tuple[Acl, Acl],
        after: tuple[Acl, Acl],
        *,
        absent: bool = False,
    ) -> list[str]:
        """Make the ACL of the directory ``after``; return the setfacl options used ([] if none)."""
        args = setfacl_args(before, after)
        if not args:
            return []
        if not self.check and fd is not None:
            rc, _out, err = self.module.run_command(
                [self.setfacl, *args, f"/proc/self/fd/{fd}"],
                pass_fds=(fd,),
                environ_update={"LC_ALL": "C"},
                expand_user_and_vars=False,
            )
            if rc != 0:
                raise Failure(f"setfacl {' '.join(args)} {path} failed: {err.strip()}")
            got = read_acl(fd)
            if got != after:
                raise Failure(
                    f"the ACL of {path} is not what setfacl was asked for:\n{format_acl(*got)}"
                    f"instead of\n{format_acl(*after)}"
                )
        self.changed = True
        if self.module._diff:
            self.diff.append(
                {
                    "before_header": f"{path} (absent)" if absent else path,
                    "after_header": path,
                    "before": "" if absent else format_acl(*before),
                    "after": format_acl(*after),
                }
            )
        return args

    @staticmethod
    def _entries(args: list[str], option: str) -> list[str]:
        found: list[str] = []
        for index, arg in enumerate(args[:-1]):
            if arg == option:
                found += args[index + 1].split(",")
        if option == "-x" and "-k" in args:
            found.append("default:")
        return found

    # --- a listed user ---------------------------------------------------------------------------

    def _mkdir(self, parent_fd: int, name: str, path: str, pw: pwd.struct_passwd) -> int:
        with contextlib.suppress(FileExistsError):  # made meanwhile: refused below if no directory
            os.mkdir(name, _NEW_DIR_MODE, dir_fd=parent_fd)
        fd = _open_below(parent_fd, name, path)
        if fd is None:
            raise Failure(f"{path} vanished right after it was created")
        os.fchown(fd, pw.pw_uid, pw.pw_gid)
        os.fchmod(fd, _NEW_DIR_MODE)
        return fd

    def _paths(self, home: str) -> list[str]:
        """The home, the directories below it and the runtime directory."""
        return [home] + [os.path.join(home, *self.parts[: depth + 1]) for depth in range(len(self.parts))]

    def _walk(self, paths: list[str], fds: list[int | None]) -> None:
        """Open what exists of ``paths`` into ``fds`` (None from the first missing one on), read only."""
        home = paths[0]
        try:
            fds.append(os.open(home, _DIR_FLAGS))
        except FileNotFoundError:
            raise Refused(f"the home {home} does not exist") from None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            kind = "a symbolic link" if os.path.islink(home) else "not a directory"
            raise Refused(f"the home {home} is {kind}: nothing changed for this user") from None
        for index, name in enumerate(self.parts):
            parent = fds[-1]
            fds.append(None if parent is None else _open_below(parent, name, paths[index + 1]))

    def _set_acls(self, paths: list[str], fds: list[int | None], result: dict[str, Any]) -> None:
        runtime_access, runtime_default = runtime_entries(self.gid)
        for index, (path, fd) in enumerate(zip(paths, fds)):
            before = read_acl(fd) if fd is not None else (acl_from_mode(_NEW_DIR_MODE), {})
            if index < len(paths) - 1:
                after = (grant(before[0], traverse_entries(self.gid)), before[1])
            else:
                after = (grant(before[0], runtime_access), grant(before[1], runtime_default))
            args = self._apply(fd, path, before, after, absent=path in result["created"])
            if not args:
                continue
            result["changed"] = True
            modified = self._entries(args, "-m")
            removed = self._entries(args, "-x")
            if modified:
                result["granted"].append({"path": path, "entries": modified})
            if removed:
                result["revoked"].append({"path": path, "entries": removed})

    def grant_user(self, pw: pwd.struct_passwd) -> dict[str, Any]:
        home = pw.pw_dir.rstrip("/") or "/"
        paths = self._paths(home)
        result: dict[str, Any] = {
            "listed": True,
            "home": home,
            "runtime_dir": paths[-1],
            "created": [],
            "granted": [],
            "revoked": [],
            "changed": False,
        }
        fds: list[int | None] = []
        try:
            # A read-only walk first: a refusal changes nothing.
            self._walk(paths, fds)
            # Then create what is missing, owned by the user.
            for index in range(1, len(paths)):
                if fds[index] is None:
                    result["created"].append(paths[index])
                    self.changed = result["changed"] = True
                    parent = fds[index - 1]
                    if not self.check and parent is not None:
                        fds[index] = self._mkdir(parent, self.parts[index - 1], paths[index], pw)
            runtime_fd = fds[-1]
            if runtime_fd is not None and os.fstat(runtime_fd).st_uid != pw.pw_uid:
                self.module.warn(
                    f"runtime_acl: {paths[-1]} is owned by uid {os.fstat(runtime_fd).st_uid}, not by "
                    f"{pw.pw_name}: Jupyter cannot write its runtime files there"
                )
            self._set_acls(paths, fds, result)
        except Refused as exc:
            result["error"] = str(exc)
            self.module.warn(f"runtime_acl: user {pw.pw_name}: {exc}")
        except (Failure, AclError, OSError) as exc:
            result["error"] = str(exc)
            self.failures.append(f"user {pw.pw_name}: {exc}")
        finally:
            for fd in fds:
                if fd is not None:
                    os.close(fd)
        return result

    # --- unlisted homes --------------------------------------------------------------------------

    def _revoke_path(self, fd: int, path: str) -> list[str]:
        """Remove the service group's entries from one directory; the setfacl options used."""
        access, default = read_acl(fd)
        key = ("group", self.gid)
        after = (
            revoke(access, self.gid) if key in access else access,
            revoke(default, self.gid) if key in default else default,
        )
        return self._apply(fd, path, (access, default), after)

    def revoke_home(self, root_fd: int, home: str, name: str) -> dict[str, Any] | None:
        """Take the service group's entries away from one unlisted home; None if it had none."""
        revoked: list[dict[str, Any]] = []
        fds: list[int] = []
        owner: int | None = None
        paths = self._paths(home)
        try:
            fd = _open_below(root_fd, name, home)
            while fd is not None:
                fds.append(fd)
                if owner is None:
                    owner = os.fstat(fd).st_uid
                path = paths[len(fds) - 1]
                args = self._revoke_path(fd, path)
                if args:
                    revoked.append({"path": path, "entries": self._entries(args, "-x")})
                if len(fds) == len(paths):
                    break
                try:
                    fd = _open_below(fd, self.parts[len(fds) - 1], paths[len(fds)])
                except Refused as exc:
                    self.module.warn(f"runtime_acl: unlisted home {home}: {exc}")
                    break
        except Refused:
            return None  # the entry under the home root is no directory: not a home
        except (Failure, AclError, OSError) as exc:
            self.failures.append(f"unlisted home {home}: {exc}")
            revoked.append({"path": home, "error": str(exc)})
        finally:
            for fd in fds:
                os.close(fd)
        if not revoked:
            return None
        try:
            user = pwd.getpwuid(owner).pw_name if owner is not None else f"?{name}"
        except KeyError:
            user = f"uid:{owner}"
        return {"user": user, "home": home, "revoked": revoked}

    def revoke_unlisted(self, home_root: str, listed: list[pwd.struct_passwd]) -> list[dict[str, Any]]:
        listed_uids = {pw.pw_uid for pw in listed}
        listed_homes = {os.path.realpath(pw.pw_dir) for pw in listed}
        found: list[dict[str, Any]] = []
        root_fd = os.open(home_root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            with os.scandir(root_fd) as entries:
                names = sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
            for name in names:
                home = os.path.join(home_root, name)
                try:
                    owner = os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_uid
                except FileNotFoundError:
                    continue
                if owner in listed_uids or os.path.realpath(home) in listed_homes:
                    continue
                revoked = self.revoke_home(root_fd, home, name)
                if revoked is not None:
                    found.append(revoked)
        finally:
            os.close(root_fd)
        return found


def _validate(module: AnsibleModule) -> tuple[list[pwd.struct_passwd], int, list[str], str]:
    params = module.params
    subdir = params["runtime_subdir"]
    parts = [part for part in subdir.split("/") if part]
    if "\0" in subdir or os.path.isabs(subdir) or not parts or any(part in (".", "..") for part in parts):
        module.fail_json(
            msg=f"runtime_subdir must be a relative path without '.' or '..' components, got {subdir!r}"
        )
    home_root = params["home_root"]
    if "\0" in home_root or not os.path.isabs(home_root):
        module.fail_json(msg=f"home_root must be an absolute path, got {home_root!r}")
    if not os.path.isdir(home_root):
        module.fail_json(msg=f"home_root {home_root} is not a directory")
    try:
        os.getxattr(home_root, _ACCESS)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            module.fail_json(msg=f"home_root {home_root} is on a file system without POSIX ACL support")
        if exc.errno != errno.ENODATA:
            module.fail_json(msg=f"home_root {home_root}: cannot read its ACL: {exc}")
    group = params["service_group"]
    try:
        gid = grp.getgrnam(group).gr_gid
    except (KeyError, ValueError):
        module.fail_json(msg=f"service_group {group!r} does not exist")
    users: list[pwd.struct_passwd] = []
    unknown: list[str] = []
    for name in dict.fromkeys(params["users"]):
        try:
            users.append(pwd.getpwnam(name))
        except (KeyError, ValueError):
            unknown.append(name)
    if unknown:
        module.fail_json(
            msg="users: unknown users: " + ", ".join(repr(name) for name in unknown), unknown=unknown
        )
    setfacl = module.get_bin_path("setfacl", required=True)
    return users, gid, parts, setfacl


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "str", "required": True},
            "service_group": {"type": "str", "required": True},
            "home_root": {"type": "path", "default": "/home"},
            "runtime_subdir": {"type": "str", "default": ".local/share/jupyter/runtime"},
            "revoke_unlisted": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    users, gid, parts, setfacl = _validate(module)
    home_root = module.params["home_root"]
    worker = RuntimeAcl(module, gid, parts, setfacl)
    results: dict[str, dict[str, Any]] = {}
    revoked_homes: list[str] = []
    try:
        for pw in users:
            results[pw.pw_name] = worker.grant_user(pw)
        if module.params["revoke_unlisted"]:
            for item in worker.revoke_unlisted(home_root, users):
                revoked_homes.append(item["home"])
                entry = results.setdefault(
                    item["user"],
                    {"listed": False, "home": item["home"], "created": [], "granted": [], "revoked": []},
                )
                entry["revoked"] += item["revoked"]
                entry["changed"] = True
    except OSError as exc:
        module.fail_json(
            msg=f"{type(exc).__name__}: {exc}",
            changed=worker.changed,
            users=results,
            exception=traceback.format_exc(),
        )
    output: dict[str, Any] = {
        "changed": worker.changed,
        "users": results,
        "revoked_homes": revoked_homes,
        "service_gid": gid,
    }
    if module._diff:
        output["diff"] = worker.diff
    if worker.failures:
        module.fail_json(msg="runtime_acl: " + "; ".join(worker.failures), **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
