"""Machines as the rest of Deckhand sees them: provisioned, reached, deleted.

Local machines get their own machine-agent process from
:class:`LocalMachineProvider`; every machine, local or not, is reached
through a :class:`RemoteMachine` client built from its record.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from deckhand import crypto, ids
from deckhand.errors import ErrorCode, MachineError
from deckhand.machines.local import LocalMachineProvider
from deckhand.machines.remote import RemoteMachine
from deckhand.store import machines as store
from deckhand.store.db import Database
from deckhand.store.machines import GONE, MachineRow
from deckhand.store.types import utcnow

log = logging.getLogger("deckhand.machines")
TOKEN_PURPOSE = "machine-agent-token"


class MachineService:
    def __init__(self, db: Database, secret: bytes, provider: LocalMachineProvider) -> None:
        self.db = db
        self.secret = secret
        self.provider = provider
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0))
        self._clients: dict[str, RemoteMachine] = {}

    async def close(self) -> None:
        await self.http.aclose()

    async def provision(self, *, account_id: str, mode: str, request: Any) -> MachineRow:
        """Create a local machine and start its agent."""
        machine_id = ids.machine_id(test=mode == "test")
        now = utcnow()
        async with self.db.write() as conn:
            await store.insert(conn, {
                "id": machine_id, "account_id": account_id, "mode": mode,
                "display_name": request.display_name, "status": "creating",
                "os_type": request.os_type, "desktop_enabled": request.desktop_enabled,
                "cpu_cores": request.cpu_cores or 1, "memory_gb": request.memory_gb or 2,
                "storage_gb": request.storage_gb or 10, "metadata": request.metadata or {},
                "ttl_minutes": request.ttl_minutes,
                "auto_destroy_at": None, "provider": "local", "created_at": now,
            })
        network = (request.metadata or {}).get("network", "on") != "off"
        try:
            handle = await self.provider.create(machine_id, network=network)
        except MachineError as exc:
            async with self.db.write() as conn:
                await store.set_fields(conn, machine_id, status="error", error=exc.message)
            raise
        async with self.db.write() as conn:
            await store.set_fields(
                conn, machine_id, status="running", started_at=utcnow(), agent_url=handle.url,
                agent_token_sealed=crypto.seal(self.secret, TOKEN_PURPOSE, handle.token),
            )
            row = await store.get(conn, machine_id)
        assert row is not None
        return row

    async def terminate(self, row: MachineRow) -> MachineRow:
        """Stop every process of the machine and remove its workspace."""
        if row.status not in GONE:
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="deleting")
            client = self._clients.pop(row.id, None)
            if client is not None:
                await client.aclose()
            if row.provider == "local":
                await self.provider.destroy(row.id)
            async with self.db.write() as conn:
                await store.set_fields(conn, row.id, status="terminated",
                                       terminated_at=utcnow())
        async with self.db.read() as conn:
            fresh = await store.get(conn, row.id)
        assert fresh is not None
        return fresh

    async def connect(self, machine_id: str) -> RemoteMachine:
        """A client of the machine's agent (what the runner acts through)."""
        client = self._clients.get(machine_id)
        if client is not None:
            return client
        async with self.db.read() as conn:
            row = await store.get(conn, machine_id)
        if row is None or row.status in GONE:
            raise MachineError(f"Machine {machine_id} no longer exists.",
                               code=ErrorCode.MACHINE_UNAVAILABLE)
        if row.status != "running" or not row.agent_url or not row.agent_token_sealed:
            raise MachineError(f"Machine {machine_id} is {row.status}, not running.",
                               code=ErrorCode.MACHINE_UNAVAILABLE)
        token = crypto.open_sealed(self.secret, TOKEN_PURPOSE, row.agent_token_sealed)
        client = RemoteMachine(machine_id, row.agent_url, token, http=self.http)
        self._clients[machine_id] = client
        return client

    async def reattach(self) -> None:
        """After a restart: find each local machine's agent again, or start a
        new one on the same workspace if it died with the host."""
        async with self.db.read() as conn:
            rows = await store.live_local(conn)
        for row in rows:
            try:
                handle = await self.provider.attach(row.id)
                if handle is None:
                    network = (row.metadata or {}).get("network", "on") != "off"
                    handle = await self.provider.create(row.id, network=network)
            except MachineError as exc:
                log.warning("machine %s could not be restarted: %s", row.id, exc.message)
                async with self.db.write() as conn:
                    await store.set_fields(conn, row.id, status="error", error=exc.message)
                continue
            async with self.db.write() as conn:
                await store.set_fields(
                    conn, row.id, status="running", agent_url=handle.url,
                    agent_token_sealed=crypto.seal(self.secret, TOKEN_PURPOSE, handle.token),
                )
