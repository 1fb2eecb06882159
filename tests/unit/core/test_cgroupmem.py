"""The kernel's account of each server's memory: a real cgroup v1 here, a v2 tree written out."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from multijhub.core.cgroupmem import NodeBound, node_bound, read_unit, scan_units, unit_name
from multijhub.core.report import node_memory, node_report

MiB = 1024**2
V1_ROOT = Path("/sys/fs/cgroup/memory")


def write_v2_unit(root: Path, slice_: str, user: str, current: int, peak: int | None, oom: int) -> Path:
    path = root / slice_ / unit_name(user)
    path.mkdir(parents=True)
    (path / "memory.current").write_text(f"{current}\n")
    if peak is not None:
        (path / "memory.peak").write_text(f"{peak}\n")
    (path / "memory.events").write_text(f"low 0\nhigh 0\nmax 3\noom {oom}\noom_kill {oom}\n")
    return path


def test_v2_units_in_any_slice(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    write_v2_unit(tmp_path, "system.slice", "ann", 300 * MiB, 900 * MiB, 0)
    write_v2_unit(tmp_path, "jupyter.slice/users.slice", "bob", 50 * MiB, None, 2)  # no memory.peak (< 5.19)
    (tmp_path / "system.slice" / "sshd.service").mkdir()
    units = scan_units(str(tmp_path))
    assert [(u.user, u.current, u.peak, u.oom_kills, u.cgroup) for u in units] == [
        ("ann", 300 * MiB, 900 * MiB, 0, 2),
        ("bob", 50 * MiB, 50 * MiB, 2, 2),
    ]
    ann = tmp_path / "system.slice" / unit_name("ann")
    assert units[0].session == str(os.stat(ann).st_ino)


def test_gone_or_unreadable_unit_is_none(tmp_path: Path) -> None:
    assert read_unit(str(tmp_path / "nothing"), "ann") is None
    (tmp_path / "empty").mkdir()
    assert read_unit(str(tmp_path / "empty"), "ann") is None
    assert scan_units(str(tmp_path / "nothing")) == []


@pytest.fixture
def v1_slice() -> Iterator[Path]:
    if not os.access(V1_ROOT, os.W_OK):
        pytest.skip("needs a writable cgroup v1 memory controller (root)")
    path = V1_ROOT / f"multijhub-test-{uuid.uuid4().hex[:8]}.slice"
    path.mkdir()
    try:
        yield path
    finally:
        for child in path.iterdir():
            if child.is_dir():
                child.rmdir()
        path.rmdir()


def test_real_v1_cgroup_peak_and_oom_kill(v1_slice: Path) -> None:
    unit = v1_slice / unit_name("mjtest")
    unit.mkdir()
    (unit / "memory.limit_in_bytes").write_text(str(64 * MiB))
    # A process in the unit's cgroup takes 30 MiB, then more than the limit: the kernel kills it.
    code = (
        "import os, sys\n"
        f"open({str(unit / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
        "a = bytearray(30 * 2**20)\n"
        "b = bytearray(100 * 2**20)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert result.returncode == -9  # SIGKILL from the OOM killer
    units = {u.user: u for u in scan_units("/sys/fs/cgroup")}
    got = units["mjtest"]
    assert got.cgroup == 1
    assert got.peak >= 30 * MiB  # the kernel's peak, though the process is gone
    assert got.oom_kills == 1
    assert got.session == str(os.stat(unit).st_ino)
    report = node_report("root")  # the probe's answer carries every unit, backward compatible
    assert any(u["user"] == "mjtest" and u["oom_kills"] == 1 for u in report["units"])
    assert report["memory"] is None  # root has no unit of its own


# --- The node's own limit (a container's cgroup): what /proc/meminfo does not show -------------------


def write_meminfo(proc: Path, available_kib: int, total_kib: int) -> None:
    proc.mkdir(exist_ok=True)
    lines = [f"MemTotal: {total_kib} kB", "MemFree: 1 kB", f"MemAvailable: {available_kib} kB"]
    (proc / "meminfo").write_text("\n".join(lines) + "\n")


def test_v2_root_with_a_limit_bounds_the_node(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("memory\n")
    (root / "memory.max").write_text(f"{1024 * MiB}\n")
    (root / "memory.current").write_text(f"{700 * MiB}\n")
    (root / "memory.stat").write_text(f"anon {300 * MiB}\nfile {400 * MiB}\ninactive_file {250 * MiB}\n")
    assert node_bound(str(root)) == NodeBound(1024 * MiB, 450 * MiB)
    write_meminfo(tmp_path / "proc", 20 * 1024 * 1024, 24 * 1024 * 1024)  # the host's 20 of 24 GiB
    assert node_memory(str(tmp_path / "proc"), str(root)) == (574 * MiB, 1024 * MiB)
    # Less available on the host than under the limit: the host's figure wins.
    write_meminfo(tmp_path / "proc", 100 * 1024, 24 * 1024 * 1024)
    assert node_memory(str(tmp_path / "proc"), str(root)) == (100 * MiB, 1024 * MiB)


@pytest.mark.parametrize("limit", ["max", None, "garbage"])
def test_v2_root_without_a_limit_is_meminfo(tmp_path: Path, limit: str | None) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("memory\n")
    if limit is not None:
        (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{700 * MiB}\n")
    assert node_bound(str(root)) is None
    write_meminfo(tmp_path / "proc", 5 * 1024, 8 * 1024)
    assert node_memory(str(tmp_path / "proc"), str(root)) == (5 * MiB, 8 * MiB)


def test_v1_unlimited_root_and_a_limit_above_memtotal_are_meminfo(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    (root / "memory").mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "memory" / "memory.usage_in_bytes").write_text(f"{900 * MiB}\n")
    assert node_bound(str(root)) is None
    (root / "memory" / "memory.limit_in_bytes").write_text(f"{16 * 1024 * MiB}\n")  # above MemTotal
    write_meminfo(tmp_path / "proc", 5 * 1024 * 1024, 8 * 1024 * 1024)
    assert node_memory(str(tmp_path / "proc"), str(root)) == (5 * 1024 * MiB, 8 * 1024 * MiB)
    assert node_bound(str(tmp_path / "nothing")) is None


def test_real_v1_cgroup_limit_bounds_the_node(v1_slice: Path, tmp_path: Path) -> None:
    """A real cgroup with a limit, seen as the root of a node's hierarchy (as in a container)."""
    node = v1_slice / "node"
    node.mkdir()
    (node / "memory.limit_in_bytes").write_text(str(256 * MiB))
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "memory").symlink_to(node)  # the container's view: its own cgroup at <root>/memory
    code = (
        "import os, sys\n"
        f"open({str(node / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
        "a = bytearray(80 * 2**20)\n"
        "a[::4096] = b'x' * len(a[::4096])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        bound = node_bound(str(root))
        assert bound is not None
        assert bound.limit == 256 * MiB
        assert 80 * MiB <= bound.used < 200 * MiB
        available, total = node_memory("/proc", str(root))
        assert total == 256 * MiB
        assert available == bound.available <= 176 * MiB
    finally:
        holder.communicate("", timeout=30)
