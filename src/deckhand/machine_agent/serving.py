"""Running a machine agent as a process: bind, serve with uvicorn, write the
ready file the spawner waits for (the HTTP app itself is :mod:`.server`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from deckhand.machine_agent.launch import parse_listen, run_agent
from deckhand.machine_agent.server import AgentOptions, create_agent_app

__all__ = ["parse_listen", "run_agent", "serve", "write_ready_file"]

logger = logging.getLogger(__name__)


def write_ready_file(path: Path | str, info: dict[str, Any]) -> None:
    """Write ``info`` as JSON to ``path`` atomically (temp file + rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ready-", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _AgentServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_started()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so
    # (without it, keep-alive requests wait 40 ms for delayed ACKs).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(
    machine_id: str | None,
    workspace: Path | str,
    token: str,
    *,
    options: AgentOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    ready_file: Path | str | None = None,
    sandbox: bool | None = None,
    network: bool = True,
    started: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Serve the agent until it is shut down (``POST /shutdown``, SIGTERM or
    SIGINT). Port 0 picks a free port; once listening, ``ready_file`` gets
    ``{"pid", "port", "url", "machine_id"}`` and ``started`` is called with
    the same dict."""
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    info = {
        "pid": os.getpid(),
        "port": bound_port,
        "url": f"http://{url_host}:{bound_port}",
        "machine_id": machine_id,
        "agent_id": machine_id,
    }
    server: _AgentServer | None = None

    def stop() -> None:
        if server is not None:
            server.should_exit = True

    app = create_agent_app(machine_id, workspace, token, sandbox=sandbox, network=network,
                           on_shutdown=stop, options=options)

    def on_started() -> None:
        if ready_file is not None:
            write_ready_file(ready_file, info)
        logger.info("machine agent %s listening on %s", machine_id, info["url"])
        if started is not None:
            started(info)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="asyncio",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    server = _AgentServer(config, on_started)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
