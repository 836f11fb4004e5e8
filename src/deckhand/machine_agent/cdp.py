"""The Chrome DevTools Protocol on the wire: a connection over Chromium's
``--remote-debugging-pipe`` (the agent writes JSON messages, each ended by a
NUL byte, to the browser's fd 3 and reads its answers from fd 4: no port to
open, nothing another process can connect to), commands matched to their
answers by id, events handed to handlers, and sessions per target in
flatten mode (one pipe; a message names its target's ``sessionId``).

No knowledge of pages here: :mod:`.browser` and :mod:`.tab` speak the
domains (Page, Runtime, Input, Target, Browser, Network) over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from deckhand.machine_agent.errors import AgentError

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
READ_LIMIT = 1 << 28  # one message: a full-page screenshot is a few MiB of base64


class CDPError(AgentError):
    """A command the browser answered with an error, or a connection that
    ended. ``code`` is the protocol's error code (None: the connection)."""

    def __init__(self, message: str, *, cdp_code: int | None = None) -> None:
        super().__init__(message)
        self.cdp_code = cdp_code


class Session:
    """Commands and events of one target (``session_id`` None: the browser)."""

    def __init__(self, conn: Connection, session_id: str | None) -> None:
        self.conn = conn
        self.id = session_id
        self._handlers: dict[str, list[Handler]] = {}

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   *, timeout: float | None = None) -> dict[str, Any]:
        return await self.conn.send(method, params, session_id=self.id, timeout=timeout)

    def on(self, event: str, handler: Handler) -> None:
        self._handlers.setdefault(event, []).append(handler)

    def off(self, event: str, handler: Handler) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._handlers[event].remove(handler)

    def _dispatch(self, method: str, params: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(method, ())):
            try:
                handler(params)
            except Exception:  # one handler's bug must not stop the reader
                logger.exception("CDP event handler for %s", method)


class Connection:
    """One browser over a pipe pair. ``reader`` and ``writer`` are the
    agent's ends (the browser's fd 4 and fd 3)."""

    def __init__(self) -> None:
        self._next_id = 0
        self._pending: dict[int, tuple[asyncio.Future[dict[str, Any]], str]] = {}
        self.browser = Session(self, None)
        self._sessions: dict[str, Session] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[str] | None = None

    async def open(self, read_fd: int, write_fd: int) -> None:
        """Take the two fds (closed with the connection)."""
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        reader = asyncio.StreamReader(limit=READ_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                     os.fdopen(read_fd, "rb", buffering=0))
        transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol,
                                                     os.fdopen(write_fd, "wb", buffering=0))
        self._reader, self._writer = reader, transport
        self._task = asyncio.ensure_future(self._read())

    @property
    def alive(self) -> bool:
        return self.closed is not None and not self.closed.done()

    def session(self, session_id: str) -> Session:
        """The session of an attached target (made on first use)."""
        s = self._sessions.get(session_id)
        if s is None:
            s = self._sessions[session_id] = Session(self, session_id)
        return s

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    async def send(self, method: str, params: dict[str, Any] | None = None, *,
                   session_id: str | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        if not self.alive or self._writer is None:
            raise CDPError(f"{method}: the browser is not running"
                           + (f" ({self.closed.result()})" if self.closed is not None
                              and self.closed.done() else ""))
        self._next_id += 1
        mid = self._next_id
        message: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[mid] = (future, method)
        self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\0")
        try:
            if timeout is None:
                return await future
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise CDPError(f"{method}: no answer from the browser in {timeout:g} s") from None
        finally:
            self._pending.pop(mid, None)

    async def _read(self) -> None:
        assert self._reader is not None
        why = "the browser closed its end of the pipe"
        try:
            while True:
                try:
                    raw = await self._reader.readuntil(b"\0")
                except asyncio.IncompleteReadError:
                    break
                self._handle(json.loads(raw[:-1]))
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            why = f"reading from the browser failed: {exc}"
        finally:
            self._end(why)

    def _handle(self, msg: dict[str, Any]) -> None:
        mid = msg.get("id")
        if mid is not None:
            entry = self._pending.get(mid)
            if entry is None or entry[0].done():
                return
            future, method = entry
            error = msg.get("error")
            if error is not None:
                text = error.get("message", "error")
                if error.get("data"):
                    text += f" ({error['data']})"
                future.set_exception(CDPError(f"{method}: {text}", cdp_code=error.get("code")))
            else:
                future.set_result(msg.get("result") or {})
            return
        method, params = msg.get("method", ""), msg.get("params") or {}
        sid = msg.get("sessionId")
        if sid is None:
            self.browser._dispatch(method, params)
        else:
            session = self._sessions.get(sid)
            if session is not None:
                session._dispatch(method, params)
        if method == "Target.detachedFromTarget":
            self.forget(params.get("sessionId", ""))

    def _end(self, why: str) -> None:
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(why)
        for future, method in list(self._pending.values()):
            if not future.done():
                future.set_exception(CDPError(f"{method}: {why}"))
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        """Stop reading and close the pipe (the browser exits when its end closes)."""
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._end("the connection was closed")
