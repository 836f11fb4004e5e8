"""``GET /v1/runs/stream`` (Deckhand, additive): the caller's newest runs, live.

An SSE stream of ``run`` frames (``data``: the run as ``GET /v1/runs/{id}``
answers it) for every run that appears in, or changes within, the newest
``limit`` runs of the key's account and mode (with ``status``: of that
status), and ``removed`` frames (``data``: ``{"id"}``) for a run that left
that window (its status no longer matches, or newer runs pushed it out). The
first frames are the whole window, then a ``ready`` frame; a reader that
reconnects gets the window again. What wakes it is every run's event log
(each step, status change and end appends to it), and it also looks at most a
second apart. The dashboard's runs page reads it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import StreamingResponse

from deckhand.api.deps import principal, services
from deckhand.api.routing import endpoint, router
from deckhand.api.runs import RunStatus
from deckhand.auth import Principal
from deckhand.services import Services
from deckhand.store import runs as runs_store
from deckhand.views import run_view

r = router(tags=["runs"])
Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
POLL_SECONDS = 1.0
HEARTBEAT_EVERY = 15  # polls without a frame before a heartbeat comment


def _frame(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def feed(svc: Services, caller: Principal, status: str | None,
               limit: int) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    seen: dict[str, int] = {}  # run id -> the last_seq sent
    first = True
    idle = 0
    with svc.notifier.subscribe("events") as waiter:
        while True:
            async with svc.db.read() as conn:
                rows, _ = await runs_store.list_owned(conn, caller.account_id, caller.mode,
                                                      status=status, limit=limit)
            out: list[bytes] = []
            current = {row.id for row in rows}
            for gone in [x for x in seen if x not in current]:
                del seen[gone]
                out.append(_frame("removed", {"id": gone}))
            for row in reversed(rows):  # oldest first: a reader prepends
                if seen.get(row.id) != row.last_seq:
                    seen[row.id] = row.last_seq
                    out.append(_frame("run", run_view(row)))
            if first:
                out.append(_frame("ready", {"count": len(rows)}))
                first = False
            if out:
                idle = 0
                yield b"".join(out)
            else:
                idle += 1
                if idle >= HEARTBEAT_EVERY:
                    idle = 0
                    yield b": heartbeat\n\n"
            await waiter.wait(POLL_SECONDS)


@endpoint(r, "GET", "/v1/runs/stream", operation_id="streamRuns", scopes=("runs:read",),
          response_class=StreamingResponse)
async def stream_runs(
    svc: Svc, caller: Caller,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> StreamingResponse:
    """Deckhand: the newest runs as an SSE stream (``run`` / ``removed`` frames)."""
    return StreamingResponse(feed(svc, caller, status, limit), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
