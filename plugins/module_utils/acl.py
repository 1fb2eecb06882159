"""POSIX ACLs as plain data: the entries runtime_acl wants, reading them, and what to change.

No Ansible and no I/O here (the module does the system calls): an ACL is a dict mapping
``(tag, qualifier)`` to permission bits (r=4, w=2, x=1), for example
``{("user", None): 7, ("group", None): 0, ("group", 1001): 5, ("mask", None): 5, ("other", None): 0}``.
Tags are ``user``, ``group``, ``mask`` and ``other``; the qualifier is the numeric uid or gid of a
named entry and ``None`` for the owner, owning group, mask and other entries.
"""

from __future__ import annotations

import re
import struct
from typing import Optional

__all__ = [
    "GRANT_REPAIR",
    "Acl",
    "AclError",
    "Key",
    "acl_from_mode",
    "changes",
    "format_acl",
    "grant",
    "named_entries",
    "parse_getfacl",
    "parse_perms",
    "parse_xattr",
    "perms_text",
    "revoke",
    "runtime_entries",
    "setfacl_args",
    "to_xattr",
    "traverse_entries",
]

# Evaluated at run time (no ``X | None`` here): the module may run on Python 3.9 targets.
Key = tuple[str, Optional[int]]
Acl = dict[Key, int]

# What restores the service group's listing grants (the runtime_acl role on the host holding the
# homes): named wherever a broken grant is reported (front door log and admin page, where.yml).
GRANT_REPAIR = "ansible-playbook site.yml --limit home"

USER_OBJ: Key = ("user", None)
GROUP_OBJ: Key = ("group", None)
MASK: Key = ("mask", None)
OTHER: Key = ("other", None)

# Linux's posix_acl_xattr format (include/uapi/linux/posix_acl_xattr.h).
_XATTR_VERSION = 2
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
_UNDEFINED_ID = 0xFFFFFFFF
_TAG_TO_CODE = {"user": (0x01, 0x02), "group": (0x04, 0x08), "mask": (0x10, 0x10), "other": (0x20, 0x20)}
_CODE_TO_TAG: dict[int, tuple[str, bool]] = {
    0x01: ("user", False),
    0x02: ("user", True),
    0x04: ("group", False),
    0x08: ("group", True),
    0x10: ("mask", False),
    0x20: ("other", False),
}
_TAG_ORDER = {"user": 0, "group": 1, "mask": 2, "other": 3}
_ENTRY_LINE = re.compile(r"(default:)?(user|group|mask|other):([^:]*):([r-][w-][x-])")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class AclError(ValueError):
    """An ACL (binary or text) that cannot be parsed or is not valid."""


def parse_perms(text: str) -> int:
    """``"r-x"`` (or ``"rx"``, ``"x"``, ``"-"``) to permission bits."""
    bits = 0
    for char in text:
        if char == "r":
            bits |= 4
        elif char == "w":
            bits |= 2
        elif char == "x":
            bits |= 1
        elif char != "-":
            raise AclError(f"bad permissions {text!r}")
    return bits


def perms_text(bits: int) -> str:
    """Permission bits to ``"r-x"``."""
    return ("r" if bits & 4 else "-") + ("w" if bits & 2 else "-") + ("x" if bits & 1 else "-")


def _sort_key(key: Key) -> tuple[int, int, int]:
    tag, qualifier = key
    return (_TAG_ORDER[tag], 0 if qualifier is None else 1, -1 if qualifier is None else qualifier)


def _entry_text(key: Key, perms: int | None, *, default: bool) -> str:
    tag, qualifier = key
    text = ("default:" if default else "") + f"{tag}:{'' if qualifier is None else qualifier}"
    return text if perms is None else f"{text}:{perms_text(perms)}"


def acl_from_mode(mode: int) -> Acl:
    """The minimal access ACL that a mode without an ACL xattr stands for."""
    return {USER_OBJ: (mode >> 6) & 7, GROUP_OBJ: (mode >> 3) & 7, OTHER: mode & 7}


def named_entries(acl: Acl) -> Acl:
    """The named user and group entries (those that need a mask)."""
    return {key: perms for key, perms in acl.items() if key[1] is not None}


def _check(acl: Acl, *, default: bool) -> None:
    if not acl and default:
        return
    missing = [key for key in (USER_OBJ, GROUP_OBJ, OTHER) if key not in acl]
    if missing:
        raise AclError("ACL without " + ", ".join(_entry_text(key, None, default=default) for key in missing))
    if named_entries(acl) and MASK not in acl:
        raise AclError("ACL with named entries but no mask")


def parse_xattr(data: bytes) -> Acl:
    """Parse the value of ``system.posix_acl_access`` or ``system.posix_acl_default``."""
    if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _ENTRY.size:
        raise AclError(f"ACL xattr of {len(data)} bytes")
    (version,) = _HEADER.unpack_from(data)
    if version != _XATTR_VERSION:
        raise AclError(f"ACL xattr version {version}")
    acl: Acl = {}
    for offset in range(_HEADER.size, len(data), _ENTRY.size):
        code, perms, ident = _ENTRY.unpack_from(data, offset)
        if code not in _CODE_TO_TAG or perms & ~7:
            raise AclError(f"ACL xattr entry with tag {code:#x} and permissions {perms:#o}")
        tag, named = _CODE_TO_TAG[code]
        key = (tag, ident if named else None)
        if key in acl:
            raise AclError(f"ACL xattr with two {_entry_text(key, None, default=False)} entries")
        acl[key] = perms
    return acl


def to_xattr(acl: Acl) -> bytes:
    """The binary xattr value of an ACL (entries in the kernel's order)."""
    data = bytearray(_HEADER.pack(_XATTR_VERSION))
    for key in sorted(acl, key=_sort_key):
        tag, qualifier = key
        code = _TAG_TO_CODE[tag][0 if qualifier is None else 1]
        data += _ENTRY.pack(code, acl[key], _UNDEFINED_ID if qualifier is None else qualifier)
    return bytes(data)


def _unescape(name: str) -> str:
    """getfacl writes special characters of file names as octal escapes (``\\040``)."""
    raw = _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), name)
    return raw.encode("latin-1", "surrogateescape").decode("utf-8", "surrogateescape")


def parse_getfacl(text: str) -> dict[str, tuple[Acl, Acl]]:
    """Parse ``getfacl --numeric`` output: path to (access ACL, default ACL).

    With ``--omit-header`` (one path) the path is ``""``. Effective-rights comments and the
    owner, group and flags header lines are ignored; qualifiers must be numeric.
    """
    result: dict[str, tuple[Acl, Acl]] = {}
    path = ""
    for raw in text.splitlines():
        line = raw.split("\t", 1)[0].strip()
        if line.startswith("# file: "):
            path = _unescape(line[len("# file: ") :])
            continue
        if not line or line.startswith("#"):
            continue
        match = _ENTRY_LINE.fullmatch(line)
        if match is None:
            raise AclError(f"unexpected getfacl line {line!r}")
        default, tag, qualifier, perms = match.groups()
        if qualifier and not qualifier.isdigit():
            raise AclError(f"getfacl line {line!r} is not numeric (use --numeric)")
        if qualifier and tag not in ("user", "group"):
            raise AclError(f"unexpected getfacl line {line!r}")
        access, default_acl = result.setdefault(path, ({}, {}))
        key = (tag, int(qualifier) if qualifier else None)
        (default_acl if default else access)[key] = parse_perms(perms)
    return result


def format_acl(access: Acl, default: Acl) -> str:
    """The ACL as ``getfacl --numeric --omit-header`` shows it (without effective-rights comments)."""
    lines = [_entry_text(key, access[key], default=False) for key in sorted(access, key=_sort_key)]
    lines += [_entry_text(key, default[key], default=True) for key in sorted(default, key=_sort_key)]
    return "".join(line + "\n" for line in lines)


def traverse_entries(service_gid: int) -> Acl:
    """The access entries on the home and each directory above the runtime directory."""
    return {("group", service_gid): 1}


def runtime_entries(service_gid: int) -> tuple[Acl, Acl]:
    """The access and default entries on the runtime directory.

    Access: the owner may do everything, the owning group and others nothing, the service group
    may list. Default: every new file is private to its owner whatever the umask or create mode
    (``jpserver-<pid>-open.html`` is written 0666 & ~umask and holds the server's token).
    """
    access = {USER_OBJ: 7, GROUP_OBJ: 0, OTHER: 0, ("group", service_gid): 5}
    default = {USER_OBJ: 7, GROUP_OBJ: 0, OTHER: 0, ("group", service_gid): 0}
    return access, default


def grant(current: Acl, wanted: Acl) -> Acl:
    """``current`` with the ``wanted`` entries set, and a mask that lets them through.

    Other entries (a user's own grants) are kept. Without a mask yet, the new mask is the union
    of the group class, as setfacl computes it. An existing mask is only widened by the bits the
    wanted entries need: a user's narrowing of it (``chmod g-r`` on an ACL) is kept, but a mask
    that hides the service group's grant (``chmod 0700``, the mask trap) is repaired.
    """
    result = dict(current)
    result.update(wanted)
    if not named_entries(result):
        return result
    if MASK in current:
        base = current[MASK]
    else:
        base = current.get(GROUP_OBJ, 0)
        for perms in named_entries(current).values():
            base |= perms
    needed = 0
    for key, perms in wanted.items():
        if key[0] in ("user", "group") and key != USER_OBJ:
            needed |= perms
    result[MASK] = base | needed
    return result


def revoke(current: Acl, gid: int) -> Acl:
    """``current`` without the named entry of group ``gid``.

    The effective rights of every remaining entry are kept: the mask is not recomputed, and when
    no named entry remains the mask goes and the owning group keeps what the mask let through
    (so a home that was 0700 before the grant is 0700 again).
    """
    result = {key: perms for key, perms in current.items() if key != ("group", gid)}
    if MASK in result and not named_entries(result):
        mask = result.pop(MASK)
        if GROUP_OBJ in result:
            result[GROUP_OBJ] &= mask
    return result


def changes(before: Acl, after: Acl, *, default: bool) -> tuple[list[str], list[str]]:
    """setfacl entries that turn ``before`` into ``after``: (to modify, to remove)."""
    _check(after, default=default)
    modify = [
        _entry_text(key, after[key], default=default)
        for key in sorted(after, key=_sort_key)
        if before.get(key) != after[key]
    ]
    remove = [
        _entry_text(key, None, default=default) for key in sorted(before, key=_sort_key) if key not in after
    ]
    return modify, remove


def setfacl_args(before: tuple[Acl, Acl], after: tuple[Acl, Acl]) -> list[str]:
    """setfacl options (before the path) that turn ``before`` into ``after``; ``[]`` when equal.

    ``-n`` keeps setfacl from recomputing the mask: the mask is always part of ``after``.
    """
    modify, remove = changes(before[0], after[0], default=False)
    if before[1] and not after[1]:
        default_modify: list[str] = []
        default_remove: list[str] = []
        wipe_default = True
    else:
        default_modify, default_remove = changes(before[1], after[1], default=True)
        wipe_default = False
    modify += default_modify
    remove += default_remove
    if not (modify or remove or wipe_default):
        return []
    args = ["-n"]
    if wipe_default:
        args.append("-k")
    if remove:
        args += ["-x", ",".join(remove)]
    if modify:
        args += ["-m", ",".join(modify)]
    return args
