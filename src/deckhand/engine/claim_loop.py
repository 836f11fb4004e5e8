"""The leased claim loop that the run worker and the workflow worker share.

A worker takes claimable items (runs, workflow runs) up to its slots and
drives each in a task; keeps their leases alive and stops the task of any
lease it lost; interrupts the tasks of items a user cancels; and sweeps items
nobody drives past their deadline. The queue it claims from (and renews and
reads cancel flags in) is given to it; how an item is driven and swept is
the subclass's.

At its start a loop looks up the unfinished items its worker id already owns:
with a stable identity (engine/identity.py) those are what a killed process of
that identity left, and its claims resume them at once rather than after their
leases expire. A fresh id owns nothing, so nothing changes for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.core.clock import utcnow
from deckhand.engine.notify import Notifier
from deckhand.engine.workflow_state import cancel_all
from deckhand.store.db import Database

log = logging.getLogger("deckhand.worker")


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Queue(Protocol):
    """The table a worker claims items from (store/queue.py's LeasedQueue)."""

    async def claim(self, conn: AsyncConnection, worker_id: str, lease_until: datetime,
                    exclude: Collection[str], resume: Collection[str]) -> str | None:
        """Claim one claimable item not in ``exclude`` (or one in ``resume``
        that ``worker_id`` owns, whatever its lease); its id, or None."""

    async def held_by(self, conn: AsyncConnection, worker_id: str) -> set[str]:
        """The unfinished items ``worker_id`` owns."""

    async def renew(self, conn: AsyncConnection, worker_id: str, ids: Sequence[str],
                    lease_until: datetime) -> set[str]:
        """Extend the leases ``worker_id`` still holds among ``ids``; the ids held."""

    async def cancel_requested_among(self, conn: AsyncConnection,
                                     ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` that a user asked to cancel."""


class ClaimLoop(ABC):
    kind: ClassVar[str]  # what an item is called in logs and task names
    claim_topic: ClassVar[str]  # wake-ups meaning "there may be something to claim"
    cancel_topic: ClassVar[str]  # wake-ups meaning "a user cancelled an item"
    # Cancel an item's task again when it goes on this long after a cancel
    # (None: once is enough).
    recancel_seconds: ClassVar[float | None] = None

    def __init__(self, db: Database, notifier: Notifier, queue: Queue, *, slots: int,
                 lease_seconds: float, poll_seconds: float,
                 worker_id: str | None = None) -> None:
        self.db = db
        self.queue = queue
        self.notifier = notifier
        self.slots = slots
        self.lease = timedelta(seconds=lease_seconds)
        self.poll = poll_seconds
        self.id = worker_id or new_worker_id()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()
        self._cancel_sent: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        # Items an earlier process of this worker id left (looked up at start).
        self._resumable: set[str] = set()

    # -- what an item is ------------------------------------------------------------
    @abstractmethod
    async def drive(self, item_id: str, cancel_requested: Callable[[], bool]) -> None:
        """Drive the item until it ends or gives up its lease. Cancelled by a
        user's cancel (``cancel_requested()`` is then true) or a shutdown."""

    @abstractmethod
    async def crashed(self, item_id: str) -> None:
        """:meth:`drive` raised: deal with the item."""

    @abstractmethod
    async def sweep(self) -> None:
        """End items nobody drives that are past their deadline or wait."""

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(loop(), name=f"{self.kind}-{name}-{self.id}")
            for name, loop in (("claim", self._claim_loop), ("lease", self._lease_loop),
                               ("sweep", self._sweep_loop))
        ]

    async def stop(self) -> None:
        """Stop claiming; hand every item in hand back for another worker."""
        self._stopping = True
        await cancel_all(self._tasks)
        await cancel_all(list(self._running.values()))

    @property
    def active_runs(self) -> set[str]:
        return set(self._running)

    # -- claiming -------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        await self._find_left_behind()
        with self.notifier.subscribe(self.claim_topic) as waiter:
            while not self._stopping:
                claimed = 0
                while len(self._running) < self.slots:
                    item_id = await self._claim_one()
                    if item_id is None:
                        break
                    claimed += 1
                    self._running[item_id] = asyncio.create_task(
                        self._drive(item_id), name=f"{self.kind}-{item_id}")
                if not claimed:
                    await waiter.wait(self.poll)

    async def _find_left_behind(self) -> None:
        try:
            async with self.db.read() as conn:
                self._resumable = await self.queue.held_by(conn, self.id)
        except Exception:
            log.exception("%s: looking up the items left under %s failed; they wait for "
                          "their leases", self.kind, self.id)
            return
        if self._resumable:
            log.info("%s worker %s resumes %d item(s) left by its previous process",
                     self.kind, self.id, len(self._resumable))

    async def _claim_one(self) -> str | None:
        try:
            async with self.db.write() as conn:
                item_id = await self.queue.claim(conn, self.id, utcnow() + self.lease,
                                                 set(self._running), self._resumable)
        except Exception:
            log.exception("%s claim failed; retrying", self.kind)
            return None
        if item_id is None:
            # Nothing claimable, so none of the left items is any longer ours
            # to resume (ended, or taken by another worker): stop naming them.
            self._resumable.clear()
        else:
            self._resumable.discard(item_id)
        return item_id

    async def _drive(self, item_id: str) -> None:
        try:
            await self.drive(item_id, lambda: item_id in self._cancelling)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s %s: the driver stopped on an error", self.kind, item_id)
            await self.crashed(item_id)
        finally:
            self._running.pop(item_id, None)
            self._cancelling.discard(item_id)
            self._cancel_sent.pop(item_id, None)
            self.notifier.wake_local(self.claim_topic, "*")

    # -- leases and cancellation ------------------------------------------------------
    async def _lease_loop(self) -> None:
        renew_every = self.lease.total_seconds() / 3
        last_renew = 0.0
        loop = asyncio.get_running_loop()
        with self.notifier.subscribe(self.cancel_topic) as waiter:
            while not self._stopping:
                ids = list(self._running)
                cancelled: set[str] = set()
                try:
                    if loop.time() - last_renew >= renew_every:
                        async with self.db.write() as conn:
                            held = await self.queue.renew(conn, self.id, ids, utcnow() + self.lease)
                        last_renew = loop.time()
                        for lost in set(ids) - held:
                            # An item that ended during the renewal is not held
                            # either, and has left (or is leaving) _running.
                            task = self._running.get(lost)
                            if task is not None and not task.done():
                                log.warning("%s %s: lease lost; stopping", self.kind, lost)
                                task.cancel()
                    async with self.db.read() as conn:
                        cancelled = await self.queue.cancel_requested_among(conn, ids)
                except Exception:
                    log.exception("%s lease upkeep failed; retrying", self.kind)
                self._interrupt(cancelled, loop.time())
                await waiter.wait(min(self.poll, renew_every))

    def _interrupt(self, cancelled: set[str], now: float) -> None:
        for item_id in cancelled:
            task = self._running.get(item_id)
            sent = self._cancel_sent.get(item_id)
            if task is None or (sent is not None and (
                    self.recancel_seconds is None or now - sent <= self.recancel_seconds)):
                continue
            self._cancelling.add(item_id)
            self._cancel_sent[item_id] = now
            task.cancel()

    # -- sweeping ---------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while not self._stopping:
            try:
                await self.sweep()
            except Exception:
                log.exception("%s sweep failed; retrying", self.kind)
            await asyncio.sleep(self.poll)
