"""A machine's state as the checks read it, and the setup of a task, both
through the public API (``deckhand.client``): the files and terminal
sub-APIs, the browser's ``dom`` op, the window commands."""

from __future__ import annotations

import asyncio
import base64
import shlex
import time
from typing import Any

from deckhand.client import DeckhandClient
from deckhand.eval.site import Slot

COMMAND_TIMEOUT_MS = 60_000
WINDOW_TIMEOUT_S = 30.0


class SetupError(Exception):
    """A task's setup did not work on the machine (the task is not attempted)."""


class ApiMachineState:
    """:class:`deckhand.eval.checks.MachineState` over the API."""

    def __init__(self, api: DeckhandClient, machine_id: str, slot: Slot) -> None:
        self.api = api
        self.machine_id = machine_id
        self.slot = slot

    async def _files(self, op: str, **parameters: Any) -> dict[str, Any]:
        return await self.api.call(  # type: ignore[no-any-return]
            "POST", f"/v1/machines/{self.machine_id}/files/{op}",
            json={"parameters": parameters})

    async def read_file(self, path: str) -> str | None:
        body = await self._files("read", path=path)
        if not body["success"]:
            return None
        result = body["result"] or {}
        output = str(result.get("output", ""))
        if result.get("encoding") == "base64":
            return base64.b64decode(output).decode("utf-8", "replace")
        return output

    async def exists(self, path: str) -> bool:
        body = await self._files("exists", path=path)
        return bool(body["success"] and (body["result"] or {}).get("exists"))

    async def write_file(self, path: str, content: str) -> None:
        body = await self._files("write", path=path, content=content)
        if not body["success"]:
            raise SetupError(f"writing {path}: {body.get('error')}")

    async def run(self, command: str) -> tuple[int | None, str]:
        """``command`` in a shell of its own (bash, in the home directory) in
        the machine's terminal session: its ``exit`` or ``cd`` leave the
        session as it was, its background processes share the session's."""
        wrapped = f"(cd ~ && bash -c {shlex.quote(command)})"
        body = await self.api.call("POST", f"/v1/machines/{self.machine_id}/terminal",
                                   json={"command": wrapped, "timeout_ms": COMMAND_TIMEOUT_MS})
        result = body.get("result") or {}
        if not body["success"] and not result:
            return None, str(body.get("error") or "")
        return result.get("exit_code"), str(result.get("output", ""))

    async def page(self) -> tuple[str, str]:
        body = await self.api.call("POST", f"/v1/machines/{self.machine_id}/browser/dom",
                                   json={"parameters": {"html": False}})
        result = body.get("result") or {}
        return str(result.get("url", "")), str(result.get("text", ""))

    def posts(self, form: str) -> list[dict[str, str]]:
        return self.slot.posts(form)

    async def action(self, command: str, **parameters: Any) -> dict[str, Any]:
        return await self.api.call(  # type: ignore[no-any-return]
            "POST", f"/v1/machines/{self.machine_id}/actions",
            json={"command": command, "parameters": parameters})

    async def raise_window(self, title: str) -> None:
        """Wait for a window whose title contains ``title`` (and for the
        desktop's own terminal, which would open over it), then maximise it
        and give it the focus."""
        deadline = time.monotonic() + WINDOW_TIMEOUT_S
        titles: list[str] = []
        while time.monotonic() < deadline:
            body = await self.action("list_windows")
            titles = [w["title"] for w in (body.get("result") or {}).get("windows", [])]
            if "Terminal" in titles and any(title.lower() in t.lower() for t in titles):
                break
            await asyncio.sleep(0.2)
        else:
            raise SetupError(f"no window titled {title!r} after {WINDOW_TIMEOUT_S:.0f} s "
                             f"(open: {titles})")
        for command in ("maximize_window", "switch_to_window"):
            body = await self.action(command, title=title)
            if not body["success"]:
                raise SetupError(f"{command} {title!r}: {body.get('error')}")
