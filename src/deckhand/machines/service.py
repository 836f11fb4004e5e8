"""Machines as the rest of Deckhand sees them: provisioned, reached, stopped,
started, snapshotted, metered, deleted.

Local machines get their own machine-agent process from
:class:`LocalMachineProvider` (or a spare of the :class:`WarmPool`); remote
ones are agents an operator started on another host and registered. Every
machine, local or not, is reached through a :class:`RemoteMachine` client
built from its record.

Provisioning is asynchronous (``creating`` → ``running``): the agent is
started in the background and ``provision`` waits a bounded time for it, so
a fast start answers ``running`` and a slow one ``creating``. ``connect``
waits for a machine that is still coming up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from deckhand import crypto, ids
from deckhand.config import Settings
from deckhand.core.clock import utcnow
from deckhand.errors import (
    DeckhandError,
    ErrorCode,
    InvalidState,
    MachineError,
    NotFound,
    ValidationFailed,
)
from deckhand.machine_agent import Limits
from deckhand.machines import billing, snapshots
from deckhand.machines.local import AgentHandle, LocalMachineProvider
from deckhand.machines.pool import WarmPool
from deckhand.machines.remote import RemoteMachine
from deckhand.store import machines as store
from deckhand.store.db import Database
from deckhand.store.machines import GONE
from deckhand.store.records import Machine, Snapshot

log = logging.getLogger("deckhand.machines")
TOKEN_PURPOSE = "machine-agent-token"
COMING_UP = frozenset({"creating", "provisioning", "starting", "restarting"})
CONNECT_WAIT_S = 60.0
ACTIVITY_WRITE_EVERY_S = 60.0


@dataclass(frozen=True)
class Spec:
    """What to provision (the API's ProvisionRequest, plus Deckhand's additions)."""

    display_name: str
    os_type: str = "linux"
    desktop_enabled: bool = False
    cpu_cores: int | None = None
    memory_gb: int | None = None
    storage_gb: int | None = None
    restore_from_snapshot: bool | None = False
    ttl_minutes: int | None = None
    metadata: dict[str, str] | None = None
    agent_url: str | None = None
    agent_token: str | None = None


def kind_of(spec: Any) -> str:
    if spec.desktop_enabled:
        return "desktop"
    wanted = (spec.metadata or {}).get("kind", "terminal")
    if wanted not in ("terminal", "browser"):
        raise ValidationFailed('metadata.kind: "terminal" or "browser" (a desktop machine is '
                               "asked for with desktop_enabled: true)")
    return wanted


def network_of(metadata: dict[str, str] | None) -> bool:
    return (metadata or {}).get("network", "on") != "off"


class MachineService:
    def __init__(self, db: Database, secret: bytes, provider: LocalMachineProvider,
                 settings: Settings | None = None) -> None:
        self.db = db
        self.secret = secret
        self.provider = provider
        self.settings = settings or Settings(data_dir=provider.data_dir)
        s = self.settings
        self.pool = WarmPool(provider, {"terminal": s.machine_pool_terminal,
                                        "browser": s.machine_pool_browser,
                                        "desktop": s.machine_pool_desktop})
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0))
        self._clients: dict[str, RemoteMachine] = {}
        self._bringing_up: dict[str, asyncio.Task[None]] = {}
        self._active: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ service

    async def start(self) -> None:
        """After a restart: stop the agents of machines the database no longer
        keeps, re-attach the others, fill the warm pool, sweep."""
        await self.stop_orphans()
        await self.reattach()
        await self.pool.start()
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._bringing_up.values()):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 15.0)
        await self.pool.close()
        await self.http.aclose()

    def _lock(self, machine_id: str) -> asyncio.Lock:
        return self._locks.setdefault(machine_id, asyncio.Lock())

    async def _get(self, machine_id: str) -> Machine:
        async with self.db.read() as conn:
            row = await store.get(conn, machine_id)
        if row is None:
            raise NotFound(f"Machine {machine_id} not found.")
        return row

    # ------------------------------------------------------------------ provision

    async def provision(self, *, account_id: str, mode: str, request: Any) -> Machine:
        """Create a machine: local (started in the background, waited for a
        bounded time) or, with ``agent_url``/``agent_token``, a remote agent."""
        agent_url = getattr(request, "agent_url", None)
        if agent_url:
            return await self.register_remote(account_id=account_id, mode=mode, request=request)
        kind = kind_of(request)
        network = network_of(request.metadata)
        machine_id = ids.machine_id(test=mode == "test")
        now = utcnow()
        snapshot = None
        async with self.db.write() as conn:
            await self._check_limit(conn, account_id, mode)
            if request.restore_from_snapshot:
                snapshot = await store.find_snapshot(
                    conn, account_id, mode, (request.metadata or {}).get("snapshot_id"))
                if snapshot is None:
                    raise NotFound("restore_from_snapshot: this account has no snapshot "
                                   "(POST /v1/machines/{id}/snapshot makes one; "
                                   "metadata.snapshot_id picks one).")
            await store.insert(conn, {
                "id": machine_id, "account_id": account_id, "mode": mode,
                "display_name": request.display_name, "status": "creating",
                "os_type": request.os_type, "desktop_enabled": kind == "desktop",
                "cpu_cores": request.cpu_cores or 1, "memory_gb": request.memory_gb or 2,
                "storage_gb": request.storage_gb or 10, "metadata": request.metadata or {},
                "ttl_minutes": request.ttl_minutes,
                "auto_destroy_at": (now + timedelta(minutes=request.ttl_minutes)
                                    if request.ttl_minutes else None),
                "provider": "local", "created_at": now, "kind": kind, "last_active_at": now,
            })
        limits = self.provider.limits(request.memory_gb, request.cpu_cores)
        task = asyncio.create_task(self._bring_up(machine_id, kind, network, snapshot, limits))
        self._bringing_up[machine_id] = task
        task.add_done_callback(lambda _t: self._bringing_up.pop(machine_id, None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), self.settings.machine_provision_wait_seconds)
        row = await self._get(machine_id)
        if row.status == "error":
            raise MachineError(f"Machine {machine_id} could not be started: {row.error}")
        return row

    async def _check_limit(self, conn: Any, account_id: str, mode: str) -> None:
        await store.lock_account(conn, account_id)
        limit = self.settings.machine_limit_per_account
        active = await store.count_active(conn, account_id, mode)
        if active >= limit:
            raise DeckhandError(
                f"Machine limit reached: this account has {active} machines running or "
                f"starting (limit {limit}). Stop or delete one (POST /v1/machines/{{id}}/stop, "
                "DELETE /v1/machines/{id}) before provisioning another.",
                code=ErrorCode.CONFLICT, examples={"limit": limit, "active": active},
            )

    async def _bring_up(self, machine_id: str, kind: str, network: bool,
                        snapshot: Snapshot | None = None,
                        limits: Limits | None = None) -> None:
        try:
            handle = None
            if snapshot is not None:
                archive = snapshots.snapshot_path(self.settings.data_dir, snapshot.id)
                await asyncio.to_thread(snapshots.restore, archive,
                                        self.provider.machine_dir(machine_id))
            elif network:
                handle = await self.pool.take(kind, machine_id, limits)
            if handle is None:
                handle = await self.provider.create(machine_id, network=network, kind=kind,
                                                    limits=limits)
        except (MachineError, snapshots.SnapshotError, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            log.warning("machine %s did not start: %s", machine_id, message)
            async with self.db.write() as conn:
                await store.set_fields(conn, machine_id, status="error", error=message)
            return
        now = utcnow()
        async with self.db.write() as conn:
            row = await store.get(conn, machine_id)
            if row is None or row.status in GONE:
                gone = True  # deleted while starting
            else:
                gone = False
                await store.set_fields(conn, machine_id, **self._running_fields(handle, now))
        if gone:
            with contextlib.suppress(MachineError):
                await self.provider.destroy(machine_id)

    def _running_fields(self, handle: AgentHandle, now: Any) -> dict[str, Any]:
        return {"status": "running", "started_at": now, "agent_url": handle.url,
                "agent_token_sealed": crypto.seal(self.secret, TOKEN_PURPOSE, handle.token),
                "billing_since": now, "stopped_at": None, "error": None,
                "suspended_for_billing": False}

    async def wait_running(self, machine_id: str, timeout: float) -> Machine:
        deadline = time.monotonic() + timeout
        while True:
            task = self._bringing_up.get(machine_id)
            if task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task),
                                           max(0.0, deadline - time.monotonic()))
            row = await self._get(machine_id)
            if row.status not in COMING_UP or time.monotonic() > deadline:
                return row
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ remote

    async def register_remote(self, *, account_id: str, mode: str, request: Any) -> Machine:
        """Register an agent started by hand on another host (``deckhand
        machine-agent --listen HOST:PORT``): it is claimed with the new
        machine's id and reached like any local one."""
        url = str(request.agent_url).rstrip("/")
        token = request.agent_token or ""
        if not url.startswith(("http://", "https://")) or not token:
            raise ValidationFailed("agent_url (http(s)://HOST:PORT) and agent_token are both "
                                   "required to register a remote machine agent.")
        machine_id = ids.machine_id(test=mode == "test")
        probe = RemoteMachine(machine_id, url, token, http=self.http)
        try:
            info = await probe.info()
            if info.get("machine_id") is not None:
                raise InvalidState(f"The agent at {url} already serves machine "
                                   f"{info['machine_id']}; start another agent or delete "
                                   "that machine first.")
            kinds = info.get("kinds") or []
            kind = "desktop" if "desktop" in kinds else "browser" if "browser" in kinds \
                else "terminal"
            now = utcnow()
            async with self.db.write() as conn:
                await self._check_limit(conn, account_id, mode)
                await store.insert(conn, {
                    "id": machine_id, "account_id": account_id, "mode": mode,
                    "display_name": request.display_name, "status": "creating",
                    "os_type": request.os_type, "desktop_enabled": kind == "desktop",
                    "cpu_cores": request.cpu_cores or 1, "memory_gb": request.memory_gb or 2,
                    "storage_gb": request.storage_gb or 10,
                    "metadata": request.metadata or {}, "ttl_minutes": request.ttl_minutes,
                    "auto_destroy_at": (now + timedelta(minutes=request.ttl_minutes)
                                        if request.ttl_minutes else None),
                    "provider": "remote", "created_at": now, "kind": kind,
                    "last_active_at": now,
                })
            try:
                await probe.claim(machine_id, network=network_of(request.metadata),
                                  limits=self.provider.limits(request.memory_gb,
                                                              request.cpu_cores).to_json())
            except MachineError as exc:
                async with self.db.write() as conn:
                    await store.set_fields(conn, machine_id, status="error", error=exc.message)
                raise
        except MachineError as exc:
            raise DeckhandError(f"The machine agent at {url} cannot be registered: "
                                f"{exc.message}", code=ErrorCode.MACHINE_ERROR) from exc
        handle = AgentHandle(machine_id, url, token, 0)
        async with self.db.write() as conn:
            await store.set_fields(conn, machine_id, **self._running_fields(handle, utcnow()))
        return await self._get(machine_id)

    # ------------------------------------------------------------------ lifecycle

    async def terminate(self, row: Machine) -> Machine:
        """Stop every process of the machine and remove its workspace
        (idempotent: a terminated machine is answered as it is)."""
        async with self._lock(row.id):
            row = await self._get(row.id)
            if row.status in GONE:
                return row
            task = self._bringing_up.get(row.id)
            await self._settle(row)
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="deleting")
            if task is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(task), 30.0)
            await self._drop_client(row.id)
            if row.provider == "local":
                await self.provider.destroy(row.id)
            elif row.agent_url and row.agent_token_sealed:
                client = self._client_for(row)
                with contextlib.suppress(MachineError):
                    await client.release()
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="terminated",
                                       terminated_at=utcnow(), billing_since=None)
        self._active.pop(row.id, None)
        return await self._get(row.id)

    async def stop_machine(self, row: Machine, *, suspended: bool = False) -> Machine:
        async with self._lock(row.id):
            row = await self._get(row.id)
            if row.status != "running":
                raise InvalidState(f"Machine {row.id} is {row.status}: only a running "
                                   "machine can be stopped.")
            await self._settle(row)
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="stopping")
            await self._drop_client(row.id)
            if row.provider == "local":
                await self.provider.stop(row.id)
            now = utcnow()
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="stopped", stopped_at=now,
                                       billing_since=now, suspended_for_billing=suspended)
        return await self._get(row.id)

    async def start_machine(self, row: Machine) -> Machine:
        async with self._lock(row.id):
            row = await self._get(row.id)
            if row.status not in ("stopped", "suspended"):
                raise InvalidState(f"Machine {row.id} is {row.status}: only a stopped "
                                   "machine can be started.")
            async with self.db.write() as conn:
                await self._check_limit(conn, row.account_id, row.mode)
            await self._settle(row)  # the stopped segment, at the stopped rate
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="starting")
            await self._come_up(row)
        return await self._get(row.id)

    async def restart_machine(self, row: Machine) -> Machine:
        async with self._lock(row.id):
            row = await self._get(row.id)
            if row.status != "running":
                raise InvalidState(f"Machine {row.id} is {row.status}: only a running "
                                   "machine can be restarted.")
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="restarting")
            await self._drop_client(row.id)
            if row.provider == "local":
                await self.provider.stop(row.id)
            await self._come_up(row, keep_segment=True)
        return await self._get(row.id)

    async def _come_up(self, row: Machine, *, keep_segment: bool = False) -> None:
        try:
            if row.provider == "local":
                handle = await self.provider.create(
                    row.id, network=network_of(row.metadata), kind=row.kind,
                    limits=self.provider.limits(row.memory_gb, row.cpu_cores))
            else:
                handle = AgentHandle(row.id, row.agent_url, crypto.open_sealed(
                    self.secret, TOKEN_PURPOSE, row.agent_token_sealed), 0)
                if not await self._client_for(row).health():
                    raise MachineError(f"the remote agent at {row.agent_url} does not answer")
        except MachineError as exc:
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="error", error=exc.message)
            raise
        fields = self._running_fields(handle, utcnow())
        if keep_segment:
            fields.pop("billing_since")
            fields.pop("started_at")
        async with self.db.write() as conn:
            await store.set_fields(conn, row.id, **fields)

    async def update_ttl(self, row: Machine, ttl_minutes: int) -> Machine:
        if row.status in GONE:
            raise InvalidState(f"Machine {row.id} is {row.status}.")
        at = None if ttl_minutes == 0 else utcnow() + timedelta(minutes=ttl_minutes)
        async with self.db.write() as conn:
            await store.set_fields(conn, row.id, ttl_minutes=ttl_minutes or None,
                                   auto_destroy_at=at)
        return await self._get(row.id)

    # ------------------------------------------------------------------ snapshots

    async def snapshot(self, row: Machine, name: str | None = None) -> Any:
        if row.status not in ("running", "stopped", "suspended"):
            raise InvalidState(f"Machine {row.id} is {row.status}: snapshots are taken of "
                               "running or stopped machines.")
        if row.provider != "local":
            raise InvalidState("Snapshots are taken of local machines; this one is a "
                               "registered remote agent.")
        snapshot_id = "snap_" + ids.new_uuid().replace("-", "")[:24]
        fee = 0 if row.mode == "test" else self.settings.machine_snapshot_credits
        async with self.db.write() as conn:
            number = await store.count_snapshots(conn, row.id) + 1
            charged = await store.charge_fee(conn, account_id=row.account_id, mode=row.mode,
                                             machine_id=row.id, credits=fee,
                                             kind="machine_snapshot", number=number)
        target = snapshots.snapshot_path(self.settings.data_dir, snapshot_id)
        mdir = self.provider.machine_dir(row.id)
        size = await asyncio.to_thread(snapshots.create, mdir.resolve(), target)
        now = utcnow()
        values = {"id": snapshot_id, "account_id": row.account_id, "mode": row.mode,
                  "machine_id": row.id, "name": name or f"{row.display_name} {now:%Y-%m-%d %H:%M}",
                  "kind": row.kind, "path": str(target), "size_bytes": size,
                  "credits_charged": charged, "created_at": now}
        async with self.db.write() as conn:
            await store.insert_snapshot(conn, values)
        return values

    # ------------------------------------------------------------------ reaching it

    async def connect(self, machine_id: str) -> RemoteMachine:
        """A client of the machine's agent (what the runner and the API act
        through). Waits for a machine that is still coming up."""
        self.touch(machine_id)
        client = self._clients.get(machine_id)
        if client is not None:
            return client
        row = await self._get_or_unavailable(machine_id)
        if row.status in COMING_UP:
            row = await self.wait_running(machine_id, CONNECT_WAIT_S)
        if row.status in GONE:
            raise MachineError(f"Machine {machine_id} no longer exists.",
                               code=ErrorCode.MACHINE_UNAVAILABLE)
        if row.status != "running" or not row.agent_url or not row.agent_token_sealed:
            raise MachineError(f"Machine {machine_id} is {row.status}, not running.",
                               code=ErrorCode.MACHINE_UNAVAILABLE)
        return self._client_for(row)

    async def _get_or_unavailable(self, machine_id: str) -> Machine:
        async with self.db.read() as conn:
            row = await store.get(conn, machine_id)
        if row is None:
            raise MachineError(f"Machine {machine_id} no longer exists.",
                               code=ErrorCode.MACHINE_UNAVAILABLE)
        return row

    def _client_for(self, row: Machine) -> RemoteMachine:
        client = self._clients.get(row.id)
        if client is None or client.base_url != (row.agent_url or "").rstrip("/"):
            token = crypto.open_sealed(self.secret, TOKEN_PURPOSE, row.agent_token_sealed)
            client = RemoteMachine(row.id, row.agent_url, token, http=self.http)
            self._clients[row.id] = client
        return client

    async def _drop_client(self, machine_id: str) -> None:
        client = self._clients.pop(machine_id, None)
        if client is not None:
            await client.aclose()

    def touch(self, machine_id: str) -> None:
        """Note that the machine is in use (idle clean-up)."""
        self._active[machine_id] = time.time()

    # ------------------------------------------------------------------ restart

    async def stop_orphans(self) -> list[str]:
        """Destroy (stop the agent, remove the directory, as :meth:`terminate`
        does) each local machine whose row is gone or terminated, or was
        being deleted when the server died: agents outlive the server on
        purpose, and nothing else would ever stop these. Returns their ids.
        Agents whose directory is gone (removed by hand, or with the data
        dir) are stopped too."""
        for pid in await self.provider.stop_strays():
            log.info("stopped machine agent %d: its directory under the data dir is gone", pid)
        found = self.provider.machine_ids()
        if not found:
            return []
        async with self.db.read() as conn:
            rows = {machine_id: await store.get(conn, machine_id) for machine_id in found}
        stopped = []
        for machine_id, row in rows.items():
            if row is not None and row.status not in GONE:
                continue
            try:
                await self.provider.destroy(machine_id)
            except (MachineError, OSError) as exc:
                log.warning("machine %s: its orphaned agent could not be stopped: %s",
                            machine_id, exc)
                continue
            log.info("machine %s: stopped the agent of a machine that is %s", machine_id,
                     "gone from the database" if row is None else row.status)
            if row is not None and row.status == "deleting":
                async with self.db.write() as conn:
                    await store.set_fields(conn, machine_id, status="terminated",
                                           terminated_at=utcnow(), billing_since=None)
            stopped.append(machine_id)
        return stopped

    async def reattach(self) -> None:
        """After a restart: find each local machine's agent again, or start a
        new one on the same workspace if it died with the host."""
        async with self.db.read() as conn:
            rows = await store.local_to_restore(conn)
        for row in rows:
            try:
                handle = await self.provider.attach(row.id)
                if handle is None:
                    handle = await self.provider.create(
                        row.id, network=network_of(row.metadata), kind=row.kind,
                        limits=self.provider.limits(row.memory_gb, row.cpu_cores))
            except MachineError as exc:
                log.warning("machine %s could not be restarted: %s", row.id, exc.message)
                async with self.db.write() as conn:
                    await store.set_fields(conn, row.id, status="error", error=exc.message)
                continue
            fields = self._running_fields(handle, utcnow())
            if row.status == "running":
                fields.pop("billing_since")
                fields.pop("started_at")
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, **fields)

    # ------------------------------------------------------------------ sweep

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.machine_sweep_seconds)
            try:
                await self.sweep()
            except (DeckhandError, OSError) as exc:
                log.warning("machine sweep: %s", exc)
            except Exception:  # the sweeper must outlive one bad round
                log.exception("machine sweep failed")

    async def sweep(self) -> list[tuple[str, str]]:
        """One round: destroy machines past their TTL, stop idle ones, debit
        runtime (stopping machines whose wallet ran dry). Returns what it did."""
        done: list[tuple[str, str]] = []
        now = utcnow()
        await self._flush_activity()
        async with self.db.read() as conn:
            rows = await store.due_for_sweep(conn)
        idle = self.settings.machine_idle_minutes
        for row in rows:
            try:
                if row.auto_destroy_at is not None and row.auto_destroy_at <= now:
                    await self.terminate(row)
                    done.append((row.id, "ttl"))
                    continue
                if (idle and row.status == "running" and row.last_active_at is not None
                        and row.last_active_at <= now - timedelta(minutes=idle)):
                    await self.stop_machine(row)
                    done.append((row.id, "idle"))
                    continue
                if row.mode != "test" and row.billing_since is not None:
                    dry = await self._settle(row)
                    if dry and row.status == "running":
                        await self.stop_machine(row, suspended=True)
                        done.append((row.id, "suspended"))
            except (DeckhandError, OSError) as exc:
                log.warning("machine %s: sweep: %s", row.id, exc)
        return done

    async def _settle(self, row: Machine) -> bool:
        """Debit the machine's runtime so far; True when the wallet ran dry."""
        if row.billing_since is None:
            return False
        now = utcnow()
        async with self.db.write() as conn:
            fresh = await store.get(conn, row.id)
            if fresh is None or fresh.billing_since is None:
                return False
            credits, carry = billing.settlement(fresh, now)
            if fresh.mode == "test":
                credits, carry = 0, 0
            _, dry = await store.debit_runtime(conn, fresh, credits=credits, carry=carry,
                                               since=now)
        return dry

    async def _flush_activity(self) -> None:
        if not self._active:
            return
        seen, self._active = self._active, {}
        async with self.db.write() as conn:
            for machine_id, at in seen.items():
                await store.set_fields(conn, machine_id,
                                       last_active_at=utcnow() - timedelta(
                                           seconds=max(0.0, time.time() - at)))
