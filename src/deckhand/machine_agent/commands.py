"""The contract's ``ActionRequest`` commands (and the browser sub-API's ops),
carried out by the machine agent. Every command answers a
:class:`CommandResult`; a failure is ``ok=False`` with a message, never an
exception. Commands without a meaning on this machine (window commands
without a desktop) fail with a message that says why.

Commands that can change the screen settle it afterwards (:mod:`.settle`;
``parameters.settle`` overrides: ``"auto"``, ``"none"``, milliseconds) and
report ``result.settle``; ``browser_*`` commands answer the settled page's
screenshot, other commands too with ``parameters.screenshot: true``."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deckhand.core.actions import Click, Drag, KeyPress, Scroll, TypeText
from deckhand.errors import ErrorCode
from deckhand.machine_agent.errors import AgentError, error_text
from deckhand.machine_agent.keys import split_combo
from deckhand.machine_agent.screen import ScreenError

if TYPE_CHECKING:
    from deckhand.machine_agent.server import MachineAgent

COMMANDS = (
    "screenshot", "click", "double_click", "click_with_modifiers", "type", "key_press",
    "key_combo", "scroll", "drag", "list_windows", "switch_to_window", "close_window",
    "minimize_window", "maximize_window", "restore_window", "arrange_windows", "move_window",
    "terminal_connect", "terminal_execute", "terminal_read", "terminal_clear", "terminal_close",
    "file_read", "file_exists", "directory_list", "file_write", "file_edit", "file_append",
    "file_delete", "directory_delete", "file_download", "file_list_downloads",
    "browser_open", "browser_navigate", "browser_click", "browser_type", "browser_get_dom",
    "browser_get_clickables", "browser_state", "browser_info", "browser_scroll",
    "browser_close", "browser_screenshot", "browser_wait", "browser_list_tabs",
    "browser_open_tab", "browser_close_tab", "browser_switch_tab", "browser_execute",
)
# browser/{op} of the sub-API → command
BROWSER_OPS = {
    "open": "browser_open", "navigate": "browser_navigate", "click": "browser_click",
    "type": "browser_type", "dom": "browser_get_dom", "clickables": "browser_get_clickables",
    "state": "browser_state", "info": "browser_info", "scroll": "browser_scroll",
    "close": "browser_close", "screenshot": "browser_screenshot", "wait": "browser_wait",
    "list-tabs": "browser_list_tabs", "open-tab": "browser_open_tab",
    "close-tab": "browser_close_tab", "switch-tab": "browser_switch_tab",
}
FILE_COMMANDS = {
    "file_read": "read", "file_exists": "exists", "directory_list": "list-directory",
    "file_write": "write", "file_edit": "edit", "file_append": "append",
    "file_delete": "delete", "directory_delete": "delete-directory",
    "file_download": "download", "file_list_downloads": "list-downloads",
}
TERMINAL_OUTPUT_LIMIT = 5000  # the contract: output truncated VM-side to 5000 chars
NO_SCREENSHOT = {"browser_close", "browser_info", "browser_list_tabs"}
# Commands after which the screen is settled unless parameters.settle says otherwise.
SETTLING_COMMANDS = frozenset({
    "click", "double_click", "click_with_modifiers", "type", "key_press", "key_combo", "scroll",
    "drag", "switch_to_window", "close_window", "minimize_window", "maximize_window",
    "restore_window", "arrange_windows", "move_window", "browser_open", "browser_navigate",
    "browser_click", "browser_type", "browser_scroll", "browser_open_tab", "browser_close_tab",
    "browser_switch_tab",
})  # not browser_execute: a script mostly reads (parameters.settle: "auto" when it acts)


class CommandFailed(AgentError):
    """A command that cannot be carried out as asked (unknown, missing parameter)."""

    code = ErrorCode.VALIDATION_ERROR


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: int = 0
    screenshot: str | None = None  # data URI, for browser_* commands
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "result": self.result, "error": self.error,
                "duration_ms": self.duration_ms, "screenshot": self.screenshot}


async def run_command(agent: MachineAgent, command: str, params: dict[str, Any],
                      timeout_ms: int | None = None) -> CommandResult:
    started = time.monotonic()
    on_browser = command.startswith("browser_")
    wants_shot = (command not in NO_SCREENSHOT and bool(params.get("screenshot", True))
                  if on_browser else bool(params.get("screenshot", False)))
    try:
        async with asyncio.timeout((timeout_ms or 120_000) / 1000):
            spec = agent.screen.settle_policy.resolve(
                params.get("settle"), "auto" if command in SETTLING_COMMANDS else "none")
            watch = agent.screen.watch("browser" if on_browser else None)
            result = await _dispatch(agent, command, params)
            done = await watch.settle(spec, frame=wants_shot and (
                agent.browser.running or not on_browser))
        if spec.mode != "none" or "settle" in params:
            result = {**result, "settle": done.report.as_dict()}
        shot = None
        if done.frame is not None:
            shot = "data:image/jpeg;base64," + base64.b64encode(done.frame.jpeg).decode()
        return CommandResult(ok=True, result=result, duration_ms=_ms(started), screenshot=shot)
    except TimeoutError:
        return CommandResult(ok=False, error=f"{command} did not finish within "
                             f"{(timeout_ms or 120_000) / 1000:g} s", duration_ms=_ms(started))
    except Exception as exc:  # the error boundary: an answer, never a traceback
        error = error_text(exc, failed=f"{command} failed", parameters=True)
        return CommandResult(ok=False, error=error, duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _int(p: dict[str, Any], *names: str, default: int | None = None) -> int | None:
    for n in names:
        if p.get(n) is not None:
            return int(p[n])
    return default


def _need_int(p: dict[str, Any], *names: str) -> int:
    value = _int(p, *names)
    if value is None:
        raise CommandFailed(f"parameter {names[0]!r} (an integer) is required")
    return value


def _text(p: dict[str, Any], *names: str) -> str:
    for n in names:
        if isinstance(p.get(n), str):
            return str(p[n])
    raise CommandFailed(f"parameter {names[0]!r} (a string) is required")


async def _dispatch(agent: MachineAgent, command: str, p: dict[str, Any]) -> dict[str, Any]:
    if command not in COMMANDS:
        raise CommandFailed(f"unknown command {command!r}")
    if command in FILE_COMMANDS:
        r = await agent.files_op(FILE_COMMANDS[command], p)
        if not r.ok:
            raise CommandFailed(r.error or "file operation failed")
        return {"output": r.output, **r.data}
    if command.startswith("terminal_"):
        return await _terminal(agent, command, p)
    if command.startswith("browser_"):
        return await _browser(agent, command, p)
    if command in ("list_windows", "switch_to_window", "close_window", "minimize_window",
                   "maximize_window", "restore_window", "arrange_windows", "move_window"):
        return await _window(agent, command, p)
    return await _screen(agent, command, p)


# --------------------------------------------------------------------------- screen


async def _screen(agent: MachineAgent, command: str, p: dict[str, Any]) -> dict[str, Any]:
    screen = agent.screen
    if command == "screenshot":
        frame = await screen.capture()
        return {"image_b64": base64.b64encode(frame.jpeg).decode(), "mime_type": "image/jpeg",
                "width": frame.width, "height": frame.height, "source": frame.source}
    if command in ("click", "double_click", "click_with_modifiers"):
        x, y = _need_int(p, "x"), _need_int(p, "y")
        button = str(p.get("button") or "left")
        count = 2 if command == "double_click" else int(p.get("clicks") or p.get("count") or 1)
        mods = p.get("modifiers") or p.get("keys") or []
        if isinstance(mods, str):
            mods = split_combo(mods)
        if command == "click_with_modifiers" and not mods:
            raise CommandFailed("click_with_modifiers needs modifiers, e.g. [\"ctrl\"]")
        if mods:
            if agent.desktop is not None and agent.desktop.input is not None:
                agent.desktop.input.click(x, y, button, count, modifiers=mods)
            elif screen.source == "browser":
                await agent.browser.click_at(x, y, button, count, modifiers=list(mods))
            else:
                raise ScreenError("no screen to click on: open a URL first")
        else:
            r = await screen.act(Click(x=x, y=y, button=button, count=min(count, 3)))
            _raise(r)
        return {"x": x, "y": y, "button": button, "clicks": count}
    if command == "type":
        text = _text(p, "text")
        _raise(await screen.act(TypeText(text=text)))
        return {"typed": len(text)}
    if command in ("key_press", "key_combo"):
        keys = p.get("keys") if p.get("keys") is not None else p.get("key")
        if keys is None:
            raise CommandFailed("parameter 'key' (or 'keys') is required")
        combo = keys if isinstance(keys, str) else "+".join(str(k) for k in keys)
        _raise(await screen.act(KeyPress(keys=combo)))
        return {"keys": combo}
    if command == "scroll":
        direction = str(p.get("direction") or "down")
        amount = _int(p, "amount", "clicks", default=3) or 3
        r = await screen.act(Scroll(direction=direction, amount=max(1, min(amount, 50)),
                                    x=_int(p, "x"), y=_int(p, "y")))
        _raise(r)
        return {"direction": direction, "amount": amount, **r.data}
    if command == "drag":
        x = _need_int(p, "start_x", "x", "from_x")
        y = _need_int(p, "start_y", "y", "from_y")
        tx = _need_int(p, "end_x", "to_x")
        ty = _need_int(p, "end_y", "to_y")
        _raise(await screen.act(Drag(x=x, y=y, to_x=tx, to_y=ty)))
        return {"from": {"x": x, "y": y}, "to": {"x": tx, "y": ty}}
    raise CommandFailed(f"unknown command {command!r}")


def _raise(r: Any) -> None:
    if not r.ok:
        raise CommandFailed(r.error or "the action failed")


# --------------------------------------------------------------------------- windows


async def _window(agent: MachineAgent, command: str, p: dict[str, Any]) -> dict[str, Any]:
    desktop = agent.desktop
    if desktop is None or desktop.windows is None:
        raise CommandFailed(f"{command} needs a desktop; this machine has none "
                            "(provision it with desktop_enabled: true)")
    w = desktop.windows
    if command == "list_windows":
        return {"windows": [x.as_dict() for x in await asyncio.to_thread(w.list)]}
    if command == "arrange_windows":
        done = await asyncio.to_thread(w.arrange, desktop.width, desktop.height)
        return {"arranged": [x.id for x in done]}
    ref = p.get("window_id", p.get("id", p.get("title", p.get("name"))))
    target = await asyncio.to_thread(w.find, ref)
    if command == "switch_to_window":
        await asyncio.to_thread(w.activate, target.id)
    elif command == "close_window":
        await asyncio.to_thread(w.close_window, target.id)
    elif command == "minimize_window":
        await asyncio.to_thread(w.minimize, target.id)
    elif command == "maximize_window":
        await asyncio.to_thread(w.maximize, target.id)
    elif command == "restore_window":
        await asyncio.to_thread(w.restore, target.id)
    elif command == "move_window":
        await asyncio.to_thread(w.move, target.id, _int(p, "x"), _int(p, "y"),
                                _int(p, "width"), _int(p, "height"))
    return {"window": target.as_dict()}


# --------------------------------------------------------------------------- terminal


async def _terminal(agent: MachineAgent, command: str, p: dict[str, Any]) -> dict[str, Any]:
    terms = agent.terminals
    sid = p.get("session_id") or None
    if command == "terminal_connect":
        await terms.start(sid or "default")
        return {"session_id": sid or "default", "sessions": terms.session_ids()}
    if command == "terminal_execute":
        r = await terms.run(_text(p, "command"), session_id=sid, cwd=p.get("cwd"),
                            timeout_ms=int(p.get("timeout_ms") or 30_000))
        return terminal_result(r)
    if command == "terminal_read":
        text = terms.transcript(sid)
        return {"session_id": sid or terms.last_session,
                "output": text[-TERMINAL_OUTPUT_LIMIT:],
                "truncated": len(text) > TERMINAL_OUTPUT_LIMIT}
    if command == "terminal_clear":
        terms.clear_transcript(sid)
        return {"session_id": sid or terms.last_session, "cleared": True}
    if command == "terminal_close":
        closed = await terms.close(sid or "default")
        return {"session_id": sid or "default", "closed": closed}
    raise CommandFailed(f"unknown command {command!r}")


def terminal_result(r: Any) -> dict[str, Any]:
    output = r.output
    truncated = r.truncated or len(output) > TERMINAL_OUTPUT_LIMIT
    if len(output) > TERMINAL_OUTPUT_LIMIT:
        output = output[-TERMINAL_OUTPUT_LIMIT:]
    if r.error:
        raise CommandFailed(r.error)
    out = {"output": output, "exit_code": r.exit_code, "session_id": r.session_id,
           "timed_out": r.timed_out, "truncated": truncated, "duration_ms": r.duration_ms}
    if r.cwd is not None:
        out["cwd"] = r.cwd
    if r.interrupted:
        out["interrupted"] = True
    return out


# --------------------------------------------------------------------------- browser


async def _browser(agent: MachineAgent, command: str, p: dict[str, Any]) -> dict[str, Any]:
    b = agent.browser
    if command == "browser_open":
        await b.start()
        if p.get("url"):
            if p.get("new_tab"):
                return await b.open_tab(str(p["url"]))
            return await b.goto(str(p["url"]), timeout_ms=int(p.get("timeout_ms") or 30_000))
        return await b.info()
    if command == "browser_navigate":
        return await b.goto(_text(p, "url"), timeout_ms=int(p.get("timeout_ms") or 30_000))
    if command == "browser_close":
        await b.close()
        return {"closed": True}
    if command == "browser_info":
        return await b.info()
    if not b.running and command in ("browser_list_tabs",):
        return {"tabs": []}
    if command == "browser_click":
        return await b.click(p)
    if command == "browser_type":
        return await b.type(p)
    if command == "browser_get_dom":
        return await b.dom(p)
    if command == "browser_get_clickables":
        items = await b.clickables()
        return {"clickables": items, "count": len(items)}
    if command == "browser_state":
        return await b.state()
    if command == "browser_scroll":
        return await b.scroll(str(p.get("direction") or "down"),
                              int(p.get("amount") or 3), _int(p, "x"), _int(p, "y"))
    if command == "browser_screenshot":
        frame = await b.screenshot(int(p.get("quality") or 75))
        return {"image_b64": base64.b64encode(frame.jpeg).decode(), "mime_type": "image/jpeg",
                "width": frame.width, "height": frame.height}
    if command == "browser_wait":
        return await b.wait(p)
    if command == "browser_list_tabs":
        return {"tabs": await b.tabs()}
    if command == "browser_open_tab":
        return await b.open_tab(p.get("url"))
    if command == "browser_close_tab":
        return await b.close_tab(_int(p, "index", "tab"))
    if command == "browser_switch_tab":
        return await b.switch_tab(_need_int(p, "index", "tab"))
    if command == "browser_execute":
        script = _text(p, "script", "code", "expression")
        value = await b.execute(script)
        return {"value": value}
    raise CommandFailed(f"unknown command {command!r}")
