"""Fixtures of the end-to-end tests (deployments of real server processes)."""

from __future__ import annotations

import pytest

from tests.conftest import _create_pg_database


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest) -> str | None:
    """The database of a deployment: None for SQLite in its data dir, else
    the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return await _create_pg_database(request.getfixturevalue("pg_server"))
