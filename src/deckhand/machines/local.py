"""The local machine provider: one machine agent process per machine.

Layout under ``data_dir/machines/<machine_id>/`` (directory mode 0700):
``workspace/`` (the machine's disk, 0700), ``token`` (0600), ``agent.json``
(the ready file: pid, port, url), ``agent.log`` and, for the desktop and the
browser, ``Xauthority`` and ``browser-profile/``. A machine that came from the
warm pool keeps its spare's directory (``pool-<hex>``) and
``machines/<machine_id>`` is a symlink to it.

Kinds: ``terminal`` (shells and files; a headless browser on first use),
``browser`` (the browser is launched before the agent reports ready) and
``desktop`` (Xvfb, openbox, xterm, a headful browser on first use).

Each agent runs in its own session (``start_new_session``), so it outlives the
process that spawned it; :meth:`LocalMachineProvider.attach` finds it again
after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from deckhand.errors import MachineError, ValidationFailed
from deckhand.machine_agent import (
    Limits,
    SettlePolicy,
    descendant_pids,
    release_uid,
    remove_recorded,
)
from deckhand.machines.remote import RemoteMachine

READY_FILE = "agent.json"
TOKEN_FILE = "token"
LOG_FILE = "agent.log"
_MACHINE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
KINDS = ("terminal", "browser", "desktop")
POOL_PREFIX = "pool-"


@dataclass(frozen=True)
class AgentHandle:
    machine_id: str
    url: str
    token: str
    pid: int


class LocalMachineProvider:
    """Creates, finds and destroys machine agents on this host."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        sandbox: bool | None = None,
        ready_timeout: float = 10.0,
        python: str = sys.executable,
        settle: SettlePolicy | None = None,
        pids_max: int = 512,
        host_allow: str = "",
        isolate: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.pids_max = pids_max
        self.host_allow = host_allow  # DECKHAND_MACHINE_HOST_ALLOW, handed to each agent
        self.isolate = isolate  # False: no box (benchmarks measure what the box costs)
        self.sandbox = sandbox
        self.settle = settle or SettlePolicy()
        self.ready_timeout = ready_timeout
        self.python = python
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def machine_dir(self, machine_id: str) -> Path:
        if not _MACHINE_ID.fullmatch(machine_id):
            raise ValidationFailed(
                f"machine id {machine_id!r}: use 1-128 of A-Z a-z 0-9 _ . - "
                "(not starting with . or -)"
            )
        return self.data_dir / "machines" / machine_id

    def workspace(self, machine_id: str) -> Path:
        return self.machine_dir(machine_id) / "workspace"

    # ------------------------------------------------------------------ lifecycle

    def limits(self, memory_gb: int | None = None, cpu_cores: int | None = None) -> Limits:
        """The limits of a machine told it has ``memory_gb`` and ``cpu_cores``."""
        return Limits(memory_mb=(memory_gb or 2) * 1024, cpus=float(cpu_cores or 1),
                      pids_max=self.pids_max)

    async def create(self, machine_id: str, *, network: bool = True,
                     kind: str = "terminal", limits: Limits | None = None) -> AgentHandle:
        """Start the machine's agent and return once it listens. If the
        machine's agent is already running and healthy, return it instead."""
        existing = await self.attach(machine_id)
        if existing is not None:
            return existing
        return await self._spawn(machine_id, self.machine_dir(machine_id), network=network,
                                 kind=kind, limits=limits or self.limits())

    async def spawn_spare(self, kind: str) -> AgentHandle:
        """An unclaimed agent of ``kind`` for the warm pool (its handle's
        machine_id is the spare's directory name)."""
        name = POOL_PREFIX + secrets.token_hex(8)
        return await self._spawn(None, self.data_dir / "machines" / name, network=True,
                                 kind=kind, limits=self.limits())

    def adopt(self, spare: AgentHandle, machine_id: str) -> None:
        """Make the claimed spare's directory the machine's (a symlink)."""
        link = self.machine_dir(machine_id)
        target = self.data_dir / "machines" / spare.machine_id
        if link.is_symlink() or link.exists():
            raise MachineError(f"machine directory {link} already exists")
        os.symlink(target.name, link)

    def spare_dirs(self) -> list[Path]:
        """Pool directories no machine has adopted (leftovers of a previous run)."""
        root = self.data_dir / "machines"
        if not root.is_dir():
            return []
        adopted = {os.readlink(p) for p in root.iterdir() if p.is_symlink()}
        return [p for p in root.iterdir() if p.name.startswith(POOL_PREFIX)
                and not p.is_symlink() and p.name not in adopted]

    def machine_ids(self) -> list[str]:
        """The machines this host has a directory for (a real one, or the
        symlink of an adopted spare); the warm pool's own ``pool-`` dirs are
        not machines and are left to it."""
        root = self.data_dir / "machines"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir()
                      if not p.name.startswith(POOL_PREFIX) and _MACHINE_ID.fullmatch(p.name))

    async def stop_strays(self) -> list[int]:
        """Stop the agents started from this data dir whose machine directory
        is gone (removed by hand, or the whole data dir was): no row and no
        directory will ever name them again. Returns the agents' pids."""
        root = str(self.data_dir.resolve() / "machines") + os.sep
        stray = {pid: state_dir for pid, state_dir in _agents()
                 if state_dir.startswith(root) and not Path(state_dir).is_dir()}
        for pid, state_dir in stray.items():
            targets = _session_members(pid) | _with_start_time(descendant_pids(pid)) \
                | _with_start_time([pid])
            await _terminate(pid, targets, self._children.pop(state_dir, None))
        return list(stray)

    async def destroy_dir(self, mdir: Path) -> None:
        await self._stop_agent(mdir, None)
        if mdir.exists():
            await asyncio.to_thread(_rmtree, mdir)
        await asyncio.to_thread(release_uid, mdir)

    async def _spawn(self, machine_id: str | None, mdir: Path, *, network: bool,
                     kind: str, limits: Limits) -> AgentHandle:
        if kind not in KINDS:
            raise ValidationFailed(f"machine kind {kind!r}: one of {', '.join(KINDS)}")
        mdir = mdir.resolve() if mdir.is_symlink() else mdir
        mdir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mdir.mkdir(exist_ok=True, mode=0o700)
        os.chmod(mdir, 0o700)
        workspace = mdir / "workspace"
        workspace.mkdir(exist_ok=True, mode=0o700)
        os.chmod(workspace, 0o700)
        token = secrets.token_urlsafe(32)
        _write_private(mdir / TOKEN_FILE, token)
        ready = mdir / READY_FILE
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()

        argv = [self.python, "-m", "deckhand.machine_agent"]
        if machine_id is not None:
            argv += ["--machine-id", machine_id]
        argv += [
            "--workspace", str(workspace),
            "--state-dir", str(mdir),
            "--token-file", str(mdir / TOKEN_FILE),
            "--listen", "127.0.0.1:0",
            "--ready-file", str(ready),
            "--network" if network else "--no-network",
            "--settle-quiet-ms", str(self.settle.quiet_ms),
            "--settle-cap-ms", str(self.settle.cap_ms),
            "--memory-mb", str(limits.memory_mb), "--cpus", f"{limits.cpus:g}",
            "--pids-max", str(limits.pids_max), "--host-allow", self.host_allow,
            "--isolate" if self.isolate else "--no-isolate",
        ]
        if kind == "desktop":
            argv.append("--desktop")
        elif kind == "browser":
            argv.append("--browser")
        if self.sandbox is not None:
            argv.append("--sandbox" if self.sandbox else "--no-sandbox")
        env = {k: v for k, v in os.environ.items() if k != "DECKHAND_AGENT_TOKEN"}
        with open(mdir / LOG_FILE, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=mdir,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        self._children[str(mdir)] = proc
        try:
            info = await self._wait_ready(proc, ready, mdir / LOG_FILE)
        except asyncio.CancelledError:
            # nobody will know this agent: do not leave it (or its browser) behind
            self._children.pop(str(mdir), None)
            targets = _session_members(proc.pid) | _with_start_time(descendant_pids(proc.pid)) \
                | _with_start_time([proc.pid])
            _kill_group(proc.pid, signal.SIGKILL)
            for pid, _ in targets:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            _reap(proc)
            raise
        return AgentHandle(machine_id=machine_id or mdir.name, url=str(info["url"]),
                           token=token, pid=proc.pid)

    async def attach(self, machine_id: str) -> AgentHandle | None:
        """The handle of the machine's running agent (after a restart of this
        process), or None if it is not running or not healthy."""
        mdir = self.machine_dir(machine_id)
        try:
            info = json.loads((mdir / READY_FILE).read_text())
            token = (mdir / TOKEN_FILE).read_text().strip()
            pid, url = int(info["pid"]), str(info["url"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _alive(pid) or not _is_agent(pid, mdir):
            return None
        handle = AgentHandle(machine_id=machine_id, url=url, token=token, pid=pid)
        async with self.client(handle) as machine:
            if not await machine.health():
                return None
        return handle

    async def destroy(self, machine_id: str) -> None:
        """Stop the machine's agent and every process it started, then delete
        the machine's directory (workspace included)."""
        link = self.machine_dir(machine_id)
        mdir = link.resolve() if link.is_symlink() else link
        await self._stop_agent(mdir, machine_id)
        if mdir.exists():
            await asyncio.to_thread(_rmtree, mdir)
        await asyncio.to_thread(release_uid, mdir)
        if link.is_symlink():
            link.unlink()

    async def stop(self, machine_id: str) -> None:
        """Stop the machine's agent and its processes; keep its directory
        (workspace, browser profile) for a later :meth:`create`."""
        link = self.machine_dir(machine_id)
        await self._stop_agent(link.resolve() if link.is_symlink() else link, machine_id)
        with contextlib.suppress(FileNotFoundError):
            (link / READY_FILE).unlink()

    async def _stop_agent(self, mdir: Path, machine_id: str | None) -> None:
        pid = _read_pid(mdir / READY_FILE)
        child = self._children.pop(str(mdir), None)
        if pid is None and child is not None:
            pid = child.pid
        if pid is not None and _alive(pid) and not _is_agent(pid, mdir):
            pid = None  # a stale ready file: that pid now belongs to another process
        if pid is not None:
            # Everything to stop, taken before the agent exits (its tree is
            # lost once the agent's children are reparented). The agent leads
            # its own session, so the kernel does not reuse its pid while any
            # process of that session is left: they are all ours.
            targets = _session_members(pid) | _with_start_time(descendant_pids(pid)) \
                | _with_start_time([pid])
            token = _read_text(mdir / TOKEN_FILE)
            info = _read_json(mdir / READY_FILE)
            if _alive(pid) and token and info and "url" in info:
                handle = AgentHandle(machine_id or mdir.name, str(info["url"]), token, pid)
                async with self.client(handle) as machine:
                    with contextlib.suppress(MachineError, httpx.HTTPError):
                        await asyncio.wait_for(machine.shutdown(), timeout=2.0)
            await _terminate(pid, targets, child)
        elif child is not None:
            _reap(child)
        # what the agent left in its cgroup (it was killed, or could not finish)
        if not await asyncio.to_thread(remove_recorded, mdir):
            raise MachineError(f"the cgroup of machine {mdir.name} could not be removed")

    def client(self, handle: AgentHandle, http: httpx.AsyncClient | None = None) -> RemoteMachine:
        return RemoteMachine(handle.machine_id, handle.url, handle.token, http=http)

    # ------------------------------------------------------------------ internals

    async def _wait_ready(
        self, proc: subprocess.Popen[bytes], ready: Path, log: Path
    ) -> dict[str, object]:
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.002
        while True:
            info = _read_json(ready)
            if info is not None and info.get("pid") == proc.pid and "url" in info:
                return info
            if proc.poll() is not None:
                raise MachineError(
                    f"machine agent exited during start (code {proc.returncode}): "
                    f"{_tail(log)}"
                )
            if time.monotonic() > deadline:
                _kill_group(proc.pid, signal.SIGKILL)
                _reap(proc)
                raise MachineError(
                    f"machine agent not ready after {self.ready_timeout:g} s: {_tail(log)}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.02)


# --------------------------------------------------------------------------- helpers


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_pid(path: Path) -> int | None:
    info = _read_json(path)
    pid = info.get("pid") if info else None
    return pid if isinstance(pid, int) else None


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return "(no log)"
    return data.decode(errors="replace").strip() or "(empty log)"


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0])."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _is_agent(pid: int, mdir: Path) -> bool:
    """Whether ``pid`` runs the machine agent of the machine directory ``mdir``
    (its ``--workspace`` is that directory's workspace)."""
    args = _cmdline(pid)
    if "deckhand.machine_agent" not in args and "machine-agent" not in args:
        return False
    real = mdir.resolve() if mdir.is_symlink() else mdir
    workspaces = {str(mdir / "workspace"), str(real / "workspace")}
    return any(a == "--workspace" and b in workspaces for a, b in itertools.pairwise(args))


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def _agents() -> list[tuple[int, str]]:
    """(pid, --state-dir) of every machine agent on the host that leads its session."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        args = _cmdline(pid)
        if "deckhand.machine_agent" not in args:
            continue
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X") or fields[3] != name:
            continue  # not alive, or not a session leader (not an agent we spawned)
        state = next((b for a, b in itertools.pairwise(args) if a == "--state-dir"), None)
        if state is not None:
            found.append((pid, state))
    return found


def _identity(pid: int) -> tuple[int, str] | None:
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return pid, fields[19]  # starttime: tells a process from a later one with its pid


def _with_start_time(pids: list[int]) -> set[tuple[int, str]]:
    return {ident for p in pids if (ident := _identity(p)) is not None}


def session_pids(sid: int) -> list[int]:
    """Live processes whose session id is ``sid``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None and fields[0] not in ("Z", "X") and fields[3] == str(sid):
            found.append(int(name))
    return found


def _session_members(sid: int) -> set[tuple[int, str]]:
    return _with_start_time(session_pids(sid))


def _still_running(targets: set[tuple[int, str]]) -> set[tuple[int, str]]:
    return {t for t in targets if _identity(t[0]) == t}


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0)


async def _terminate(
    pid: int, targets: set[tuple[int, str]], child: subprocess.Popen[bytes] | None
) -> None:
    """Wait briefly for the agent to exit, then SIGTERM and SIGKILL whatever is
    left of its session and of the processes it had started."""

    def remaining() -> set[tuple[int, str]]:
        _reap(child)
        return _still_running(targets | _session_members(pid))

    for sig, wait_s in ((None, 1.0), (signal.SIGTERM, 1.0), (signal.SIGKILL, 2.0)):
        left = remaining()
        if not left:
            return
        if sig is not None:
            _kill_group(pid, sig)
            for p, _ in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, sig)
        deadline = time.monotonic() + wait_s
        delay = 0.002
        while time.monotonic() < deadline and remaining():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
    left = remaining()
    if left:
        raise MachineError(f"processes of the machine agent {pid} survived SIGKILL: "
                           f"{sorted(p for p, _ in left)}")


def _rmtree(path: Path) -> None:
    def retry_writable(func, p, _exc):  # type: ignore[no-untyped-def]
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)

    shutil.rmtree(path, onerror=retry_writable)
