"""Server-Sent Events over a run's event log.

Frames are ``id: <seq>``, ``event: <type>``, ``data: <RunEvent JSON>``. A
reader resumes after ``Last-Event-ID`` (or ``?after=``) and so misses nothing
and sees nothing twice; the stream ends after the ``done`` event; a comment
line keeps idle connections alive."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.engine.notify import Notifier
from deckhand.errors import ValidationFailed
from deckhand.store import events as events_store
from deckhand.store.db import Database

HEARTBEAT_SECONDS = 15.0


def frame(event: events_store.Event) -> bytes:
    data = json.dumps(event.as_dict(), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


ReadAfter = Callable[[AsyncConnection, str, int], Awaitable[list[events_store.Event]]]


def resume_cursor(after: int | None, last_event_id: str | None) -> int:
    """Where a reader resumes: the later of ``?after=`` and ``Last-Event-ID``."""
    start = after or 0
    if last_event_id not in (None, ""):
        if not last_event_id.strip().isdigit():
            raise ValidationFailed("Last-Event-ID must be a non-negative integer (an event seq).")
        start = max(start, int(last_event_id))
    return start


async def event_frames(
    db: Database, notifier: Notifier, run_id: str, after: int,
    heartbeat: float = HEARTBEAT_SECONDS, *, topic: str = "events",
    read_after: ReadAfter = events_store.after,
) -> AsyncIterator[bytes]:
    """Frames of one event log (a run's by default; a workflow run's with its
    own ``topic`` and ``read_after``)."""
    last = after
    yield b"retry: 1000\n\n"
    with notifier.subscribe(topic, run_id) as waiter:
        while True:
            async with db.read() as conn:
                batch = await read_after(conn, run_id, last)
            for event in batch:
                yield frame(event)
                last = event.seq
                if event.type == "done":
                    return
            if not batch and not await waiter.wait(heartbeat):
                yield b": heartbeat\n\n"


def event_stream(db: Database, notifier: Notifier, run_id: str, after: int, *,
                 topic: str = "events",
                 read_after: ReadAfter = events_store.after) -> StreamingResponse:
    return StreamingResponse(
        event_frames(db, notifier, run_id, after, topic=topic, read_after=read_after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
