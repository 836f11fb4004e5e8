"""The warm pool: spare, unclaimed machine agents of each kind, started
ahead of need, so that provisioning is a claim (one loopback request and a
symlink, a few ms) instead of a process start (~0.3 s of Python imports for a
terminal, ~1.5 s for a browser).

A spare runs with the network on and no machine id; claiming it gives it
its machine's id (its shells start then). A machine whose metadata says
``network: "off"`` is always started cold. Spares are this host's: on start
the pool removes the spares a previous server left behind, and on close it
stops its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from deckhand.errors import MachineError
from deckhand.machine_agent import Limits
from deckhand.machines.local import KINDS, AgentHandle, LocalMachineProvider

log = logging.getLogger("deckhand.machines.pool")


class WarmPool:
    def __init__(self, provider: LocalMachineProvider, sizes: dict[str, int]) -> None:
        self.provider = provider
        self.sizes = {k: max(0, int(sizes.get(k, 0))) for k in KINDS}
        self._spares: dict[str, list[AgentHandle]] = {k: [] for k in KINDS}
        self._starting: dict[str, int] = {k: 0 for k in KINDS}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def enabled(self) -> bool:
        return any(self.sizes.values())

    def available(self, kind: str) -> int:
        return len(self._spares.get(kind, []))

    async def start(self) -> None:
        for leftover in self.provider.spare_dirs():
            with contextlib.suppress(MachineError, OSError):
                await self.provider.destroy_dir(leftover)
        if not self.enabled:
            return
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0))
        self._task = asyncio.create_task(self._fill_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for kind in KINDS:
            self._spares[kind] = []
        # Every spare directory no machine adopted: the spares, and one whose
        # start the cancellation interrupted.
        for leftover in self.provider.spare_dirs():
            with contextlib.suppress(MachineError, OSError):
                await self.provider.destroy_dir(leftover)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def take(self, kind: str, machine_id: str,
                   limits: Limits | None = None) -> AgentHandle | None:
        """A spare of ``kind`` claimed as ``machine_id``, or None (the pool is
        empty or disabled: start one cold)."""
        spares = self._spares.get(kind) or []
        while spares:
            spare = spares.pop(0)
            self._wake.set()
            try:
                async with self.provider.client(spare, http=self._http) as client:
                    await client.claim(machine_id, network=True,
                                       limits=(limits or self.provider.limits()).to_json())
                self.provider.adopt(spare, machine_id)
            except (MachineError, OSError) as exc:
                log.warning("spare %s could not be claimed: %s", spare.machine_id, exc)
                with contextlib.suppress(MachineError, OSError):
                    await self.provider.destroy_dir(self.provider.data_dir / "machines"
                                                    / spare.machine_id)
                continue
            return AgentHandle(machine_id, spare.url, spare.token, spare.pid)
        return None

    async def _fill_forever(self) -> None:
        while True:
            self._wake.clear()
            for kind in KINDS:
                while len(self._spares[kind]) + self._starting[kind] < self.sizes[kind]:
                    self._starting[kind] += 1
                    try:
                        spare = await self.provider.spawn_spare(kind)
                    except MachineError as exc:
                        log.warning("warm pool: a %s spare did not start: %s", kind, exc)
                        await asyncio.sleep(5.0)
                        break
                    finally:
                        self._starting[kind] -= 1
                    self._spares[kind].append(spare)
            await self._wake.wait()
