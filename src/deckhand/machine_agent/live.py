"""The live view, agent side (WebSockets; the server proxies them to a
signed-in human's browser).

- ``/live/vnc``: the RFB stream of the desktop's x11vnc, as binary WebSocket
  messages — what websockify does, inside the agent, so noVNC on the live
  page talks to x11vnc through the server and this agent only.
- ``/live/screencast``: for a machine without a desktop. Frames are JSON
  ``{"type": "frame", "data": <base64 JPEG>, "width", "height"}``: the
  browser's CDP screencast (frames only on change) when a page is open,
  else the rendered terminal. Input comes back as JSON: ``{"type": "click",
  "x", "y", "button"}``, ``{"type": "move", …}``, ``{"type": "scroll",
  "dx", "dy"}``, ``{"type": "key", "key": "Enter"}``, ``{"type": "text",
  "text": "…"}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from deckhand.machine_agent.desktop import DesktopError
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.tab import Tab

if TYPE_CHECKING:
    from deckhand.machine_agent.server import MachineAgent

logger = logging.getLogger(__name__)
TERMINAL_FRAME_INTERVAL_S = 0.5


def vnc_bridge(agent: MachineAgent):  # type: ignore[no-untyped-def]
    async def endpoint(ws: WebSocket) -> None:
        if agent.desktop is None or agent.machine_id is None:
            await ws.close(code=4409)
            return
        try:
            info = await agent.desktop.start_vnc()
            reader, writer = await asyncio.open_connection("127.0.0.1", info.port)
        except (DesktopError, OSError) as exc:
            logger.warning("live view: %s", exc)
            await ws.close(code=1011)
            return
        await ws.accept(subprotocol=_binary_subprotocol(ws))

        async def up() -> None:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None and message.get("text") is not None:
                    data = base64.b64decode(message["text"])
                if data:
                    writer.write(data)
                    await writer.drain()

        async def down() -> None:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                await ws.send_bytes(data)

        await _run_both(up(), down())
        writer.close()
        with contextlib.suppress(Exception):
            await ws.close()

    return endpoint


def _binary_subprotocol(ws: WebSocket) -> str | None:
    offered = ws.scope.get("subprotocols") or []
    return "binary" if "binary" in offered else None


def screencast(agent: MachineAgent):  # type: ignore[no-untyped-def]
    async def endpoint(ws: WebSocket) -> None:
        if agent.machine_id is None:
            await ws.close(code=4409)
            return
        await ws.accept()
        browser = agent.browser
        if browser.running and browser.has_page():
            await _browser_cast(agent, ws)
        else:
            await _terminal_cast(agent, ws)

    return endpoint


async def _browser_cast(agent: MachineAgent, ws: WebSocket) -> None:
    browser = agent.browser
    page = await browser.page()
    cdp = page.session
    frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=2)
    acks: set[asyncio.Future[Any]] = set()

    def on_frame(params: dict[str, Any]) -> None:
        ack = asyncio.ensure_future(cdp.send("Page.screencastFrameAck",
                                             {"sessionId": params["sessionId"]}))
        acks.add(ack)
        ack.add_done_callback(lambda f: (acks.discard(f), f.cancelled() or f.exception()))
        if frames.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                frames.get_nowait()
        frames.put_nowait(params)

    cdp.on("Page.screencastFrame", on_frame)
    await cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 70,
                                            "everyNthFrame": 1})

    async def down() -> None:
        while True:
            f = await frames.get()
            meta = f.get("metadata", {})
            await ws.send_text(json.dumps({
                "type": "frame", "data": f["data"],
                "width": int(meta.get("deviceWidth", browser.width)),
                "height": int(meta.get("deviceHeight", browser.height))}))

    async def up() -> None:
        while True:
            event = await _receive_json(ws)
            if event is None:
                return
            await _browser_input(page, event)

    try:
        await _run_both(up(), down())
    finally:
        cdp.off("Page.screencastFrame", on_frame)
        if not page.closed:
            with contextlib.suppress(AgentError):
                await cdp.send("Page.stopScreencast")


async def _browser_input(page: Tab, e: dict[str, Any]) -> None:
    kind = e.get("type")
    try:
        if kind == "click":
            await page.click(float(e["x"]), float(e["y"]), button=e.get("button") or "left")
        elif kind == "move":
            await page.move(float(e["x"]), float(e["y"]))
        elif kind == "scroll":
            await page.wheel(float(e.get("dx") or 0), float(e.get("dy") or 0))
        elif kind == "key":
            await page.press(str(e["key"]))
        elif kind == "text":
            await page.insert_text(str(e["text"]))
    except (AgentError, KeyError, ValueError, TypeError) as exc:  # a bad event
        logger.info("live input %s ignored: %s", kind, exc)


async def _terminal_cast(agent: MachineAgent, ws: WebSocket) -> None:
    async def down() -> None:
        last = None
        while True:
            frame = await agent.screen.capture()
            if frame.jpeg is not last:
                last = frame.jpeg
                await ws.send_text(json.dumps({
                    "type": "frame", "data": base64.b64encode(frame.jpeg).decode(),
                    "width": frame.width, "height": frame.height, "source": frame.source}))
            await asyncio.sleep(TERMINAL_FRAME_INTERVAL_S)

    async def up() -> None:
        # The rendered terminal is view-only: what the viewer sends is read and dropped.
        while await _receive_json(ws) is not None:
            continue

    await _run_both(up(), down())


async def _receive_json(ws: WebSocket) -> dict[str, Any] | None:
    try:
        text = await ws.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _run_both(a: Any, b: Any) -> None:
    """Run two pumps until either ends (the other is cancelled)."""
    tasks = {asyncio.ensure_future(a), asyncio.ensure_future(b)}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
