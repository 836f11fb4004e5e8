"""The parts of a machine's box that do not need a kernel to check: the
cgroup files written for each cgroup version (on a directory tree laid out
as the kernel's), the limits a claim may carry, the host ports an operator
allows and the firewall written from them. The real thing (cgroups,
namespaces, bubblewrap) is tests/integration/test_machine_isolation.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from deckhand.machine_agent.cgroups import Limits, MachineCgroup, detect
from deckhand.machine_agent.netns import firewall, parse_allow


def _v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_v2_one_group_under_deckhand_with_every_limit(tmp_path: Path) -> None:
    root = _v2_root(tmp_path)
    assert detect(root) == 2
    group = MachineCgroup.create("mch_1", Limits(memory_mb=1024, cpus=1.5, pids_max=300),
                                 root=root, record_dir=tmp_path)
    assert group is not None and group.version == 2
    d = root / "deckhand" / "mch_1"
    assert group.dirs == {"unified": d}
    assert (d / "memory.max").read_text() == str(1024 * 1024 * 1024)
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert (d / "pids.max").read_text() == "300"
    # the controllers are handed down to deckhand/ (its own subtree_control)
    assert (root / "deckhand" / "cgroup.subtree_control").read_text().startswith("+")
    assert group.join_argv()[-1] == str(d / "cgroup.procs")
    # the server finds it again from the machine's directory
    again = MachineCgroup.recorded(tmp_path)
    assert again is not None and again.dirs == group.dirs and again.version == 2
    # a claimed spare's new limits; None lifts one
    group.apply(Limits(memory_mb=None, cpus=None, pids_max=64))
    assert (d / "memory.max").read_text() == "max"
    assert (d / "cpu.max").read_text() == "max 100000"
    assert (d / "pids.max").read_text() == "64"


def test_v1_one_group_per_controller(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    for ctrl in ("memory", "cpu", "cpuacct", "pids"):
        (root / ctrl).mkdir(parents=True)
        (root / ctrl / "cgroup.procs").write_text("")
    assert detect(root) == 1
    group = MachineCgroup.create("pool-ab", Limits(memory_mb=2048, cpus=1, pids_max=512),
                                 root=root)
    assert group is not None and set(group.dirs) == {"memory", "cpu", "cpuacct", "pids"}
    assert all(d.name == "pool-ab" and d.parent.name == "deckhand" for d in group.dirs.values())
    assert (group.dirs["memory"] / "memory.limit_in_bytes").read_text() == str(2048 * 2**20)
    assert (group.dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "100000"
    assert (group.dirs["cpu"] / "cpu.cfs_period_us").read_text() == "100000"
    assert (group.dirs["pids"] / "pids.max").read_text() == "512"
    assert len(group.procs_files()) == 4


def test_no_tree_no_group(tmp_path: Path) -> None:
    assert detect(tmp_path) is None
    assert MachineCgroup.create("m", Limits(), root=tmp_path) is None


def test_the_limits_a_claim_may_carry() -> None:
    assert Limits.from_json({"memory_mb": 1024, "cpus": 2, "pids_max": None}) == \
        Limits(1024, 2.0, None)
    assert Limits.from_json({}) == Limits()
    for bad in ({"memory_mb": 0}, {"cpus": -1}, {"pids_max": "many"}, {"memory_mb": True}, []):
        with pytest.raises(ValueError):
            Limits.from_json(bad)


def test_host_allow_entries() -> None:
    assert parse_allow("") == []
    assert parse_allow("127.0.0.1:8099, localhost:5432,10.1.2.3:80") == [
        ("127.0.0.1", 8099), ("127.0.0.1", 5432), ("10.1.2.3", 80)]
    for bad in ("127.0.0.1", "example.com:80", "127.0.0.1:0", "[::1]:80", "1.2.3.4:99999"):
        with pytest.raises(ValueError):
            parse_allow(bad)


def test_the_firewall_rejects_the_host_and_private_ranges_but_the_allowed() -> None:
    rules = firewall([("127.0.0.1", 8099), ("10.1.2.3", 5432)])
    blocked = next(line for line in rules.splitlines() if line.strip().endswith("reject")
                   and "daddr" in line)
    for net in ("127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                "192.168.0.0/16", "100.64.0.0/10"):
        assert net in blocked
    # a non-loopback allowed port is an exception before the rejection; a loopback
    # one is the relay's (never through slirp)
    assert rules.index("ip daddr 10.1.2.3 tcp dport 5432 accept") < rules.index(blocked)
    assert "8099" not in rules
    assert "meta nfproto ipv6 reject" in rules
