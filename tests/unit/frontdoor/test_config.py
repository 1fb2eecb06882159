"""Loading and validating the TOML configuration."""

from __future__ import annotations

import os

import pytest
from frontdoor_env import ROOT, write_secret

from multijhub.frontdoor.config import (
    ConfigError,
    StoreConfig,
    load_config,
    parse_config,
    parse_size,
    read_secret_file,
)
from multijhub.frontdoor.store import open_store

FULL = """
deadline = 1.5
store = "sqlite:///var/lib/multijhub-frontdoor/assignments.sqlite3"
secret_key_file = "/etc/multijhub-frontdoor/secret_key"
pam_service = "jupyterhub"
admin_group = "jhub-admins"
drained = ["hub2"]
tls = true
session_hours = 12
login_rate_limit = "5 per minute"
rate_limit_storage = "memory://"
proxy_count = 1
workers = 32

[limits]
mem_per_server = "2G"
pending_seconds = 90
sticky_headroom = 0.2

[ssh]
user = "multijhub-probe"
key_file = "/etc/multijhub-frontdoor/probe_key"
known_hosts_file = "/etc/multijhub-frontdoor/known_hosts"
control_dir = "/run/multijhub-frontdoor/ssh"
control_persist = "15m"
connect_timeout = 3

[[nodes]]
name = "hub1"
base_url = "https://hub1.example.org:8000/"
api_token_file = "/etc/multijhub-frontdoor/tokens/hub1"
ssh_host = "hub1.internal"

[[nodes]]
name = "hub2"
base_url = "https://cluster.example.org/hub2"
api_url = "http://10.0.0.2:8081/hub2"
api_token_file = "/etc/multijhub-frontdoor/tokens/hub2"
"""


def minimal(**over) -> dict:
    data = {
        "store": "/var/lib/x.sqlite3",
        "secret_key_file": "/etc/x/secret",
        "ssh": {"user": "probe", "key_file": "/k", "known_hosts_file": "/kh", "control_dir": "/run/x"},
        "nodes": [{"name": "hub1", "base_url": "http://hub1:8000", "api_token_file": "/t1"}],
    }
    data.update(over)
    return data


def test_full_file(tmp_path, monkeypatch):
    path = tmp_path / "frontdoor.toml"
    path.write_text(FULL)
    monkeypatch.setenv("MULTIJHUB_FRONTDOOR_CONFIG", str(path))
    cfg = load_config()
    assert cfg.deadline == 1.5
    assert cfg.store.kind == "sqlite"
    assert cfg.store.path == "/var/lib/multijhub-frontdoor/assignments.sqlite3"
    assert cfg.drained == frozenset({"hub2"})
    assert cfg.tls is True and cfg.proxy_count == 1 and cfg.workers == 32
    assert cfg.limits.mem_per_server == 2 * 1024**3
    assert cfg.limits.pending_seconds == 90 and cfg.limits.sticky_headroom == 0.2
    assert cfg.ssh.control_persist == "15m" and cfg.ssh.connect_timeout == 3
    hub1, hub2 = cfg.nodes
    assert hub1.base_url == "https://hub1.example.org:8000"
    assert hub1.api_url == hub1.base_url
    assert hub1.ssh_host == "hub1.internal"
    assert hub2.api_url == "http://10.0.0.2:8081/hub2"
    assert hub2.ssh_host == "hub2"
    assert cfg.node("hub2") is hub2 and cfg.node("nope") is None


def test_defaults():
    cfg = parse_config(minimal())
    assert cfg.deadline == 2.0
    assert cfg.pam_service == "login"
    assert cfg.tls is False
    assert cfg.drained == frozenset()
    assert cfg.limits.mem_per_server == 0
    assert cfg.ssh.control_persist == "10m"


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"nodes": []}, "nodes"),
        ({"nodes": "hub1"}, "nodes"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": "2"}, "deadline"),
        ({"deadline": True}, "deadline"),
        ({"tls": "yes"}, "tls"),
        ({"colour": "blue"}, "colour"),
        ({"drained": ["hub9"]}, "drained"),
        ({"store": "relative.sqlite3"}, "store"),
        ({"secret_key_file": "secret"}, "secret_key_file"),
        ({"pam_service": "../etc/passwd"}, "pam_service"),
        ({"proxy_count": -1}, "proxy_count"),
        ({"limits": {"mem_per_server": "lots"}}, "limits.mem_per_server"),
        ({"limits": {"sticky_headroom": 2}}, "limits.sticky_headroom"),
        ({"limits": {"spare": 1}}, "limits.spare"),
        ({"limits": {"learned_quantile": 0}}, "limits.learned_quantile"),
        ({"limits": {"learned_quantile": 1.5}}, "limits.learned_quantile"),
        ({"limits": {"learned_running_quantile": 0}}, "limits.learned_running_quantile"),
        ({"limits": {"learned_running_quantile": "high"}}, "limits.learned_running_quantile"),
        ({"limits": {"learned_cap": "lots"}}, "limits.learned_cap"),
        ({"limits": {"learned_floor": "big"}}, "limits.learned_floor"),
        ({"limits": {"memory_history": 0}}, "limits.memory_history"),
        ({"limits": {"memory_history": True}}, "limits.memory_history"),
        ({"limits": {"forget_after_days": 0}}, "limits.forget_after_days"),
        ({"limits": {"forget_after_days": "soon"}}, "limits.forget_after_days"),
        ({"ssh": {"user": "probe", "known_hosts_file": "/kh", "control_dir": "/r"}}, "ssh.key_file"),
        ({"ssh": None}, "ssh"),
        (
            {"ssh": {"user": "Root;", "key_file": "/k", "known_hosts_file": "/kh", "control_dir": "/r"}},
            "ssh.user",
        ),
        (
            {
                "ssh": {
                    "user": "p",
                    "key_file": "/k",
                    "known_hosts_file": "/kh",
                    "control_dir": "/r",
                    "control_persist": "forever",
                }
            },
            "ssh.control_persist",
        ),
        ({"nodes": [{"name": "hub1", "api_token_file": "/t"}]}, "nodes[0].base_url"),
        (
            {"nodes": [{"name": "hub1", "base_url": "ftp://hub1", "api_token_file": "/t"}]},
            "nodes[0].base_url",
        ),
        (
            {"nodes": [{"name": "hub1", "base_url": "http://u:p@hub1", "api_token_file": "/t"}]},
            "nodes[0].base_url",
        ),
        (
            {"nodes": [{"name": "-hub", "base_url": "http://hub1", "api_token_file": "/t"}]},
            "nodes[0].name",
        ),
        (
            {
                "nodes": [
                    {"name": "hub1", "base_url": "http://h", "api_token_file": "/t", "ssh_host": "-oProxy"}
                ]
            },
            "nodes[0].ssh_host",
        ),
        (
            {
                "nodes": [
                    {"name": "hub1", "base_url": "http://h1", "api_token_file": "/t"},
                    {"name": "hub1", "base_url": "http://h2", "api_token_file": "/t"},
                ]
            },
            "nodes",
        ),
    ],
)
def test_bad_values_name_the_key(over, key):
    with pytest.raises(ConfigError) as err:
        parse_config(minimal(**over))
    assert str(err.value).startswith(key), str(err.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(str(tmp_path / "absent.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("nodes = [\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(str(bad))
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('deadline = "soon"\n' + FULL.split("\n", 2)[2])
    with pytest.raises(ConfigError, match=r"wrong\.toml: deadline"):
        load_config(str(wrong))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1024, 1024), ("2G", 2 * 1024**3), ("512M", 512 * 1024**2), ("1.5GiB", 3 * 1024**3 // 2)],
)
def test_sizes(value, expected):
    assert parse_size(value, "x") == expected


def test_secret_file_must_be_private(tmp_path):
    path = write_secret(tmp_path / "key", "abc")
    assert read_secret_file(path, "secret key file") == "abc"
    (tmp_path / "key").chmod(0o644)
    with pytest.raises(ConfigError, match="too open"):
        read_secret_file(path, "secret key file")
    (tmp_path / "empty").write_text("")
    (tmp_path / "empty").chmod(0o600)
    with pytest.raises(ConfigError, match="empty"):
        read_secret_file(str(tmp_path / "empty"), "secret key file")
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret_file(str(tmp_path / "absent"), "secret key file")


def test_postgresql_store_is_recognised():
    cfg = parse_config(minimal(store="postgresql://frontdoor@db/multijhub"))
    assert (cfg.store.kind, cfg.store.dsn) == ("postgresql", "postgresql://frontdoor@db/multijhub")
    assert parse_config(minimal(store="postgres://db/x")).store.kind == "postgresql"


def test_unknown_store_kind_is_refused():
    with pytest.raises(ConfigError, match="unknown store kind"):
        open_store(StoreConfig(kind="mysql"))


def test_proof_settings():
    cfg = parse_config(minimal(proof_key_files=["/etc/k1", "/etc/k0"], proof_max_age=15))
    assert (cfg.proof_key_files, cfg.proof_max_age) == (("/etc/k1", "/etc/k0"), 15.0)
    assert parse_config(minimal()).proof_key_files == ()


def test_shipped_example_parses():
    example = ROOT / "src/multijhub/frontdoor/frontdoor.example.toml"
    cfg = load_config(str(example))
    assert [n.name for n in cfg.nodes] == ["hub1", "hub2"]
    assert cfg.limits.mem_per_server == 2 * 1024**3
    assert cfg.proof_key_files == ("/etc/multijhub-frontdoor/proof_key",)
    assert cfg.admin_group == "jupyterhub-admins"
    assert cfg.proof_key_files == ("/etc/multijhub-frontdoor/proof_key",)
    assert cfg.admin_group == "jupyterhub-admins"


def test_learned_size_settings():
    cfg = parse_config(
        minimal(
            limits={
                "learned_quantile": 0.8,
                "learned_running_quantile": 0.6,
                "learned_floor": "256M",
                "learned_cap": "4G",
                "memory_history": 5,
                "forget_after_days": 30,
            }
        )
    )
    lim = cfg.limits
    assert (lim.learned_quantile, lim.learned_floor, lim.learned_cap) == (0.8, 256 * 2**20, 4 * 2**30)
    assert (lim.memory_history, lim.forget_after_days, lim.learned_running_quantile) == (5, 30.0, 0.6)
    default = parse_config(minimal()).limits
    assert (default.learned_quantile, default.learned_cap, default.forget_after_days) == (0.9, 0, 90.0)
    assert default.learned_running_quantile == 0.7


def _full(old: str, new: str) -> bytes:
    assert old in FULL
    return FULL.replace(old, new).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'store = "\xff\xfe"\n', "not UTF-8 text"),
        (b"x = " + b"[" * 100_000, "invalid TOML"),
        (
            FULL.replace("session_hours = 12", "session_hours = nan").encode(),
            "session_hours: expected a finite",
        ),
        (
            FULL.replace("session_hours = 12", "session_hours = 1e308").encode(),
            "session_hours: must be positive",
        ),
        (
            FULL.replace("pending_seconds = 90", "pending_seconds = inf").encode(),
            "pending_seconds: expected a finite",
        ),
        (FULL.replace("session_hours = 12", "session_hours = " + "9" * 400).encode(), "out of range"),
        (_full('name = "hub1"', 'name = "hub1\\n"'), "name"),
        (_full('pam_service = "jupyterhub"', 'pam_service = "login\\n"'), "pam_service"),
        (_full('control_persist = "15m"', 'control_persist = "15m\\n"'), "control_persist"),
    ],
)
def test_hostile_files_are_a_clear_error(tmp_path, content, message):
    """Found by a breaker: each of these was a traceback, or accepted and crashed the app later."""
    path = tmp_path / "f.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


def test_what_is_not_a_regular_file_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # opening it for reading used to wait for a writer: a hung validate:
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(str(fifo))
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config("/dev/zero")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 * 1024 * 1024))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(str(big))


def test_one_public_address_settings():
    """Issue 18: the front door's own public URL (the core's rule) and the internal CA's file."""
    config = parse_config(minimal(public_url="https://jupyter.example.org/", hub_ca_file="/etc/x/hub-ca.crt"))
    assert (config.public_url, config.hub_ca_file) == ("https://jupyter.example.org", "/etc/x/hub-ca.crt")
    assert (parse_config(minimal()).public_url, parse_config(minimal()).hub_ca_file) == ("", "")
    for bad, key in (
        ({"public_url": "http://jupyter.example.org"}, "public_url"),
        ({"public_url": "https://jupyter.example.org/x"}, "public_url"),
        ({"public_url": 1}, "public_url"),
        ({"hub_ca_file": "relative.crt"}, "hub_ca_file"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config(minimal(**bad))
        assert str(err.value).startswith(key), str(err.value)
