from __future__ import annotations

from multijhub_core.placement import NodeLoad, choose_node

GIB = 1 << 30


def n(name: str, avail: float, total: float = 16, **kw: object) -> NodeLoad:
    return NodeLoad(name, int(avail * GIB), int(total * GIB), **kw)  # type: ignore[arg-type]


def test_most_free_memory() -> None:
    assert choose_node([n("hub1", 2), n("hub2", 5), n("hub3", 4)]) == "hub2"


def test_ties_by_name() -> None:
    assert choose_node([n("hub2", 5), n("hub1", 5)]) == "hub1"


def test_pending_counts() -> None:
    assert choose_node([n("hub1", 6, pending=3 * GIB), n("hub2", 5)]) == "hub2"


def test_unhealthy_and_drained_are_skipped() -> None:
    assert choose_node([n("hub1", 9, healthy=False), n("hub2", 8, drained=True), n("hub3", 1)]) == "hub3"
    assert choose_node([n("hub1", 9, healthy=False), n("hub2", 8, drained=True)]) is None
    assert choose_node([]) is None


def test_sticky_when_room() -> None:
    nodes = [n("hub1", 4), n("hub2", 9)]
    assert choose_node(nodes, previous="hub1") == "hub1"  # 4 >= 0.2 * 16 (the default headroom)
    assert choose_node(nodes, previous="hub1", need=2 * GIB) == "hub2"  # 4 < 2 + 3.2
    assert choose_node([n("hub1", 3), n("hub2", 9)], previous="hub1") == "hub2"  # 3 < 3.2
    assert choose_node([n("hub1", 3), n("hub2", 9)], previous="hub1", sticky_headroom=0.1) == "hub1"


def test_sticky_lost_when_drained_or_unknown() -> None:
    assert choose_node([n("hub1", 9, drained=True), n("hub2", 3)], previous="hub1") == "hub2"
    assert choose_node([n("hub1", 2), n("hub2", 3)], previous="hub7") == "hub2"
