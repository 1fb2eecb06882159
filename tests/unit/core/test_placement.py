from __future__ import annotations

from multijhub.core.placement import NodeLoad, choose_node

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


# Learned sizes (issue 19).

from multijhub.core.cgroupmem import UnitMemory  # noqa: E402
from multijhub.core.placement import SizeRule, learned_size, promised, reserved  # noqa: E402


def unit(user: str, current: float) -> UnitMemory:
    return UnitMemory(user, int(current * GIB), int(current * GIB), 0, "1", 2)


def test_learned_size_quantile_floor_cap_default() -> None:
    rule = SizeRule(default=2 * GIB, quantile=0.9, floor=GIB // 4, cap=8 * GIB)
    assert learned_size([], rule) == 2 * GIB  # a new user: the default
    assert learned_size([3 * GIB, 1 * GIB], rule) == 3 * GIB  # few sessions: the largest
    ten = [GIB] * 8 + [5 * GIB, 7 * GIB]
    assert learned_size(ten, rule) == 5 * GIB  # one freak of ten is not the size
    assert learned_size([1000], rule) == GIB // 4  # raised to the floor
    assert learned_size([20 * GIB], rule) == 8 * GIB  # lowered to the memory limit
    assert learned_size([20 * GIB], SizeRule(cap=0)) == 20 * GIB  # no cap
    # a memory limit under the floor wins
    assert learned_size([1000], SizeRule(floor=GIB // 8, cap=GIB // 16)) == GIB // 16


def test_reserved_and_promised() -> None:
    units = [unit("ann", 1), unit("bob", 3)]
    sizes = {"ann": 4 * GIB, "bob": 2 * GIB}  # ann will grow by 3 GiB; bob is past his size
    assert reserved(units, sizes) == 3 * GIB
    assert promised(units, sizes) == 7 * GIB
    assert reserved(units, {}) == 0  # no history: counted as what it uses now


def test_reserved_memory_moves_the_choice() -> None:
    # hub1 has the most free memory now, but a running server there is known to grow by 6 GiB.
    nodes = [n("hub1", 8, reserved=6 * GIB), n("hub2", 5)]
    assert choose_node(nodes) == "hub2"
    assert choose_node([n("hub1", 8), n("hub2", 5)]) == "hub1"  # without learned sizes: hub1


def test_sticky_needs_room_for_the_learned_size() -> None:
    nodes = [n("hub1", 10, total=16), n("hub2", 12, total=16)]
    assert choose_node(nodes, previous="hub1", need=2 * GIB, sticky_headroom=0.2) == "hub1"
    # a user who peaked at 8 GiB last time no longer fits hub1 with its headroom
    assert choose_node(nodes, previous="hub1", need=8 * GIB, sticky_headroom=0.2) == "hub2"
