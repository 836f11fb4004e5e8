"""A machine's cgroup: the memory, CPU and process limits that hold for
everything the machine runs (its shells, the desktop's programs, Chromium).

cgroup v2 (one unified tree, ``/sys/fs/cgroup/cgroup.controllers``) and v1
(one tree per controller, ``/sys/fs/cgroup/<controller>/``) are told apart at
run time. The machine's group is ``deckhand/<name>``:

- v1: under the agent's own group of each controller (``/proc/self/cgroup``),
  so limits the operator set on the server (systemd, a container) still hold
  for its machines;
- v2: under the root (``/sys/fs/cgroup/deckhand/<name>``): v2 forbids a group
  with processes (the server's) to hand controllers to children.

The agent itself stays outside: a fork bomb or an out-of-memory kill inside
the machine never reaches it. A process joins the group before it executes
anything (:meth:`MachineCgroup.join_argv`), so nothing escapes by forking early.
Where the paths are is written to ``cgroup.json`` in the machine's directory,
so the server finds and removes the group even after the agent is gone
(:func:`remove_recorded`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from deckhand.machine_agent.errors import AgentError

logger = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
PARENT = "deckhand"
RECORD_FILE = "cgroup.json"
DEFAULT_MEMORY_MB = 2048
DEFAULT_CPUS = 1.0
DEFAULT_PIDS_MAX = 512
CFS_PERIOD_US = 100_000
_V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")


@dataclass(frozen=True)
class Limits:
    """What a machine is told it has (None: no limit of that kind)."""

    memory_mb: int | None = DEFAULT_MEMORY_MB
    cpus: float | None = DEFAULT_CPUS
    pids_max: int | None = DEFAULT_PIDS_MAX

    def to_json(self) -> dict[str, float | int | None]:
        return {"memory_mb": self.memory_mb, "cpus": self.cpus, "pids_max": self.pids_max}

    @classmethod
    def from_json(cls, data: object) -> Limits:
        if not isinstance(data, dict):
            raise ValueError("limits must be an object")
        out = {}
        for key, kind in (("memory_mb", int), ("cpus", float), ("pids_max", int)):
            value = data.get(key, getattr(cls(), key))
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or value <= 0):
                raise ValueError(f"{key} must be a positive number or null")
            out[key] = None if value is None else kind(value)
        return cls(**out)  # type: ignore[arg-type]


class CgroupError(AgentError):
    pass


def detect(root: Path = ROOT) -> int | None:
    """2, 1, or None (no cgroup tree we can write: not root, or not mounted)."""
    if (root / "cgroup.controllers").exists():
        return 2 if os.access(root, os.W_OK) else None
    if (root / "memory" / "cgroup.procs").exists():
        return 1 if os.access(root / "memory", os.W_OK) else None
    return None


def _own_v1_path(controller: str) -> str:
    """The agent's own group in a v1 hierarchy ("/" when unknown)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return path
    return "/"


class MachineCgroup:
    """The group of one machine (one directory per v1 controller, or one)."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs

    # ------------------------------------------------------------------ making

    @classmethod
    def create(cls, name: str, limits: Limits, *, root: Path = ROOT,
               record_dir: Path | None = None) -> MachineCgroup | None:
        """The machine's group with ``limits`` applied, or None when this host
        gives no writable cgroups (then nothing is limited; the agent logs it)."""
        version = detect(root)
        if version is None:
            logger.warning("no writable cgroup tree at %s: the machine's limits are not "
                           "enforced", root)
            return None
        if version == 2:
            parent = root / PARENT
            parent.mkdir(exist_ok=True)
            wanted = {"memory", "cpu", "pids"} & set(
                (root / "cgroup.controllers").read_text().split())
            for ctrl in sorted(wanted):  # the root's subtree_control, then deckhand's
                for level in (root, parent):
                    with contextlib.suppress(OSError):
                        (level / "cgroup.subtree_control").write_text(f"+{ctrl}")
            dirs = {"unified": parent / name}
        else:
            dirs = {}
            for ctrl in _V1_CONTROLLERS:
                mount = root / ctrl
                if not (mount / "cgroup.procs").exists():
                    continue
                own = _own_v1_path(ctrl).lstrip("/")
                dirs[ctrl] = mount / own / PARENT / name
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        group = cls(version, dirs)
        if record_dir is not None:
            group.record(record_dir)
        group.apply(limits)
        return group

    def record(self, state_dir: Path) -> None:
        data = {"version": self.version, "dirs": {k: str(v) for k, v in self.dirs.items()}}
        tmp = state_dir / f".{RECORD_FILE}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, state_dir / RECORD_FILE)

    @classmethod
    def recorded(cls, state_dir: Path) -> MachineCgroup | None:
        try:
            data = json.loads((state_dir / RECORD_FILE).read_text())
            return cls(int(data["version"]), {k: Path(v) for k, v in data["dirs"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def apply(self, limits: Limits) -> None:
        """Set (or change: a claimed spare takes its machine's limits) the limits."""
        mem = None if limits.memory_mb is None else limits.memory_mb * 1024 * 1024
        quota = None if limits.cpus is None else int(limits.cpus * CFS_PERIOD_US)
        pids = limits.pids_max
        if self.version == 2:
            d = self.dirs["unified"]
            self._write(d / "memory.max", "max" if mem is None else str(mem))
            self._write(d / "memory.swap.max", "0" if mem is not None else "max", optional=True)
            self._write(d / "cpu.max", f"{'max' if quota is None else quota} {CFS_PERIOD_US}")
            self._write(d / "pids.max", "max" if pids is None else str(pids))
            return
        if "memory" in self.dirs:
            d = self.dirs["memory"]
            value = "-1" if mem is None else str(mem)
            # memsw (memory + swap) must stay >= the memory limit: order the writes
            swap = d / "memory.memsw.limit_in_bytes"
            first, then = ((swap, d / "memory.limit_in_bytes") if mem is None else
                           (d / "memory.limit_in_bytes", swap))
            self._write(first, value, optional=first == swap)
            self._write(then, value, optional=then == swap)
            self._write(d / "memory.swappiness", "0", optional=True)
        if "cpu" in self.dirs:
            d = self.dirs["cpu"]
            self._write(d / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            self._write(d / "cpu.cfs_quota_us", "-1" if quota is None else str(quota))
        if "pids" in self.dirs:
            self._write(self.dirs["pids"] / "pids.max", "max" if pids is None else str(pids))

    @staticmethod
    def _write(path: Path, value: str, *, optional: bool = False) -> None:
        try:
            path.write_text(value)
        except OSError as exc:
            if optional and not path.exists():
                return
            if optional:
                logger.debug("cgroup: %s <- %s: %s", path, value, exc)
                return
            raise CgroupError(f"cgroup: could not write {value} to {path}: {exc}") from exc

    # ------------------------------------------------------------------ using

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def join_argv(self) -> list[str]:
        """A command prefix that moves the process into the group, then executes
        the rest of the command line (``sh`` costs ~1 ms)."""
        files = self.procs_files()
        script = ('n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ >"$1" || exit 125; shift; '
                  'n=$((n-1)); done; exec "$@"')
        return ["/bin/sh", "-c", script, "sh", str(len(files)), *files]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def cpu_usage_ns(self) -> int | None:
        """CPU time used by the machine so far (ns)."""
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            if self.version == 2:
                for line in (self.dirs["unified"] / "cpu.stat").read_text().splitlines():
                    key, value = line.split()
                    if key == "usage_usec":
                        return int(value) * 1000
                return None
            return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text())
        return None

    def memory_bytes(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if self.version == 2:
                return int((self.dirs["unified"] / "memory.current").read_text())
            return int((self.dirs["memory"] / "memory.usage_in_bytes").read_text())
        return None

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process of the machine (frozen first on v1, so that
        nothing forks away between the listing and the kill). True once empty."""
        deadline = time.monotonic() + timeout
        if self.version == 2:
            with contextlib.suppress(OSError):
                (self.dirs["unified"] / "cgroup.kill").write_text("1")
        freezer = self.dirs.get("freezer")
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > deadline:
                return False
            if freezer is not None:
                with contextlib.suppress(OSError):
                    (freezer / "freezer.state").write_text("FROZEN")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if freezer is not None:
                with contextlib.suppress(OSError):
                    (freezer / "freezer.state").write_text("THAWED")
            time.sleep(0.01)

    def remove(self, timeout: float = 5.0) -> bool:
        """Kill what is left and delete the group. True when it is gone."""
        self.kill_all(timeout)
        gone = True
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while d.exists():
                try:
                    d.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:  # a dying process still counted
                        logger.warning("cgroup %s could not be removed", d)
                        gone = False
                        break
                    time.sleep(0.01)
        return gone


def remove_recorded(state_dir: Path | str) -> bool:
    """Remove the group a machine's agent recorded in its directory (after
    the agent is stopped); True if there was none or it is gone."""
    group = MachineCgroup.recorded(Path(state_dir))
    if group is None:
        return True
    gone = group.remove()
    if gone:
        with contextlib.suppress(OSError):
            (Path(state_dir) / RECORD_FILE).unlink()
    return gone
