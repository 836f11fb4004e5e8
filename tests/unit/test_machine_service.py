"""The machine service (machines/service.py) on a real SQLite database with
the real local provider: provisioning, reaching, stopping, starting and
deleting a machine, the states it passes through, the per-account limit,
TTLs and the sweep, and provisioning from the warm pool."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from deckhand.config import Settings
from deckhand.core.actions import RunCommand
from deckhand.core.clock import utcnow
from deckhand.errors import (
    DeckhandError,
    ErrorCode,
    InvalidState,
    MachineError,
    NotFound,
    ValidationFailed,
)
from deckhand.machines.local import LocalMachineProvider
from deckhand.machines.service import MachineService, Spec
from deckhand.store import machines as machines_store
from deckhand.store.db import Database
from deckhand.store.tables import machines as machines_table
from tests.conftest import make_settings
from tests.support import engine as eng
from tests.support.deployment import poll

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap not installed")

@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    async with eng.migrated(sqlite_url) as database:
        yield database


@contextlib.asynccontextmanager
async def service(db: Database, settings: Settings) -> AsyncIterator[MachineService]:
    """A started service; every machine it left is terminated at the end, so
    no agent process outlives the test."""
    settings.ensure_data_dir()
    svc = MachineService(db, eng.SECRET, LocalMachineProvider(settings.data_dir), settings)
    await svc.start()
    try:
        yield svc
    finally:
        async with db.read() as conn:
            rows = (await conn.execute(select(machines_table.c.id).where(
                machines_table.c.status != "terminated"))).scalars().all()
        for machine_id in rows:
            row = await machines_store_get(db, machine_id)
            with contextlib.suppress(DeckhandError, OSError):
                await svc.terminate(row)
        await svc.close()


@contextlib.asynccontextmanager
async def warm_service(db: Database, tmp_path: Path, sqlite_url: str
                       ) -> AsyncIterator[tuple[MachineService, Callable[[], Awaitable[bool]]]]:
    """A started service with a pool of one terminal, once its spare is up;
    and the check "the pool holds one spare" (to wait for its refill)."""
    async with service(db, _settings(tmp_path, sqlite_url, machine_pool_terminal=1)) as svc:
        async def one_spare() -> bool:
            return svc.pool.available("terminal") == 1

        await poll(one_spare, timeout=30, what="a warm terminal spare")
        yield svc, one_spare


async def machines_store_get(db: Database, machine_id: str) -> machines_store.Machine:
    async with db.read() as conn:
        row = await machines_store.get(conn, machine_id)
    assert row is not None
    return row


async def _machine_ids(db: Database, account_id: str) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(select(machines_table.c.id).where(
            machines_table.c.account_id == account_id))).scalars().all())


def _settings(tmp_path: Path, sqlite_url: str, **overrides: object) -> Settings:
    return make_settings(tmp_path, sqlite_url, **overrides)


@needs_bwrap
async def test_a_machine_goes_through_its_states_and_is_reached_while_running(
        db: Database, tmp_path: Path, sqlite_url: str) -> None:
    account = await eng.account(db)
    async with service(db, _settings(tmp_path, sqlite_url)) as svc:
        row = await svc.provision(account_id=account, mode="live",
                                  request=Spec(display_name="build box"))
        assert (row.status, row.kind, row.provider, row.display_name) == (
            "running", "terminal", "local", "build box")
        assert row.agent_url and row.agent_url.startswith("http://127.0.0.1:")
        assert row.agent_token_sealed and row.started_at is not None
        workspace = svc.provider.workspace(row.id)
        assert workspace.is_dir()

        machine = await svc.connect(row.id)
        result = await machine.act(RunCommand(command="echo $((6 * 7))"))
        assert (result.ok, result.output.strip()) == (True, "42")
        assert await svc.connect(row.id) is machine  # one client per machine

        stopped = await svc.stop_machine(row)
        assert (stopped.status, stopped.stopped_at is not None) == ("stopped", True)
        assert workspace.is_dir()  # stopping keeps the workspace
        with pytest.raises(MachineError) as unavailable:
            await svc.connect(row.id)
        assert unavailable.value.code is ErrorCode.MACHINE_UNAVAILABLE
        with pytest.raises(InvalidState, match="only a running machine can be stopped"):
            await svc.stop_machine(stopped)

        started = await svc.start_machine(stopped)
        assert (started.status, started.stopped_at) == ("running", None)
        with pytest.raises(InvalidState, match="only a stopped machine can be started"):
            await svc.start_machine(started)
        again = await (await svc.connect(row.id)).act(RunCommand(command="echo back"))
        assert again.output.strip() == "back"

        gone = await svc.terminate(started)
        assert (gone.status, gone.terminated_at is not None) == ("terminated", True)
        assert not workspace.exists()
        assert (await svc.terminate(gone)).status == "terminated"  # idempotent
        with pytest.raises(MachineError, match="no longer exists"):
            await svc.connect(row.id)


async def test_the_account_limit_refuses_another_machine_before_starting_it(
        db: Database, tmp_path: Path, sqlite_url: str) -> None:
    account = await eng.account(db)
    existing = await eng.machine(db, account)  # counts as running
    async with service(db, _settings(tmp_path, sqlite_url,
                                     machine_limit_per_account=1)) as svc:
        with pytest.raises(DeckhandError) as refused:
            await svc.provision(account_id=account, mode="live", request=Spec(display_name="b"))
        assert refused.value.code is ErrorCode.CONFLICT
        assert refused.value.examples == {"limit": 1, "active": 1}
        assert await _machine_ids(db, account) == [existing]


async def test_an_unknown_kind_and_a_missing_snapshot_are_refused(
        db: Database, tmp_path: Path, sqlite_url: str) -> None:
    account = await eng.account(db)
    async with service(db, _settings(tmp_path, sqlite_url)) as svc:
        with pytest.raises(ValidationFailed, match="metadata.kind"):
            await svc.provision(account_id=account, mode="live",
                                request=Spec(display_name="g", metadata={"kind": "gpu"}))
        with pytest.raises(NotFound, match="no snapshot"):
            await svc.provision(account_id=account, mode="live",
                                request=Spec(display_name="s", restore_from_snapshot=True))
        assert await _machine_ids(db, account) == []


async def test_a_ttl_is_set_cleared_and_refused_on_a_gone_machine(
        db: Database, tmp_path: Path, sqlite_url: str) -> None:
    account = await eng.account(db)
    machine_id = await eng.machine(db, account, status="stopped")
    async with service(db, _settings(tmp_path, sqlite_url)) as svc:
        before = utcnow()
        row = await svc.update_ttl(await machines_store_get(db, machine_id), 30)
        assert row.ttl_minutes == 30 and row.auto_destroy_at is not None
        assert before + timedelta(minutes=30) <= row.auto_destroy_at
        assert row.auto_destroy_at <= utcnow() + timedelta(minutes=30)
        cleared = await svc.update_ttl(row, 0)
        assert (cleared.ttl_minutes, cleared.auto_destroy_at) == (None, None)

        gone = await eng.machine(db, account, status="terminated")
        with pytest.raises(InvalidState):
            await svc.update_ttl(await machines_store_get(db, gone), 5)


async def test_the_sweep_terminates_a_machine_past_its_ttl(
        db: Database, tmp_path: Path, sqlite_url: str) -> None:
    account = await eng.account(db)
    expired = await eng.machine(db, account, status="stopped")
    keeps = await eng.machine(db, account, status="stopped")
    async with db.write() as conn:
        await machines_store.set_fields(conn, expired, ttl_minutes=1,
                                        auto_destroy_at=utcnow() - timedelta(seconds=1))
        await machines_store.set_fields(conn, keeps, ttl_minutes=60,
                                        auto_destroy_at=utcnow() + timedelta(hours=1))
    async with service(db, _settings(tmp_path, sqlite_url)) as svc:
        done = await svc.sweep()
        assert done == [(expired, "ttl")]
        assert (await machines_store_get(db, expired)).status == "terminated"
        assert (await machines_store_get(db, keeps)).status == "stopped"


async def test_getting_a_machine_that_does_not_exist_is_not_found_or_unavailable(
        db: Database, tmp_path: Path, sqlite_url: str) -> None:
    async with service(db, _settings(tmp_path, sqlite_url)) as svc:
        with pytest.raises(MachineError) as caught:
            await svc.connect("mch_nothing_here")
        assert caught.value.code is ErrorCode.MACHINE_UNAVAILABLE
        assert caught.value.message == "Machine mch_nothing_here no longer exists."


@needs_bwrap
async def test_provisioning_takes_a_warm_spare_and_the_pool_refills(
        db: Database, tmp_path: Path, sqlite_url: str) -> None:
    account = await eng.account(db)
    async with warm_service(db, tmp_path, sqlite_url) as (svc, one_spare):
        row = await svc.provision(account_id=account, mode="live",
                                  request=Spec(display_name="warm"))

        assert row.status == "running"
        # an adopted spare: the machine's directory links to the spare's own
        assert svc.provider.machine_dir(row.id).is_symlink()
        result = await (await svc.connect(row.id)).act(RunCommand(command="echo warm"))
        assert result.output.strip() == "warm"
        await poll(one_spare, timeout=30, what="the pool to start another spare")


@needs_bwrap
async def test_a_machine_with_network_off_never_takes_a_spare(
        db: Database, tmp_path: Path, sqlite_url: str) -> None:
    account = await eng.account(db)
    async with warm_service(db, tmp_path, sqlite_url) as (svc, _):
        row = await svc.provision(account_id=account, mode="live", request=Spec(
            display_name="offline", metadata={"network": "off"}))

        assert row.status == "running"
        assert not svc.provider.machine_dir(row.id).is_symlink()  # started cold
        assert svc.pool.available("terminal") == 1  # the spare is still there
        result = await (await svc.connect(row.id)).act(RunCommand(command="echo cold"))
        assert result.output.strip() == "cold"
