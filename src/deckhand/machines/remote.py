"""A machine reached through its machine agent's HTTP API (local or remote).

One round trip per step: :meth:`RemoteMachine.act_and_observe` asks the agent
for the settled screen with the action's result and keeps it, so that the
next :meth:`RemoteMachine.observe` costs nothing — unless anything else was
sent to the machine in between (every request but a screenshot invalidates
it) or it is older than :data:`KEPT_SCREEN_MAX_AGE_S`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from deckhand.core.actions import Action, ActionResult, RunCommand, Wait
from deckhand.core.screens import Observation
from deckhand.errors import MachineError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
# Added to an action's own timeout: the agent's kill-and-drain grace plus transit.
READ_MARGIN_S = 10.0
FILES_TIMEOUT_S = 120.0
# The interrupt after a cancellation is a backup (closing the request already
# stops the action): a cancel must not wait long on an unresponsive agent.
INTERRUPT_TIMEOUT_S = 0.5
SCREENSHOT_TIMEOUT_S = 30.0
# A screen kept from an action is what observe() answers for this long at most: a
# screen can change by itself (a human in the live view, a page still loading).
KEPT_SCREEN_MAX_AGE_S = 1.0


@dataclass(frozen=True)
class _Kept:
    observation: Observation
    generation: int  # of requests sent to the machine: any later one invalidates it
    at: float


class RemoteMachine:
    """Implements :class:`deckhand.machines.base.Machine` over a machine
    agent. Cancelling :meth:`act` closes the request (the agent then kills
    the action) and also sends ``/terminal/interrupt`` for it."""

    def __init__(
        self,
        machine_id: str,
        base_url: str,
        token: str,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.machine_id = machine_id
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._own_http = http is None
        # Building a TLS context costs ~20 ms; a plain-http agent needs none.
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=CONNECT_TIMEOUT_S),
            verify=not self.base_url.startswith("http://"),
        )
        self._background: set[asyncio.Task[Any]] = set()
        self._generation = 0
        self._kept: _Kept | None = None

    async def __aenter__(self) -> RemoteMachine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ Machine

    async def act(self, action: Action, *, settle: object = None) -> ActionResult:
        """Perform ``action``; the agent settles the screen after a screen
        action (``settle``: ``"auto"`` by default, ``"none"``, milliseconds)."""
        result, _ = await self._act(action, settle, screenshot=False)
        return result

    async def act_and_observe(self, action: Action, *, settle: object = None
                              ) -> tuple[ActionResult, Observation | None]:
        """Perform ``action`` and return the settled screen after it in the
        same round trip; the screen is kept for the next :meth:`observe`."""
        before = self._generation
        result, seen = await self._act(action, settle, screenshot=True)
        if seen is not None and self._generation == before + 1:
            self._kept = _Kept(seen, self._generation, time.monotonic())
        return result, seen

    async def _act(self, action: Action, settle: object, *, screenshot: bool
                   ) -> tuple[ActionResult, Observation | None]:
        action_id = secrets.token_hex(12)
        body: dict[str, Any] = {"action": action.model_dump(mode="json"),
                                "action_id": action_id}
        if settle is not None:
            body["settle"] = settle
        if screenshot:
            body["screenshot"] = True
        try:
            response = await self._post("/act", body, read_timeout=_read_timeout(action))
        except asyncio.CancelledError:
            session_id = action.session_id if isinstance(action, RunCommand) else None
            await self._interrupt_quietly(session_id, action_id)
            raise
        result, body = self._answer(response)
        return result, _observation(body) if screenshot else None

    async def observe(self) -> Observation | None:
        """The machine's screen now: the desktop, the browser's page, or the
        terminal rendered to an image (the screen kept from the last
        :meth:`act_and_observe` when nothing was sent since)."""
        kept, self._kept = self._kept, None
        if kept is not None and kept.generation == self._generation \
                and time.monotonic() - kept.at <= KEPT_SCREEN_MAX_AGE_S:
            return kept.observation
        try:
            frame = await self.screenshot()
        except MachineError as exc:
            logger.info("machine %s: no screen to observe: %s", self.machine_id, exc.message)
            return None
        return Observation(screenshot_jpeg=frame[0], width=frame[1], height=frame[2])

    async def screenshot(self) -> tuple[bytes, int, int, str]:
        """(JPEG, width, height, source) of the screen now."""
        try:
            response = await self._http.get(
                self._url("/screenshot"), headers=self._headers,
                timeout=httpx.Timeout(SCREENSHOT_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        except httpx.HTTPError as exc:
            raise MachineError(f"machine {self.machine_id}: screenshot failed: {exc!r}") from exc
        if response.status_code != 200:
            raise MachineError(f"machine {self.machine_id}: screenshot failed: "
                               f"{_error_text(response)}")
        h = response.headers
        return (response.content, int(h.get("x-width", 0)), int(h.get("x-height", 0)),
                h.get("x-source", ""))

    async def command(self, command: str, parameters: dict[str, Any],
                      timeout_ms: int | None = None) -> dict[str, Any]:
        """One of the contract's ActionRequest commands →
        ``{"ok", "result", "error", "duration_ms", "screenshot"}``."""
        body = {"command": command, "parameters": parameters, "timeout_ms": timeout_ms}
        read = (timeout_ms or 120_000) / 1000 + READ_MARGIN_S
        response = await self._post("/command", body, read_timeout=read)
        if response.status_code != 200:
            raise MachineError(f"machine {self.machine_id}: {command} failed: "
                               f"{_error_text(response)}")
        return response.json()  # type: ignore[no-any-return]

    async def info(self) -> dict[str, Any]:
        try:
            response = await self._http.get(self._url("/info"), headers=self._headers,
                                            timeout=httpx.Timeout(5.0, connect=CONNECT_TIMEOUT_S))
        except httpx.HTTPError as exc:
            raise MachineError(f"machine agent at {self.base_url} is unreachable: {exc!r}"
                               ) from exc
        if response.status_code == 401:
            raise MachineError(f"the machine agent at {self.base_url} refused the token")
        if response.status_code != 200:
            raise MachineError(f"machine agent at {self.base_url}: HTTP {response.status_code}")
        return response.json()  # type: ignore[no-any-return]

    async def claim(self, machine_id: str, *, network: bool | None = None,
                    limits: dict[str, Any] | None = None) -> dict[str, Any]:
        """Give an unclaimed agent its machine id (and its limits)."""
        body: dict[str, Any] = {"machine_id": machine_id, "network": network}
        if limits is not None:
            body["limits"] = limits
        response = await self._post("/claim", body, read_timeout=10.0)
        if response.status_code != 200:
            raise MachineError(f"the machine agent at {self.base_url} refused the claim: "
                               f"{_error_text(response)}")
        self.machine_id = machine_id
        return response.json()  # type: ignore[no-any-return]

    async def release(self) -> None:
        """Make the agent forget its machine (workspace emptied)."""
        response = await self._post("/release", {}, read_timeout=30.0)
        if response.status_code != 200:
            raise MachineError(f"machine {self.machine_id}: release failed: "
                               f"{_error_text(response)}")

    async def start_vnc(self) -> dict[str, Any]:
        """Start the desktop's x11vnc → ``{port, password, width, height}``."""
        response = await self._post("/live/vnc", {}, read_timeout=20.0)
        if response.status_code != 200:
            raise MachineError(f"machine {self.machine_id}: live view unavailable: "
                               f"{_error_text(response)}")
        return response.json()  # type: ignore[no-any-return]

    def ws_url(self, path: str) -> str:
        return "ws" + self.base_url[len("http"):] + path

    @property
    def auth_headers(self) -> dict[str, str]:
        return dict(self._headers)

    async def health(self) -> bool:
        try:
            response = await self._http.get(
                self._url("/health"), headers=self._headers,
                timeout=httpx.Timeout(5.0, connect=CONNECT_TIMEOUT_S),
            )
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        try:
            data = response.json()
        except ValueError:
            return False
        return data.get("status") == "ok" and data.get("machine_id") == self.machine_id

    # ------------------------------------------------------------------ extras

    async def files(self, op: str, parameters: dict[str, Any]) -> ActionResult:
        """A file operation (``read``, ``write``, ``list-directory``, …; see
        ``deckhand.machine_agent.fileops.FILE_OPS``)."""
        response = await self._post(f"/files/{op}", {"parameters": parameters},
                                    read_timeout=FILES_TIMEOUT_S)
        return self._result(response)

    async def download(self, name: str) -> bytes | None:
        """A file the browser saved in the machine's Downloads folder."""
        result = await self.files("download", {"path": f"Downloads/{name}"})
        if not result.ok:
            logger.info("machine %s: download %r not fetched: %s", self.machine_id, name,
                     result.error)
            return None
        try:
            return base64.b64decode(result.output, validate=True)
        except (binascii.Error, ValueError):
            raise MachineError(f"machine {self.machine_id}: a download that is not "
                               "base64") from None

    async def interrupt(self, session_id: str | None = None,
                        action_id: str | None = None) -> bool:
        """Kill the command running in ``session_id`` (or the action
        ``action_id``). Returns whether something was running."""
        response = await self._post(
            "/terminal/interrupt", {"session_id": session_id, "action_id": action_id},
            read_timeout=INTERRUPT_TIMEOUT_S + 5.0,
        )
        if response.status_code != 200:
            raise MachineError(f"machine {self.machine_id}: interrupt failed "
                               f"(HTTP {response.status_code})")
        return bool(response.json().get("interrupted"))

    async def shutdown(self) -> None:
        """Ask the agent to close its sessions and exit."""
        await self._post("/shutdown", {}, read_timeout=5.0)

    # ------------------------------------------------------------------ transport

    def _url(self, path: str) -> str:
        return self.base_url + path

    async def _post(self, path: str, body: dict[str, Any], *, read_timeout: float) -> httpx.Response:
        self._generation += 1  # whatever this does may change the screen
        timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_S)
        try:
            response = await self._http.post(self._url(path), json=body, headers=self._headers,
                                             timeout=timeout)
        except httpx.TimeoutException as exc:
            raise MachineError(
                f"machine {self.machine_id} did not answer {path} in time ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise MachineError(
                f"machine {self.machine_id} is unreachable at {self.base_url}: {exc!r}"
            ) from exc
        if response.status_code == 401:
            raise MachineError(f"machine {self.machine_id} refused the agent token")
        return response

    def _result(self, response: httpx.Response) -> ActionResult:
        return self._answer(response)[0]

    def _answer(self, response: httpx.Response) -> tuple[ActionResult, dict[str, Any]]:
        """The ActionResult an answer carries, and the answer's whole body."""
        if response.status_code in (200, 400, 422):
            try:
                body = response.json()
                return ActionResult.model_validate(body), body
            except (ValueError, ValidationError):
                pass
        raise MachineError(
            f"machine {self.machine_id}: unexpected answer HTTP {response.status_code}: "
            f"{response.text[:300]}"
        )

    async def _interrupt_quietly(self, session_id: str | None, action_id: str) -> None:
        """Send an interrupt for a cancelled action; shielded from the
        cancellation and bounded, failures only logged."""
        task = asyncio.ensure_future(self._send_interrupt(session_id, action_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        # Cancelled again while waiting: the interrupt goes on in the background.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def _send_interrupt(self, session_id: str | None, action_id: str) -> None:
        try:
            await self._http.post(
                self._url("/terminal/interrupt"),
                json={"session_id": session_id, "action_id": action_id},
                headers=self._headers,
                timeout=httpx.Timeout(INTERRUPT_TIMEOUT_S),
            )
        except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: client closed
            logger.warning("machine %s: interrupt after cancel failed: %r", self.machine_id, exc)


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if isinstance(data, dict):
        return str(data.get("error") or data)[:500]
    return str(data)[:500]


def _observation(body: dict[str, Any]) -> Observation | None:
    """The settled screen an /act answer carries, if any."""
    try:
        shot = body.get("screenshot")
        if not isinstance(shot, dict):
            return None
        return Observation(screenshot_jpeg=base64.b64decode(shot["image_b64"], validate=True),
                           width=int(shot["width"]), height=int(shot["height"]))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        return None


def _read_timeout(action: Action) -> float:
    if isinstance(action, RunCommand):
        return action.timeout_ms / 1000 + READ_MARGIN_S
    if isinstance(action, Wait):
        return action.seconds + READ_MARGIN_S
    return FILES_TIMEOUT_S
