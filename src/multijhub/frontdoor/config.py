"""Load and validate the front door's TOML configuration."""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import tomllib

from multijhub.core.hubs import cluster_public_url
from multijhub.core.usernames import DEFAULT_PATTERN, InvalidUsernamePattern, compile_pattern

from .throttle import Limit, parse_limits

ENV_VAR = "MULTIJHUB_FRONTDOOR_CONFIG"
DEFAULT_PATH = "/etc/multijhub-frontdoor/frontdoor.toml"

_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_SSH_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}$")
_SSH_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_PERSIST = re.compile(r"^(yes|no|[0-9]+[smhdw]?)$")
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


T = TypeVar("T")

DEFAULT_LOGIN_RATE_LIMIT = "300 per minute"
DEFAULT_FAILURES_PER_USER = "10 per 10 minutes"
DEFAULT_FAILURES_PER_ADDRESS = "100 per 10 minutes"


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class NodeConfig:
    """One hub node: where users are sent, how it is asked."""

    name: str
    base_url: str  # public URL of the hub, no trailing slash
    api_url: str  # URL the front door uses for the REST API (default base_url)
    api_token_file: str
    ssh_host: str


@dataclass(frozen=True)
class SshConfig:
    """How the probe reaches the hubs."""

    user: str
    key_file: str
    known_hosts_file: str
    control_dir: str
    control_persist: str = "10m"
    connect_timeout: int = 2
    binary: str = "ssh"
    channels: int = 1  # persistent probe sessions per hub and worker; 0: one ssh per request


@dataclass(frozen=True)
class StoreConfig:
    """Where assignments live: ``sqlite`` (path) or ``postgresql`` (dsn)."""

    kind: str
    path: str = ""
    dsn: str = ""


@dataclass(frozen=True)
class LimitsConfig:
    """Per-server sizes used for reservations not yet visible on a node."""

    mem_per_server: int = 0  # bytes; also the size of a user with no recorded session
    pending_seconds: float = 120.0
    sticky_headroom: float = 0.0  # placement study (issue 19): learned sizes already count growth
    # Learned sizes (multijhub.core.placement.SizeRule): quantile of the last sessions' peaks.
    learned_quantile: float = 0.9
    # The quantile the node's other servers (running or placed) count at: placement study (issue 19).
    learned_running_quantile: float = 0.7
    learned_floor: int = 128 * 1024**2  # bytes
    learned_cap: int = 0  # bytes; 0 = no cap (else the servers' memory limit)
    memory_history: int = 10  # session peaks kept per user
    forget_after_days: float = 90.0  # a user not seen for this long is forgotten
    # A silent node keeps its users (their recent nodes, issue 16) this many days.
    node_history_days: float = 30.0


@dataclass(frozen=True)
class Config:
    """The whole front door configuration."""

    nodes: tuple[NodeConfig, ...]
    ssh: SshConfig
    store: StoreConfig
    secret_key_file: str
    deadline: float = 2.0
    pam_service: str = "login"
    admin_group: str = ""
    drained: frozenset[str] = frozenset()
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    tls: bool = False
    session_hours: float = 8.0
    login_rate_limit: str = DEFAULT_LOGIN_RATE_LIMIT  # every login POST, per address (flood ceiling)
    rate_limit_storage: str = "memory://"
    # Failed logins (throttle.py), counted in the assignment store.
    login_failures_per_user: tuple[Limit, ...] = field(
        default_factory=lambda: parse_limits(DEFAULT_FAILURES_PER_USER, "login_failures_per_user")
    )
    login_failures_per_address: tuple[Limit, ...] = field(
        default_factory=lambda: parse_limits(DEFAULT_FAILURES_PER_ADDRESS, "login_failures_per_address")
    )
    username_pattern: str = DEFAULT_PATTERN  # the site's user-name rule (multijhub.core.usernames)
    account_check: bool = True  # ask PAM account management at every hand-off
    proxy_count: int = 0
    workers: int = 0  # thread pool size for node queries; 0 = automatic
    proof_key_files: tuple[str, ...] = ()  # login proof keys, newest first; () = plain redirects
    proof_max_age: float = 30.0
    # One address for the whole cluster (proxied mode): the front door's public URL, and the
    # internal CA's certificate the hubs' API certificates are checked against ('' for the system's).
    public_url: str = ""
    hub_ca_file: str = ""

    def node(self, name: str) -> NodeConfig | None:
        """Return the node called ``name`` or None."""
        for node in self.nodes:
            if node.name == name:
                return node
        return None


def _type_name(value: object) -> str:
    return type(value).__name__


def _get(table: dict[str, Any], key: str, kind: type[T], where: str) -> T:
    value = table[key]
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}{key}: expected {kind.__name__}, got a boolean")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}{key}: expected {kind.__name__}, got {_type_name(value)}")
    return value


def _opt(table: dict[str, Any], key: str, kind: type[T], where: str, default: T) -> T:
    if key not in table:
        return default
    return _get(table, key, kind, where)


def _req(table: dict[str, Any], key: str, kind: type[T], where: str) -> T:
    if key not in table:
        raise ConfigError(f"{where}{key}: required key is missing")
    return _get(table, key, kind, where)


def _num(table: dict[str, Any], key: str, where: str, default: float) -> float:
    """A number (integer or float, never a boolean)."""
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}{key}: expected a number, got {_type_name(value)}")
    number = float(value)  # an int too large for a float raises OverflowError: load_config says so
    if not math.isfinite(number):
        raise ConfigError(f"{where}{key}: expected a finite number, got {value}")
    return number


def _check_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}{unknown[0]}: unknown key")


def _abs_path(table: dict[str, Any], key: str, where: str) -> str:
    value = _req(table, key, str, where)
    if not value.startswith("/"):
        raise ConfigError(f"{where}{key}: must be an absolute path, got {value!r}")
    return value


def parse_size(value: object, where: str) -> int:
    """Parse bytes given as an integer or as ``"2G"``, ``"512M"``, ``"1.5GiB"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a size, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{where}: must not be negative")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value.strip())
        if match:
            return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    raise ConfigError(f"{where}: expected bytes or a size like '2G', got {value!r}")


def _base_url(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: expected an http(s) URL with a host, got {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{where}: must not carry credentials, query or fragment")
    if any(ch in value for ch in "\\ \t\r\n"):
        raise ConfigError(f"{where}: contains whitespace or a backslash")
    return value.rstrip("/")


def _parse_node(raw: object, index: int) -> NodeConfig:
    where = f"nodes[{index}]."
    if not isinstance(raw, dict):
        raise ConfigError(f"nodes[{index}]: expected a table")
    _check_unknown(raw, {"name", "base_url", "api_url", "api_token_file", "ssh_host"}, where)
    name = _req(raw, "name", str, where)
    if not _NODE_NAME.fullmatch(name):
        raise ConfigError(f"{where}name: invalid node name {name!r}")
    base_url = _base_url(_req(raw, "base_url", str, where), f"{where}base_url")
    api_url = _base_url(_opt(raw, "api_url", str, where, base_url), f"{where}api_url")
    ssh_host = _opt(raw, "ssh_host", str, where, name)
    if not _SSH_HOST.fullmatch(ssh_host):
        raise ConfigError(f"{where}ssh_host: invalid host {ssh_host!r}")
    return NodeConfig(
        name=name,
        base_url=base_url,
        api_url=api_url,
        api_token_file=_abs_path(raw, "api_token_file", where),
        ssh_host=ssh_host,
    )


def _parse_ssh(raw: object) -> SshConfig:
    where = "ssh."
    if not isinstance(raw, dict):
        raise ConfigError("ssh: required table is missing")
    _check_unknown(
        raw,
        {
            "user",
            "key_file",
            "known_hosts_file",
            "control_dir",
            "control_persist",
            "connect_timeout",
            "binary",
            "channels",
        },
        where,
    )
    user = _req(raw, "user", str, where)
    if not _SSH_USER.fullmatch(user):
        raise ConfigError(f"{where}user: invalid user name {user!r}")
    persist = str(raw.get("control_persist", "10m"))
    if not _PERSIST.fullmatch(persist):
        raise ConfigError(f"{where}control_persist: invalid value {persist!r}")
    timeout = _opt(raw, "connect_timeout", int, where, 2)
    if timeout < 1:
        raise ConfigError(f"{where}connect_timeout: must be at least 1")
    channels = _opt(raw, "channels", int, where, 1)
    if not 0 <= channels <= 64:
        raise ConfigError(f"{where}channels: must be between 0 and 64")
    control_dir = _abs_path(raw, "control_dir", where)
    # The socket is control_dir/<24 hex> (probe.SshProbe.control_path) and ssh binds it
    # first as <that>.<16 characters>: 60 + 25 + 17 = 102 < sun_path (104 BSD, 108 Linux).
    if len(control_dir) > 60:
        raise ConfigError(f"{where}control_dir: too long for a unix socket path")
    return SshConfig(
        user=user,
        key_file=_abs_path(raw, "key_file", where),
        known_hosts_file=_abs_path(raw, "known_hosts_file", where),
        control_dir=control_dir,
        control_persist=persist,
        connect_timeout=timeout,
        binary=_opt(raw, "binary", str, where, "ssh"),
        channels=channels,
    )


def _parse_store(value: str) -> StoreConfig:
    if value.startswith(("postgresql://", "postgres://")):
        return StoreConfig(kind="postgresql", dsn=value)
    path = value.removeprefix("sqlite://")
    if not path.startswith("/"):
        raise ConfigError(f"store: expected an absolute SQLite path or a postgresql:// DSN, got {value!r}")
    return StoreConfig(kind="sqlite", path=path)


def _parse_limits(raw: object) -> LimitsConfig:
    where = "limits."
    if not isinstance(raw, dict):
        raise ConfigError("limits: expected a table")
    _check_unknown(
        raw,
        {
            "mem_per_server",
            "pending_seconds",
            "sticky_headroom",
            "learned_quantile",
            "learned_running_quantile",
            "learned_floor",
            "learned_cap",
            "memory_history",
            "forget_after_days",
            "node_history_days",
        },
        where,
    )
    mem = parse_size(raw.get("mem_per_server", 0), f"{where}mem_per_server")
    pending = _num(raw, "pending_seconds", where, 120.0)
    if pending < 0:
        raise ConfigError(f"{where}pending_seconds: must not be negative")
    headroom = _num(raw, "sticky_headroom", where, 0.0)
    if not 0 <= headroom <= 1:
        raise ConfigError(f"{where}sticky_headroom: must be between 0 and 1")
    quantile = _num(raw, "learned_quantile", where, 0.9)
    if not 0 < quantile <= 1:
        raise ConfigError(f"{where}learned_quantile: must be above 0 and at most 1")
    running = _num(raw, "learned_running_quantile", where, 0.7)
    if not 0 < running <= 1:
        raise ConfigError(f"{where}learned_running_quantile: must be above 0 and at most 1")
    floor = parse_size(raw.get("learned_floor", "128M"), f"{where}learned_floor")
    cap = parse_size(raw.get("learned_cap", 0), f"{where}learned_cap")
    # A cap below the floor (a memory limit under 128M) wins: learned_size applies it last.
    history = _opt(raw, "memory_history", int, where, 10)
    if isinstance(history, bool) or not 1 <= history <= 1000:
        raise ConfigError(f"{where}memory_history: must be an integer from 1 to 1000")
    forget = _num(raw, "forget_after_days", where, 90.0)
    if forget <= 0:
        raise ConfigError(f"{where}forget_after_days: must be positive")
    node_history = _num(raw, "node_history_days", where, 30.0)
    if node_history <= 0:
        raise ConfigError(f"{where}node_history_days: must be positive")
    return LimitsConfig(
        mem_per_server=mem,
        pending_seconds=pending,
        sticky_headroom=headroom,
        learned_quantile=quantile,
        learned_running_quantile=running,
        learned_floor=floor,
        learned_cap=cap,
        memory_history=history,
        forget_after_days=forget,
        node_history_days=node_history,
    )


_TOP_KEYS = {
    "nodes",
    "ssh",
    "store",
    "secret_key_file",
    "deadline",
    "pam_service",
    "admin_group",
    "drained",
    "limits",
    "tls",
    "session_hours",
    "login_rate_limit",
    "rate_limit_storage",
    "proxy_count",
    "workers",
    "proof_key_files",
    "proof_max_age",
    "login_failures_per_user",
    "login_failures_per_address",
    "username_pattern",
    "account_check",
    "public_url",
    "hub_ca_file",
}


def _parse_proof_keys(data: dict[str, Any]) -> tuple[str, ...]:
    files = _opt(data, "proof_key_files", list, "", [])
    for i, item in enumerate(files):
        if not isinstance(item, str) or not item.startswith("/"):
            raise ConfigError(f"proof_key_files[{i}]: must be an absolute path, got {item!r}")
    return tuple(files)


def _parse_public_url(data: dict[str, Any]) -> str:
    """``public_url``: the front door's own address in proxied mode (the core's rule), or ''."""
    public_url = _opt(data, "public_url", str, "", "")
    try:
        return cluster_public_url(public_url) if public_url else ""
    except ValueError as exc:
        raise ConfigError(f"public_url: {exc}") from None


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document and build a Config."""
    _check_unknown(data, _TOP_KEYS, "")
    raw_nodes = _req(data, "nodes", list, "")
    if not raw_nodes:
        raise ConfigError("nodes: at least one node is required")
    nodes = tuple(_parse_node(raw, i) for i, raw in enumerate(raw_nodes))
    names = [n.name for n in nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"nodes: duplicate node name {dupes[0]!r}")
    deadline = _num(data, "deadline", "", 2.0)
    if not 0 < deadline <= 60:
        raise ConfigError("deadline: must be between 0 and 60 seconds")
    drained = _opt(data, "drained", list, "", [])
    for item in drained:
        if not isinstance(item, str) or item not in names:
            raise ConfigError(f"drained: {item!r} is not a configured node")
    pam_service = _opt(data, "pam_service", str, "", "login")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", pam_service):
        raise ConfigError(f"pam_service: invalid service name {pam_service!r}")
    session_hours = _num(data, "session_hours", "", 8.0)
    if not 0 < session_hours <= 24 * 366:
        raise ConfigError("session_hours: must be positive and at most a year (8784)")
    proof_max_age = _num(data, "proof_max_age", "", 30.0)
    if not 1 <= proof_max_age <= 300:
        raise ConfigError("proof_max_age: must be between 1 and 300 seconds")
    proxy_count = _opt(data, "proxy_count", int, "", 0)
    workers = _opt(data, "workers", int, "", 0)
    if proxy_count < 0 or workers < 0:
        bad = "proxy_count" if proxy_count < 0 else "workers"
        raise ConfigError(f"{bad}: must not be negative")
    try:
        per_user = parse_limits(
            _opt(data, "login_failures_per_user", str, "", DEFAULT_FAILURES_PER_USER),
            "login_failures_per_user",
        )
        per_address = parse_limits(
            _opt(data, "login_failures_per_address", str, "", DEFAULT_FAILURES_PER_ADDRESS),
            "login_failures_per_address",
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    username_pattern = _opt(data, "username_pattern", str, "", DEFAULT_PATTERN)
    try:
        compile_pattern(username_pattern)
    except InvalidUsernamePattern as exc:
        raise ConfigError(f"username_pattern: {exc}") from None
    return Config(
        nodes=nodes,
        ssh=_parse_ssh(data.get("ssh")),
        store=_parse_store(_req(data, "store", str, "")),
        secret_key_file=_abs_path(data, "secret_key_file", ""),
        deadline=deadline,
        pam_service=pam_service,
        admin_group=_opt(data, "admin_group", str, "", ""),
        drained=frozenset(drained),
        limits=_parse_limits(data.get("limits", {})),
        tls=_opt(data, "tls", bool, "", False),
        session_hours=session_hours,
        login_rate_limit=_opt(data, "login_rate_limit", str, "", DEFAULT_LOGIN_RATE_LIMIT),
        rate_limit_storage=_opt(data, "rate_limit_storage", str, "", "memory://"),
        proxy_count=proxy_count,
        workers=workers,
        proof_key_files=_parse_proof_keys(data),
        proof_max_age=proof_max_age,
        login_failures_per_user=per_user,
        login_failures_per_address=per_address,
        username_pattern=username_pattern,
        account_check=_opt(data, "account_check", bool, "", True),
        public_url=_parse_public_url(data),
        hub_ca_file=_abs_path(data, "hub_ca_file", "") if "hub_ca_file" in data else "",
    )


MAX_CONFIG_BYTES = 1024 * 1024  # a configuration is a few kB; /dev/zero or a log is refused


def load_config(path: str | None = None) -> Config:
    """Read the TOML file at ``path`` (default: $MULTIJHUB_FRONTDOOR_CONFIG)."""
    path = path or os.environ.get(ENV_VAR) or DEFAULT_PATH
    try:
        # O_NONBLOCK: a FIFO under the name must not hang the caller (site.yml's validate:).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"configuration {path}: not a regular file")
            if info.st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"configuration {path}: larger than {MAX_CONFIG_BYTES} bytes")
            data = tomllib.loads(fh.read(MAX_CONFIG_BYTES + 1).decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from exc
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except (ValueError, OverflowError) as exc:  # a value out of any sane range (e.g. 400 digits)
        raise ConfigError(f"{path}: a value out of range: {exc}") from exc


def read_secret_file(path: str, what: str) -> str:
    """Read a secret that must be a regular file readable by its owner only."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} {path}: not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{what} {path}: mode {stat.S_IMODE(info.st_mode):04o} is too open, expected 0600 or 0400"
            )
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path}: not UTF-8 text") from exc
    if not value:
        raise ConfigError(f"{what} {path}: file is empty")
    return value


def main(argv: list[str] | None = None) -> int:
    """``multijhub-frontdoor-check-config [FILE]``: validate a configuration, change nothing.

    FILE defaults to $MULTIJHUB_FRONTDOOR_CONFIG. Exit 0 and ``FILE: ok`` when the file parses and
    validates; exit 1 and the first problem on stderr (key path and reason) otherwise. The
    redirector role runs it as the configuration template's ``validate:`` command.
    """
    import argparse  # noqa: PLC0415 - only the command needs it
    import sys  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="multijhub-frontdoor-check-config", description="Validate a front door configuration file."
    )
    parser.add_argument("file", nargs="?", help=f"the TOML file (default: ${ENV_VAR} or {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    path = args.file or os.environ.get(ENV_VAR) or DEFAULT_PATH
    try:
        load_config(path)
    except ConfigError as exc:
        print(f"multijhub-frontdoor-check-config: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
