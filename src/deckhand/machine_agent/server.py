"""The machine agent: an HTTP server that performs actions on one machine.

Endpoints (every request needs ``Authorization: Bearer <token>``):

- ``GET /health`` → ``{"status": "ok", "machine_id": …, "kinds": [...]}``
- ``GET /info`` → what the agent runs (desktop, browser, screen, vnc, pid)
- ``POST /claim`` ``{"machine_id", "network"}`` / ``POST /release`` — the
  identity of an agent started without one (warm pool, remote host)
- ``POST /act`` ``{"action": <Action>, "action_id", "settle", "screenshot": optional}``
  → ActionResult (``data.settle`` reports the settle, :mod:`.settle`), plus
  ``screenshot: {image_b64, width, height, source}`` (the settled screen) when asked
- ``POST /command`` ``{"command", "parameters", "timeout_ms"}`` → the
  contract's ActionRequest commands (:mod:`.commands`)
- ``GET /screenshot`` → JPEG (``X-Width``, ``X-Height``, ``X-Source``)
- ``POST /files/{op}`` ``{"parameters": {...}}`` → ActionResult
- ``POST /terminal/interrupt`` ``{"session_id": …, "action_id": optional}``
- ``POST /live/vnc`` → starts x11vnc, ``{port, password}``; WebSockets
  ``/live/vnc`` (RFB bridge) and ``/live/screencast`` (frames + input)
- ``POST /shutdown`` — closes every session and stops the process.

If the client disconnects while ``/act`` runs (the worker cancelled the call),
the action's task is cancelled, which kills a running command. Errors become
``ActionResult(ok=False, error=…)`` in :meth:`MachineAgent.act` and
:meth:`MachineAgent.files_op`, never a traceback; the words of the error come
from :func:`.errors.error_text`, as they do for ``/command``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from deckhand.core.actions import (
    SCREEN_ACTIONS,
    Action,
    ActionResult,
    ReadFile,
    RunCommand,
    Wait,
    WriteFile,
)
from deckhand.errors import ErrorCode
from deckhand.machine_agent import live
from deckhand.machine_agent.box import MachineBox
from deckhand.machine_agent.browser import Browser
from deckhand.machine_agent.cgroups import Limits
from deckhand.machine_agent.commands import run_command
from deckhand.machine_agent.desktop import Desktop, Frame
from deckhand.machine_agent.errors import AgentError, error_text
from deckhand.machine_agent.fileops import file_op
from deckhand.machine_agent.files import WorkspaceFiles
from deckhand.machine_agent.plumbing import (
    BearerAuth,
    error_response,
    frame_json,
    json_body,
    wait_for_disconnect,
)
from deckhand.machine_agent.screen import SETTLING_ACTIONS, Screen
from deckhand.machine_agent.settle import SettlePolicy
from deckhand.machine_agent.terminal import TerminalError, TerminalSessions

logger = logging.getLogger(__name__)

KINDS = ("terminal", "files")

_action_adapter: TypeAdapter[Action] = TypeAdapter(Action)
Acted = tuple[ActionResult, Frame | None]  # the result, and the settled screen if asked


class MachineAgent:
    """What the agent serves: one machine's terminal sessions, files, browser
    and (with ``desktop``) desktop.

    An agent started without a machine id is *unclaimed*: a spare of the warm
    pool, or an agent started by hand on another host. ``claim`` gives it its
    identity (the server does it when the machine is provisioned or
    registered); until then it runs no shell.
    """

    def __init__(
        self,
        machine_id: str | None,
        workspace: Path | str,
        *,
        sandbox: bool | None = None,
        network: bool = True,
        state_dir: Path | str | None = None,
        desktop: bool = False,
        browser: bool = False,
        settle: SettlePolicy | None = None,
        limits: Limits | None = None,
        host_allow: list[tuple[str, int]] | None = None,
        box: MachineBox | None = None,
        launched: Browser | None = None,
    ) -> None:
        """``box`` and ``launched``: the box and the browser :mod:`.launch`
        made before the agent's HTTP side was imported (a browser machine)."""
        self.machine_id = machine_id
        self.workspace = Path(os.path.realpath(workspace))
        self.state_dir = Path(state_dir) if state_dir else self.workspace.parent
        self.sandbox = sandbox
        self.network = network
        self.prelaunch_browser = browser
        self.box = box if box is not None else MachineBox(
            self.state_dir, self.workspace, limits=limits, host_allow=host_allow)
        self.terminals = TerminalSessions(self.workspace, sandbox=sandbox, network=network,
                                          box=self.box)
        self.files = WorkspaceFiles(self.workspace, owner=self.box.uid)
        self.desktop = (Desktop(self.state_dir, self.workspace, sandbox=self.terminals.sandbox,
                                network=network, box=self.box) if desktop else None)
        self.browser = launched if launched is not None else self._new_browser()
        self.screen = Screen(self.terminals, self.browser, self.desktop, settle)
        self._running: dict[str, asyncio.Task[Acted]] = {}
        self._prewarm: asyncio.Task[None] | None = None

    def _new_browser(self) -> Browser:
        return Browser(self.state_dir / "browser-profile", self.workspace / "Downloads",
                       network=self.network, box=self.box,
                       display_env=self.desktop.env if self.desktop is not None else None,
                       desktop_ready=self.desktop.apps_started if self.desktop is not None
                       else None)

    @property
    def kinds(self) -> list[str]:
        kinds = list(KINDS)
        if self.desktop is not None:
            kinds += ["desktop", "browser"]
        elif self.prelaunch_browser:
            kinds.append("browser")
        return kinds

    async def start(self) -> None:
        """Bring up the desktop (and the browser of a browser machine) before
        the agent reports ready; start the default shell once claimed."""
        began = time.monotonic()
        await self.box.start(self.network)
        logger.info("the machine's box is up in %.0f ms", (time.monotonic() - began) * 1000)
        if self.desktop is not None:
            await self.desktop.start()
            self.browser.display_env = self.desktop.env
            self.terminals.display_env = self.desktop.env
        if self.prelaunch_browser:
            await self.browser.start()
        if self.machine_id is not None:
            self._start_prewarm()

    def _start_prewarm(self) -> None:
        self._prewarm = asyncio.create_task(self.terminals.start())
        self._prewarm.add_done_callback(_log_prewarm_failure)

    async def claim(self, machine_id: str, network: bool | None = None,
                    limits: Limits | None = None) -> None:
        """Take the identity ``machine_id`` (idempotent for the same id) and,
        given, the machine's limits."""
        if self.machine_id is not None:
            if self.machine_id != machine_id:
                raise ClaimRefused(f"this agent already serves machine {self.machine_id}")
            return
        if limits is not None:
            self.box.set_limits(limits)
        if network is not None and network != self.network:
            if self.browser.running:
                raise ClaimRefused("the browser of this agent already runs with network="
                                   f"{self.network}")
            await self.box.set_network(network)
            self.network = network
            self.terminals.network = network
            self.browser.network = network
            if self.desktop is not None:
                self.desktop.network = network
        self.machine_id = machine_id
        self._start_prewarm()

    async def release(self) -> None:
        """Forget the machine: stop its shells and browser, empty its
        workspace and profile. The agent can then be claimed again."""
        for task in list(self._running.values()):
            task.cancel()
        await self.terminals.close_all()
        await self.browser.close()
        await asyncio.to_thread(_empty_dir, self.workspace)
        await asyncio.to_thread(shutil.rmtree, self.state_dir / "browser-profile", True)
        self.browser = self._new_browser()
        self.screen.browser = self.browser
        self.terminals.transcripts.clear()
        self.machine_id = None

    def info(self) -> dict[str, Any]:
        screen: dict[str, Any] = {"source": self.screen.source}
        if self.desktop is not None:
            screen.update(width=self.desktop.width, height=self.desktop.height,
                          display=self.desktop.display)
        return {"machine_id": self.machine_id, "kinds": self.kinds, "claimed":
                self.machine_id is not None, "desktop": self.desktop is not None,
                "browser_running": self.browser.running, "network": self.network,
                "sandbox": self.terminals.sandbox, "pid": os.getpid(), "screen": screen,
                "isolation": self.box.info(),
                "vnc": ({"port": self.desktop.vnc.port} if self.desktop is not None
                        and self.desktop.vnc is not None else None)}

    async def act(self, action: Action, *, action_id: str | None = None,
                  settle: object = None, screenshot: bool = False) -> Acted:
        """Perform ``action``, then settle the screen (``settle``: see
        :mod:`.settle`; screen actions default to ``auto``) and, with
        ``screenshot``, take the settled frame; the one place where failures
        become results."""
        task = asyncio.create_task(self._guarded(action, settle, screenshot))
        if action_id:
            self._running[action_id] = task
        try:
            return await _await_or_cancel(task)
        finally:
            if action_id and self._running.get(action_id) is task:
                del self._running[action_id]

    async def interrupt(self, session_id: str | None, action_id: str | None) -> bool:
        """Stop an action: the one named ``action_id`` if it is still running
        (nothing otherwise), else whatever command runs in ``session_id``."""
        if action_id:
            task = self._running.get(action_id)
            if task is None or task.done():
                return False
            task.cancel()
            await asyncio.wait({task}, timeout=5.0)
            return True
        return await self.terminals.interrupt(session_id)

    async def files_op(self, op: str, parameters: dict[str, Any]) -> ActionResult:
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(file_op, self.files, op, parameters)
        except AgentError as exc:  # anything else is a bug: a 500, as it always was
            return ActionResult(ok=False, error=error_text(exc), duration_ms=_ms_since(started))
        return result.model_copy(update={"duration_ms": _ms_since(started)})

    async def close(self) -> None:
        if self._prewarm is not None:
            self._prewarm.cancel()
        for task in list(self._running.values()):
            task.cancel()
        await self.terminals.close_all()
        await self.browser.close()
        if self.desktop is not None:
            await self.desktop.close()
        await self.box.close()

    # ------------------------------------------------------------------ actions

    async def _guarded(self, action: Action, settle: object, screenshot: bool) -> Acted:
        started = time.monotonic()
        try:
            spec = self.screen.settle_policy.resolve(
                settle, "auto" if action.kind in SETTLING_ACTIONS else "none")
            watch = self.screen.watch()
            result = await self._perform(action)
            if not result.ok:
                spec = self.screen.settle_policy.resolve("none")
            done = await watch.settle(spec, frame=screenshot)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the error boundary: report, never a traceback
            error = error_text(exc, failed="machine agent error", whole=True, log=logger)
            return ActionResult(ok=False, error=error, duration_ms=_ms_since(started)), None
        update: dict[str, Any] = {"duration_ms": _ms_since(started)}
        data = dict(result.data)
        if spec.mode != "none" or settle is not None:
            data["settle"] = done.report.as_dict()
        # files the browser saved into Downloads since the last answer: the
        # run keeps them (engine/runner.py)
        await self.browser.downloads_done()
        downloads = self.browser.take_downloads()
        if downloads:
            data["downloads"] = downloads
        if data != result.data:
            update["data"] = data
        return result.model_copy(update=update), done.frame

    async def _perform(self, action: Action) -> ActionResult:
        if isinstance(action, RunCommand):
            r = await self.terminals.run(
                action.command,
                session_id=action.session_id,
                cwd=action.cwd,
                timeout_ms=action.timeout_ms,
            )
            data: dict[str, Any] = {
                "session_id": r.session_id,
                "timed_out": r.timed_out,
                "truncated": r.truncated,
            }
            if r.cwd is not None:
                data["cwd"] = r.cwd
            if r.interrupted:
                data["interrupted"] = True
            if r.session_closed:
                data["session_closed"] = True
            return ActionResult(
                ok=r.error is None, output=r.output, exit_code=r.exit_code,
                error=r.error, data=data,
            )
        if isinstance(action, WriteFile):
            real, size = await asyncio.to_thread(self.files.write, action.path, action.content)
            return ActionResult(ok=True, data={"path": str(real), "bytes": size})
        if isinstance(action, ReadFile):
            content = await asyncio.to_thread(self.files.read, action.path)
            return ActionResult(
                ok=True,
                output=content.content,
                data={"path": content.path, "encoding": content.encoding, "size": content.size},
            )
        if isinstance(action, Wait):
            await asyncio.sleep(action.seconds)
            return ActionResult(ok=True)
        if action.kind in SCREEN_ACTIONS:
            return await self.screen.act(action)
        raise TerminalError(f"unsupported action kind {getattr(action, 'kind', '?')!r}")


class ClaimRefused(AgentError):
    """The agent already serves another machine, or cannot change its network."""

    code = ErrorCode.CONFLICT


def _empty_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _await_or_cancel(task: asyncio.Task[Acted]) -> Acted:
    """Await ``task``. If the awaiting coroutine is cancelled, cancel the task
    and wait for its clean-up (killing the command) before re-raising; if the
    task alone was cancelled (``/terminal/interrupt`` with its action_id), the
    result says it was interrupted."""
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if task.cancelled() and me is not None and me.cancelling() == 0:
            return ActionResult(ok=False, error="the action was interrupted",
                                data={"interrupted": True}), None
        task.cancel()
        await asyncio.wait({task}, timeout=5.0)
        raise


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class AgentOptions:
    """How an agent serves its machine (the flags of ``deckhand machine-agent``)."""

    sandbox: bool | None = None
    network: bool = True
    state_dir: str | None = None
    desktop: bool = False
    browser: bool = False
    settle: SettlePolicy = field(default_factory=SettlePolicy)
    limits: Limits | None = None  # None: no box (the agent's own tests)
    host_allow: list[tuple[str, int]] = field(default_factory=list)
    box: MachineBox | None = None  # made already (launch.py)
    launched: Browser | None = None  # Chromium started already (launch.py)


def create_agent_app(
    machine_id: str | None,
    workspace: Path | str,
    token: str,
    *,
    sandbox: bool | None = None,
    network: bool = True,
    on_shutdown: Callable[[], None] | None = None,
    options: AgentOptions | None = None,
) -> Starlette:
    """The agent's ASGI app (its :class:`MachineAgent` is ``app.state.agent``).
    ``on_shutdown`` is called after ``POST /shutdown``
    has answered (``serve`` passes a function that stops the server)."""
    if not token:
        raise ValueError("the agent needs a non-empty token")
    opts = options or AgentOptions(sandbox=sandbox, network=network)
    agent = MachineAgent(machine_id, workspace, sandbox=opts.sandbox, network=opts.network,
                         state_dir=opts.state_dir, desktop=opts.desktop, browser=opts.browser,
                         settle=opts.settle, limits=opts.limits, host_allow=opts.host_allow,
                         box=opts.box, launched=opts.launched)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        try:
            await agent.start()
        except BaseException:
            await agent.close()
            raise
        try:
            yield
        finally:
            await agent.close()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "machine_id": agent.machine_id,
                             "kinds": agent.kinds})

    async def info(request: Request) -> Response:
        return JSONResponse(agent.info())

    async def claim(request: Request) -> Response:
        body = await json_body(request) or {}
        mid = body.get("machine_id")
        network = body.get("network")
        if not isinstance(mid, str) or not mid or not isinstance(network, (bool, type(None))):
            return error_response(422, 'send {"machine_id": "…", "network": true|false}')
        try:
            limits = None if body.get("limits") is None else Limits.from_json(body["limits"])
        except ValueError as exc:
            return error_response(422, f"limits: {exc}")
        try:
            await agent.claim(mid, network, limits)
        except AgentError as exc:
            return JSONResponse({"error": error_text(exc)}, status_code=409)
        return JSONResponse(agent.info())

    async def release(request: Request) -> Response:
        await agent.release()
        return JSONResponse(agent.info())

    def claimed(handler):  # type: ignore[no-untyped-def]
        async def guarded(request: Request) -> Response:
            if agent.machine_id is None:
                return error_response(409, "this agent serves no machine yet (POST /claim first)")
            return await handler(request)  # type: ignore[no-any-return]
        return guarded

    async def act(request: Request) -> Response:
        body = await json_body(request)
        if body is None or "action" not in body:
            return error_response(400, 'send a JSON object {"action": {...}}')
        try:
            action = _action_adapter.validate_python(body["action"])
        except ValidationError as exc:
            return error_response(422, f"invalid action: {exc}")
        action_id = body.get("action_id")
        if action_id is not None and not isinstance(action_id, str):
            return error_response(422, "action_id must be a string")
        shoot = body.get("screenshot", False)
        if not isinstance(shoot, bool):
            return error_response(422, "screenshot must be true or false")
        work = asyncio.create_task(agent.act(action, action_id=action_id,
                                             settle=body.get("settle"), screenshot=shoot))
        gone = asyncio.create_task(wait_for_disconnect(request.receive))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                # the client went away (or the server is stopping): kill the action
                work.cancel()
                await asyncio.wait({work}, timeout=5.0)
        if work.cancelled():
            return Response(status_code=499)
        result, frame = work.result()
        return JSONResponse({**result.model_dump(mode="json"), "screenshot": frame_json(frame)})

    async def command(request: Request) -> Response:
        body = await json_body(request)
        if body is None or not isinstance(body.get("command"), str):
            return error_response(400, 'send {"command": "…", "parameters": {...}}')
        params = body.get("parameters") or {}
        timeout_ms = body.get("timeout_ms")
        if not isinstance(params, dict) or not isinstance(timeout_ms, (int, type(None))):
            return error_response(422, "parameters must be an object and timeout_ms an integer")
        result = await run_command(agent, body["command"], params, timeout_ms)
        return JSONResponse(result.as_dict())

    async def screenshot(request: Request) -> Response:
        try:
            frame = await agent.screen.capture()
        except AgentError as exc:
            return error_response(409, error_text(exc))
        return Response(frame.jpeg, media_type="image/jpeg", headers={
            "X-Width": str(frame.width), "X-Height": str(frame.height),
            "X-Source": frame.source})

    async def files(request: Request) -> Response:
        op = request.path_params["op"]
        body = await json_body(request)
        if body is None:
            return error_response(400, 'send a JSON object {"parameters": {...}}')
        params = body.get("parameters", {})
        if not isinstance(params, dict):
            return error_response(422, "parameters must be an object")
        result = await agent.files_op(op, params)
        return JSONResponse(result.model_dump(mode="json"))

    async def interrupt(request: Request) -> Response:
        body = await json_body(request) or {}
        session_id = body.get("session_id")
        action_id = body.get("action_id")
        if not isinstance(session_id, (str, type(None))) or not isinstance(
            action_id, (str, type(None))
        ):
            return error_response(422, "session_id and action_id must be strings")
        done = await agent.interrupt(session_id, action_id)
        return JSONResponse({"interrupted": done})

    async def vnc(request: Request) -> Response:
        if agent.desktop is None:
            return error_response(409, "this machine has no desktop")
        try:
            v = await agent.desktop.start_vnc()
        except AgentError as exc:
            return error_response(502, error_text(exc))
        return JSONResponse({"port": v.port, "password": v.password,
                             "width": agent.desktop.width, "height": agent.desktop.height})

    async def shutdown(request: Request) -> Response:
        await agent.close()
        return JSONResponse(
            {"status": "shutting down"},
            background=BackgroundTask(on_shutdown) if on_shutdown else None,
        )

    app = Starlette(
        middleware=[Middleware(BearerAuth, token=token)],
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/info", info, methods=["GET"]),
            Route("/claim", claim, methods=["POST"]),
            Route("/release", release, methods=["POST"]),
            Route("/act", claimed(act), methods=["POST"]),
            Route("/command", claimed(command), methods=["POST"]),
            Route("/screenshot", claimed(screenshot), methods=["GET"]),
            Route("/files/{op}", claimed(files), methods=["POST"]),
            Route("/terminal/interrupt", interrupt, methods=["POST"]),
            Route("/live/vnc", claimed(vnc), methods=["POST"]),
            WebSocketRoute("/live/vnc", live.vnc_bridge(agent)),
            WebSocketRoute("/live/screencast", live.screencast(agent)),
            Route("/shutdown", shutdown, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.agent = agent
    return app


def _log_prewarm_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("could not start the default terminal session: %s", task.exception())
