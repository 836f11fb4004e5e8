"""Memory of machines, for bench/machines.py: PSS of every process of a
machine (its agent's session, the agent's descendants and the machine's
cgroup) from /proc/<pid>/smaps_rollup, per process kind (the agent, each
kind of Chromium process, the box's helpers), and the fill: machines of a
kind started side by side until their summed PSS reaches a budget."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deckhand.machine_agent.cgroups import MachineCgroup
from deckhand.machine_agent.proctree import descendant_pids
from deckhand.machines.local import LocalMachineProvider, session_pids

GIB = 1024 * 1024  # KiB
SAFETY_KIB = 2 * GIB  # left to the host when the fill stops at its available memory


def machine_pids(pid: int, mdir: Path) -> set[int]:
    group = MachineCgroup.recorded(mdir.resolve())
    return set(session_pids(pid)) | set(descendant_pids(pid)) | {pid} \
        | (group.pids() if group is not None else set())


def _pss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def kind_of(pid: int) -> str:
    """What a process of a machine is, from its executable and command line
    (Chromium rewrites its own: the words are searched, not the argv)."""
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().replace(b"\0", b" ").decode(errors="replace").split()
    except OSError:
        return "gone"
    if "machine_agent" in " ".join(words[:4]):
        return "agent (python)"
    if exe in ("chromium", "chrome"):
        kind = next((w.split("=", 1)[1] for w in words if w.startswith("--type=")), "browser")
        sub = next((w.split("=", 1)[1] for w in words if w.startswith("--utility-sub-type=")),
                   "")
        if kind == "utility":
            return f"chromium utility ({sub.split('.')[0] or '?'})"
        return f"chromium {kind}"
    if exe == "node":
        return "playwright driver (node)"
    return exe


def pss_kib(pid: int, mdir: Path) -> int:
    return sum(kib for kib, _ in pss_by_kind(pid, mdir).values())


def pss_by_kind(pid: int, mdir: Path) -> dict[str, tuple[int, int]]:
    """PSS (KiB) of a machine's processes summed per kind, and how many."""
    out: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for p in machine_pids(pid, mdir):
        value = _pss(p)
        if value is not None:
            kind = kind_of(p)
            out[kind] += value
            count[kind] += 1
    return {k: (out[k], count[k]) for k in out}


def available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


@dataclass
class Fill:
    kind: str
    started: int
    total_kib: int
    stopped_by: str  # budget | host memory | cap
    seconds: float

    @property
    def per_machine_kib(self) -> float:
        return self.total_kib / max(1, self.started)

    def fit(self, budget_kib: int) -> int:
        """How many fit in the budget: counted if the budget stopped the
        fill, else extrapolated from the PSS per machine."""
        if self.stopped_by == "budget":
            return self.started - 1  # the last one went over
        return int(budget_kib // self.per_machine_kib)


async def fill(provider: LocalMachineProvider, kind: str, budget_kib: int, cap: int,
               settle_s: float = 2.0, log: Callable[[str], None] = print) -> Fill:
    """Machines of ``kind`` started one after another and kept, until their
    summed PSS reaches ``budget_kib``, the host's available memory less a
    margin, or ``cap`` machines; then all destroyed."""
    started = time.monotonic()
    handles: list[tuple[str, int]] = []
    last: dict[str, int] = {}  # each machine's PSS when last read
    stopped_by = "cap"

    def read(mid: str, pid: int) -> None:
        last[mid] = pss_kib(pid, provider.machine_dir(mid))

    try:
        while len(handles) < cap:
            if available_kib() - SAFETY_KIB < 400 * 1024:
                stopped_by = "host memory"
                break
            mid = f"fill-{kind}-{len(handles)}"
            handle = await provider.create(mid, kind=kind)
            handles.append((mid, handle.pid))
            await asyncio.sleep(settle_s if len(handles) == 1 else 0.3)
            read(mid, handle.pid)
            if len(handles) % 10 == 0:  # sharing changes as more start: read all again
                for m, pid in handles:
                    read(m, pid)
                log(f"    {kind}: {len(handles)} machines, {sum(last.values()) / GIB:.2f} GiB")
            if sum(last.values()) >= budget_kib:
                stopped_by = "budget"
                break
        await asyncio.sleep(settle_s)
        for m, pid in handles:  # the final sum, every machine read again
            read(m, pid)
        total = sum(last.values())
    finally:
        await asyncio.gather(*(provider.destroy(m) for m, _ in handles),
                             return_exceptions=True)
    return Fill(kind, len(handles), total, stopped_by, time.monotonic() - started)
