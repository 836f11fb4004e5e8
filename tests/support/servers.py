"""Starting an ASGI app under uvicorn on a free loopback port, as the tests do
for the server itself, fake model providers and webhook receivers.

Waiting for ``server.started`` is one polled wait (tests/support/polling.py):
it has a deadline, and if the server task ends first (the port is taken, the
app fails its start-up) its own error is raised instead of a timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from tests.support.polling import wait_until

START_TIMEOUT = 30.0  # seconds; a loaded 2-core box starts an app in well under one


async def started(server: uvicorn.Server, task: asyncio.Task[Any], what: str = "the server",
                  timeout: float = START_TIMEOUT) -> int:
    """Wait until ``server`` (run by ``task``) listens; its port."""

    def listening() -> bool:
        if task.done():
            task.result()  # it stopped before listening: raise why
            raise AssertionError(f"{what} stopped before it started")
        return bool(server.started)

    await wait_until(listening, timeout=timeout, every=0.01, what=f"{what} to start")
    return int(server.servers[0].sockets[0].getsockname()[1])
