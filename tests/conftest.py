"""Shared fixtures: real databases (SQLite file, PostgreSQL server started by
the project's own script) and a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn

from deckhand.api.app import create_app
from deckhand.config import Settings
from deckhand.services import Services
from deckhand.store import accounts as accounts_store
from deckhand.store import keys as keys_store
from deckhand.store.db import Database
from tests.support.deployment import free_port
from tests.support.servers import started

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "contract" / "coasty-openapi.json"


PROVIDER_ENV = ("ANTHROPIC_", "OPENAI_", "DECKHAND_")


@pytest.fixture(autouse=True)
def _no_ambient_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a real model provider, nor pick up a developer's settings."""
    for name in list(os.environ):
        if name.startswith(PROVIDER_ENV):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the whole session; yields its base URL."""
    d = tempfile.mkdtemp(prefix="deckhand-pg-")
    url = subprocess.run(
        [str(ROOT / "scripts" / "pg-test-server"), "start", d],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    yield url
    subprocess.run([str(ROOT / "scripts" / "pg-test-server"), "stop", d], check=False)


async def _create_pg_database(base_url: str) -> str:
    name = f"t_{secrets.token_hex(6)}"
    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{base_url}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'deckhand.db'}"
    return await _create_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'deckhand.db'}"


async def _migrated(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """A migrated SQLite database, for tests below the HTTP layer."""
    async for database in _migrated(sqlite_url):
        yield database


@pytest.fixture
async def each_db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend (SQLite, PostgreSQL)."""
    async for database in _migrated(database_url):
        yield database


@dataclass
class LiveServer:
    url: str
    services: Services

    def client(self, key: str | None = None, **headers: str) -> httpx.AsyncClient:
        h = dict(headers)
        if key:
            h["X-API-Key"] = key
        return httpx.AsyncClient(base_url=self.url, headers=h, timeout=30)

    async def key(
        self, *, account: str = "acme", test: bool = False, scopes: tuple[str, ...] | None = None,
        credits: int | None = None,
    ) -> str:
        """A new key (and its account, if new) straight through the store."""
        from deckhand.scopes import OPERATOR_SCOPES

        async with self.services.db.write() as conn:
            acct = await accounts_store.find_by_name(conn, account)
            if acct is None:
                acct = await accounts_store.create(conn, account, credits)
            _, raw = await keys_store.create(
                conn, secret=self.services.secret, account_id=acct.id, name="test",
                test=test, scopes=scopes if scopes is not None else OPERATOR_SCOPES,
            )
        return raw


@contextlib.asynccontextmanager
async def serve(settings: Settings, *, keep_machines: bool = False) -> AsyncIterator[LiveServer]:
    """Run the real app with uvicorn on a free loopback port. Its machines are
    terminated at the end unless ``keep_machines`` (a restart test)."""
    services = await Services.build(settings)
    await services.start()
    app = create_app(services=services)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    port = await started(server, task, "the Deckhand server")
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", services=services)
    finally:
        server.should_exit = True
        await task
        if not keep_machines:
            await _terminate_machines(services)
        await services.close()


async def _terminate_machines(services: Services) -> None:
    """Machine agents outlive the server by design; a test's must not outlive the test."""
    from sqlalchemy import select

    from deckhand.store.tables import machines

    async with services.db.read() as conn:
        rows = (await conn.execute(
            select(machines).where(machines.c.status != "terminated"))).all()
    for row in rows:
        with contextlib.suppress(Exception):
            await services.machines.terminate(row)


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    # No warm spare per test server (the default keeps one): on two cores a
    # spare agent for each of hundreds of servers costs minutes. The pool's
    # tests ask for it.
    overrides.setdefault("machine_pool_terminal", 0)
    # Machines have a network of their own: the one loopback port they may
    # reach is the test's page server's (tests.support.machine_pages.serve_pages).
    overrides.setdefault("machine_host_allow", f"127.0.0.1:{free_port()}")
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    secret_key="test-secret-" + secrets.token_hex(8), **overrides)


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[LiveServer]:
    async with serve(make_settings(tmp_path, database_url)) as s:
        yield s


@pytest.fixture
async def sqlite_server(tmp_path: Path, sqlite_url: str) -> AsyncIterator[LiveServer]:
    async with serve(make_settings(tmp_path, sqlite_url)) as s:
        yield s


@pytest.fixture(scope="session")
def contract() -> dict:  # type: ignore[type-arg]
    return json.loads(CONTRACT.read_text())
