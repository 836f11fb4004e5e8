"""A step's screens and downloads as rows (``run_artifacts``): which bytes
of the artifact store (deckhand/artifacts) each one is. Inserted in the
step's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.store.records import RunArtifact, from_row, maybe
from deckhand.store.tables import run_artifacts

t = run_artifacts
_INSERT = t.insert()
SCREEN, AFTER = "screen", "after"  # the kinds: what the brain saw, the settled screen after
DOWNLOAD = "download-"  # + the download's number in its step (1, 2, …)


def download_kind(index: int) -> str:
    return f"{DOWNLOAD}{index}"


def download_index(kind: str) -> int | None:
    """The number of a download kind ("download-2" → 2); None for a screen."""
    if not kind.startswith(DOWNLOAD):
        return None
    tail = kind[len(DOWNLOAD):]
    return int(tail) if tail.isdigit() else None


async def insert(conn: AsyncConnection, rows: Iterable[RunArtifact]) -> None:
    values = [{
        "run_id": r.run_id, "step": r.step, "kind": r.kind, "sha256": r.sha256,
        "content_type": r.content_type, "size": r.size, "width": r.width, "height": r.height,
        "created_at": r.created_at, "name": r.name, "source_url": r.source_url,
    } for r in rows]
    if values:
        await conn.execute(_INSERT, values)


async def for_run(conn: AsyncConnection, run_id: str, *, first: int = 1,
                  last: int | None = None) -> list[RunArtifact]:
    """The run's screens of steps ``first``..``last``, by step."""
    q = select(t).where(t.c.run_id == run_id, t.c.step >= first)
    if last is not None:
        q = q.where(t.c.step <= last)
    rows = await conn.execute(q.order_by(t.c.step, t.c.kind))
    return [from_row(RunArtifact, r) for r in rows]


async def downloads(conn: AsyncConnection, run_id: str) -> list[RunArtifact]:
    """The run's downloads, by step and then in the order they finished."""
    rows = await conn.execute(select(t).where(t.c.run_id == run_id,
                                              t.c.kind.startswith(DOWNLOAD)))
    found = [from_row(RunArtifact, r) for r in rows]
    return sorted(found, key=lambda a: (a.step, download_index(a.kind) or 0))


async def get(conn: AsyncConnection, run_id: str, step: int, kind: str) -> RunArtifact | None:
    row = (await conn.execute(select(t).where(t.c.run_id == run_id, t.c.step == step,
                                              t.c.kind == kind))).first()
    return maybe(RunArtifact, row)


async def expire(conn: AsyncConnection, before: datetime) -> int:
    """Forget the screens recorded before ``before`` (their bytes become
    orphans for the sweep); how many rows went."""
    result = await conn.execute(delete(t).where(t.c.created_at < before))
    return int(result.rowcount or 0)


async def referenced(conn: AsyncConnection, keys: list[str]) -> set[str]:
    """Which of ``keys`` some row still points at."""
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        rows = await conn.execute(select(t.c.sha256).distinct()
                                  .where(t.c.sha256.in_(keys[i:i + 500])))
        found.update(r[0] for r in rows)
    return found
