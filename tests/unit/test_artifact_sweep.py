"""Retention and the orphan sweep, on both databases and both stores:
screens past retention lose their rows, bytes no row points at go once past
the grace period, bytes some row still points at stay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from deckhand.artifacts import ArtifactStore, digest, open_store
from deckhand.artifacts.sweep import ArtifactSweeper
from deckhand.core.clock import utcnow
from deckhand.store import artifacts as artifacts_store
from deckhand.store.db import Database
from deckhand.store.records import RunArtifact
from tests.support.engine import account
from tests.support.rows import new_run
from tests.support.s3 import s3_bucket, s3_endpoint

__all__ = ["s3_bucket", "s3_endpoint"]


@pytest.fixture(params=["fs", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    url = None
    if request.param == "s3":
        url = (f"s3://{request.getfixturevalue('s3_bucket')}/sweep"
               f"?endpoint={request.getfixturevalue('s3_endpoint')}")
    made = open_store(url, tmp_path)
    yield made
    await made.close()


def _row(run_id: str, step: int, data: bytes, created_at) -> RunArtifact:  # type: ignore[no-untyped-def]
    return RunArtifact(run_id=run_id, step=step, kind="screen", sha256=digest(data),
                       content_type="image/jpeg", size=len(data), width=1, height=1,
                       created_at=created_at)


async def test_retention_and_orphans(each_db: Database, store: ArtifactStore) -> None:
    now = utcnow()
    acct = await account(each_db)
    old, shared, fresh, orphan = b"old screen", b"shared screen", b"fresh screen", b"orphan"
    for data in (old, shared, fresh, orphan):
        await store.put(digest(data), data)
    async with each_db.write() as conn:
        old_run = await new_run(conn, acct, now - timedelta(days=40))
        new_run_id = await new_run(conn, acct, now)
        await artifacts_store.insert(conn, [
            _row(old_run, 1, old, now - timedelta(days=40)),
            _row(old_run, 2, shared, now - timedelta(days=40)),
            _row(new_run_id, 1, shared, now), _row(new_run_id, 2, fresh, now)])

    sweeper = ArtifactSweeper(each_db, store, retention_days=30, grace_seconds=3600,
                              every_seconds=600)
    # an hour on: the orphan and the old run's own screen are past the grace
    swept = await sweeper.sweep(now=now + timedelta(hours=1, seconds=5))
    assert (swept.expired_rows, swept.deleted_blobs) == (2, 2)
    assert swept.deleted_bytes == len(old) + len(orphan)
    assert await store.get(digest(old)) is None and await store.get(digest(orphan)) is None
    assert await store.get(digest(shared)) == shared  # the new run still points at it
    assert await store.get(digest(fresh)) == fresh
    async with each_db.read() as conn:
        assert await artifacts_store.for_run(conn, old_run) == []
        assert [a.step for a in await artifacts_store.for_run(conn, new_run_id)] == [1, 2]

    # bytes written a moment ago with no row yet: a step in flight, kept
    await store.put(digest(b"in flight"), b"in flight")
    swept = await sweeper.sweep(now=utcnow() + timedelta(minutes=10))
    assert (swept.expired_rows, swept.deleted_blobs) == (0, 0)
    assert await store.get(digest(b"in flight")) == b"in flight"


async def test_zero_retention_keeps_screens_forever(sqlite_db: Database, tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    acct = await account(sqlite_db)
    long_ago = utcnow() - timedelta(days=3650)
    await store.put(digest(b"kept"), b"kept")
    async with sqlite_db.write() as conn:
        run_id = await new_run(conn, acct, long_ago)
        await artifacts_store.insert(conn, [_row(run_id, 1, b"kept", long_ago)])
    swept = await ArtifactSweeper(sqlite_db, store, retention_days=0, grace_seconds=0,
                                  every_seconds=1).sweep()
    assert (swept.expired_rows, swept.deleted_blobs) == (0, 0)
    assert await store.get(digest(b"kept")) == b"kept"
