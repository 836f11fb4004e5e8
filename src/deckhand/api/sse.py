"""Server-Sent Events over a run's event log.

Frames are ``id: <seq>``, ``event: <type>``, ``data: <RunEvent JSON>``. A
reader resumes after ``Last-Event-ID`` (or ``?after=``) and so misses nothing
and sees nothing twice; the stream ends after the ``done`` event; a comment
line keeps idle connections alive."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from deckhand.engine.notify import Notifier
from deckhand.store import events as events_store
from deckhand.store.db import Database

HEARTBEAT_SECONDS = 15.0


def frame(event: events_store.Event) -> bytes:
    data = json.dumps(event.as_dict(), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


async def event_frames(
    db: Database, notifier: Notifier, run_id: str, after: int,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> AsyncIterator[bytes]:
    last = after
    yield b"retry: 1000\n\n"
    with notifier.subscribe("events", run_id) as waiter:
        while True:
            async with db.read() as conn:
                batch = await events_store.after(conn, run_id, last)
            for event in batch:
                yield frame(event)
                last = event.seq
                if event.type == "done":
                    return
            if not batch and not await waiter.wait(heartbeat):
                yield b": heartbeat\n\n"


def event_stream(db: Database, notifier: Notifier, run_id: str, after: int) -> StreamingResponse:
    return StreamingResponse(
        event_frames(db, notifier, run_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
