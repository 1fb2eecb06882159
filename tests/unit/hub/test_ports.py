"""The single-user port range (JupyterHub has no such option): parsing, choice, exhaustion, and the
spawner mixin that applies it to SystemdSpawner and LocalProcessSpawner."""

from __future__ import annotations

import random
import socket
from types import SimpleNamespace

import pytest

from multijhub.hub.ports import (
    PortRangeError,
    PortRangeExhausted,
    choose_port,
    parse_port_range,
    port_is_free,
)


@pytest.mark.parametrize("text", ["8100-8999", " 8100-8999 ", "9000-9000"])
def test_parse_good_ranges(text: str) -> None:
    low, high = parse_port_range(text)
    assert 1024 < low <= high <= 65535


@pytest.mark.parametrize(
    "text", ["", "8100", "8100:8999", "8999-8100", "80-90", "8100-70000", "a-b", "-8100", "8100-"]
)
def test_parse_rejects_malformed_or_inverted_ranges(text: str) -> None:
    with pytest.raises(PortRangeError, match="port range"):
        parse_port_range(text)


def test_choice_stays_inside_the_range_and_skips_reserved_and_busy_ports() -> None:
    busy = {8101, 8103}
    for seed in range(20):
        port = choose_port(
            8100, 8104, reserved={8100, 8102}, is_free=lambda p: p not in busy, rng=random.Random(seed)
        )
        assert port == 8104


def test_exhausted_range_fails_with_a_clear_message() -> None:
    with pytest.raises(
        PortRangeExhausted, match=r"no free port left in 8100-8102 .*widen jupyterhub_port_range"
    ):
        choose_port(8100, 8102, reserved={8100}, is_free=lambda p: p == 8100)


def test_port_is_free_sees_a_real_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free(port, "127.0.0.1")
    assert port_is_free(port, "127.0.0.1")


spawners = pytest.importorskip("multijhub.hub.spawners", reason="JupyterHub is not installed")


@pytest.mark.parametrize("cls", [spawners.RangeLocalProcessSpawner, spawners.RangeSystemdSpawner])
def test_spawner_picks_its_port_in_the_range_before_building_the_environment(cls: type) -> None:
    spawner = cls(port_range="8150-8159", user=SimpleNamespace(name="juser1", id=1))
    spawner.ip = "127.0.0.1"
    port = spawner.allocate_port()
    assert 8150 <= port <= 8159
    assert spawner._reserved[port] == "juser1"
    spawner.port = port
    spawner.release_port()
    assert port not in spawner._reserved


def test_spawner_refuses_a_bad_range_in_its_configuration() -> None:
    with pytest.raises(PortRangeError):
        spawners.RangeLocalProcessSpawner(port_range="9000-8000")
