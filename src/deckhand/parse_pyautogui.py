"""pyautogui code ⇄ the contract's structured actions: :func:`parse` for
POST /v1/parse, and :func:`action_response` for the actions /v1/predict
returns (with the same action as pyautogui code, which parses back).

The code is parsed with :mod:`ast` and never executed: every statement must
be a call of a supported function whose arguments are literals (read with
:func:`ast.literal_eval`). ``import pyautogui`` (with or without an alias,
or ``from pyautogui import …``) and ``import time`` are accepted and ignored;
``time.sleep(N)`` becomes a ``wait``. Anything else is refused with a
:class:`ParseFailed` that names the line.

Supported, with the ``params`` they give (the same shapes /v1/predict returns):

================================  =========  =====================================
pyautogui                         action     params
================================  =========  =====================================
click(x, y, clicks, interval,     click      x, y (omitted: where the mouse is),
button)                                      button, clicks
doubleClick(x, y, …, button)      click      x, y, button, clicks=2
write(text) / typewrite(text)     type_text  text
write([k1, k2]) / typewrite([…])  key_press  key (one action per key)
press(key or [keys], presses)     key_press  key (one action per press)
hotkey(k1, k2, …)                 key_combo  keys
scroll(clicks, x, y)              scroll     direction (up for clicks > 0), amount, x, y
dragTo(x, y, duration, button)    drag       x, y (the end point), button
moveTo(x, y, duration)            move       x, y
time.sleep(seconds)               wait       seconds
================================  =========  =====================================
"""

from __future__ import annotations

import ast
from typing import Any

from deckhand.core.actions import Action, Click, Drag, KeyPress, MoveMouse, Scroll, TypeText, Wait
from deckhand.errors import ValidationFailed

SUPPORTED = ("click", "doubleClick", "write", "typewrite", "press", "hotkey", "scroll",
             "dragTo", "moveTo")
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "click": ("x", "y", "clicks", "interval", "button", "duration", "tween", "logScreenshot",
              "_pause"),
    "doubleClick": ("x", "y", "interval", "button", "duration", "tween", "logScreenshot",
                    "_pause"),
    "write": ("message", "interval", "logScreenshot", "_pause"),
    "typewrite": ("message", "interval", "logScreenshot", "_pause"),
    "press": ("keys", "presses", "interval", "logScreenshot", "_pause"),
    "scroll": ("clicks", "x", "y", "logScreenshot", "_pause"),
    "dragTo": ("x", "y", "duration", "tween", "button", "logScreenshot", "_pause", "mouseDownUp"),
    "moveTo": ("x", "y", "duration", "tween", "logScreenshot", "_pause"),
    "sleep": ("seconds",),
}
_BUTTONS = ("left", "right", "middle", "primary", "secondary")


class ParseFailed(ValidationFailed):
    """The code holds something /v1/parse does not turn into actions."""


def parse(code: str) -> list[dict[str, Any]]:
    """The contract's ``ActionResponse`` objects for ``code``, in order."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ParseFailed(f"Line {exc.lineno}: not valid Python ({exc.msg}).") from None
    modules = {"pyautogui"}
    time_modules: set[str] = set()
    imported: dict[str, str] = {}  # local name → pyautogui function
    actions: list[dict[str, Any]] = []
    for stmt in tree.body:
        line = stmt.lineno
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name == "pyautogui":
                    modules.add(alias.asname or alias.name)
                elif alias.name == "time":
                    time_modules.add(alias.asname or alias.name)
                else:
                    raise _refused(line, f"import {alias.name}")
            continue
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "pyautogui":
            for alias in stmt.names:
                if alias.name not in SUPPORTED:
                    raise _refused(line, f"pyautogui.{alias.name}")
                imported[alias.asname or alias.name] = alias.name
            continue
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
            raise ParseFailed(f"Line {line}: only calls of pyautogui functions are parsed, "
                              f"not {_source(code, stmt)!r}. {_supported()}")
        call = stmt.value
        name = _function(call.func, modules, time_modules, imported)
        if name is None:
            raise _refused(line, _source(code, call.func))
        args = _arguments(call, name, line)
        raw = _source(code, stmt)
        for action in _actions(name, args, line):
            action["raw_code"] = raw
            actions.append(action)
    return actions


def _supported() -> str:
    return ("Supported: " + ", ".join(f"pyautogui.{n}" for n in SUPPORTED)
            + " and time.sleep.")


def _refused(line: int, what: str) -> ParseFailed:
    return ParseFailed(f"Line {line}: {what} is not supported. {_supported()}")


def _source(code: str, node: ast.AST) -> str:
    return (ast.get_source_segment(code, node) or ast.dump(node))[:200]


def _function(func: ast.expr, modules: set[str], time_modules: set[str],
              imported: dict[str, str]) -> str | None:
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        if func.value.id in modules and func.attr in SUPPORTED:
            return func.attr
        if func.value.id in time_modules and func.attr == "sleep":
            return "sleep"
        return None
    if isinstance(func, ast.Name):
        return imported.get(func.id)
    return None


def _arguments(call: ast.Call, name: str, line: int) -> dict[str, Any]:
    names = _SIGNATURES.get(name)
    values: dict[str, Any] = {}
    positional: list[Any] = []
    for node in call.args:
        if isinstance(node, ast.Starred):
            raise ParseFailed(f"Line {line}: *arguments are not supported.")
        positional.append(_literal(node, line))
    if name == "hotkey":
        values["keys"] = positional
    else:
        assert names is not None
        if positional and isinstance(positional[0], (tuple, list)) and len(positional[0]) == 2 \
                and names[:2] == ("x", "y"):
            positional = [*positional[0], *positional[1:]]  # click((x, y))
        if len(positional) > len(names):
            raise ParseFailed(f"Line {line}: too many arguments for pyautogui.{name}.")
        values.update(zip(names, positional, strict=False))
    for kw in call.keywords:
        if kw.arg is None:
            raise ParseFailed(f"Line {line}: **arguments are not supported.")
        if name != "hotkey" and kw.arg not in (names or ()):
            raise ParseFailed(f"Line {line}: pyautogui.{name} has no argument {kw.arg!r}.")
        values[kw.arg] = _literal(kw.value, line)
    return values


def _literal(node: ast.expr, line: int) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ParseFailed(f"Line {line}: arguments must be literal values (numbers, strings, "
                          "lists), not expressions.") from None


def _number(value: Any, what: str, line: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseFailed(f"Line {line}: {what} must be a number.")
    return round(value)


def _point(args: dict[str, Any], line: int, required: bool) -> dict[str, int]:
    x, y = args.get("x"), args.get("y")
    if x is None and y is None and not required:
        return {}
    if x is None or y is None:
        raise ParseFailed(f"Line {line}: x and y are both needed.")
    return {"x": _number(x, "x", line), "y": _number(y, "y", line)}


def _button(args: dict[str, Any], line: int) -> str:
    button = args.get("button", "left")
    if button not in _BUTTONS:
        raise ParseFailed(f"Line {line}: button must be left, right or middle.")
    return {"primary": "left", "secondary": "right"}.get(button, button)


def _key(value: Any, line: int) -> str:
    if not isinstance(value, str) or not value:
        raise ParseFailed(f"Line {line}: keys must be non-empty strings.")
    return value


def _actions(name: str, args: dict[str, Any], line: int) -> list[dict[str, Any]]:
    if name in ("click", "doubleClick"):
        clicks = 2 if name == "doubleClick" else _number(args.get("clicks", 1), "clicks", line)
        if not 1 <= clicks <= 3:
            raise ParseFailed(f"Line {line}: clicks must be 1 to 3.")
        return [{"action_type": "click", "params": {
            **_point(args, line, required=False), "button": _button(args, line),
            "clicks": clicks}}]
    if name in ("write", "typewrite"):
        message = args.get("message")
        if isinstance(message, str):
            return [{"action_type": "type_text", "params": {"text": message}}]
        if isinstance(message, (list, tuple)):
            return [{"action_type": "key_press", "params": {"key": _key(k, line)}}
                    for k in message]
        raise ParseFailed(f"Line {line}: pyautogui.{name} needs a string (or a list of keys).")
    if name == "press":
        keys = args.get("keys")
        keys = list(keys) if isinstance(keys, (list, tuple)) else [keys]
        presses = _number(args.get("presses", 1), "presses", line)
        if not 1 <= presses <= 100:
            raise ParseFailed(f"Line {line}: presses must be 1 to 100.")
        return [{"action_type": "key_press", "params": {"key": _key(k, line)}}
                for _ in range(presses) for k in keys]
    if name == "hotkey":
        keys = [_key(k, line) for k in args["keys"]]
        if not keys:
            raise ParseFailed(f"Line {line}: pyautogui.hotkey needs at least one key.")
        return [{"action_type": "key_combo", "params": {"keys": keys}}]
    if name == "scroll":
        clicks = _number(args.get("clicks"), "clicks", line)
        if clicks == 0:
            raise ParseFailed(f"Line {line}: scroll needs a non-zero number of clicks.")
        return [{"action_type": "scroll", "params": {
            "direction": "up" if clicks > 0 else "down", "amount": abs(clicks),
            **_point(args, line, required=False)}}]
    if name == "dragTo":
        return [{"action_type": "drag", "params": {**_point(args, line, required=True),
                                                    "button": _button(args, line)}}]
    if name == "moveTo":
        return [{"action_type": "move", "params": _point(args, line, required=True)}]
    seconds = args.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ParseFailed(f"Line {line}: time.sleep needs a number of seconds.")
    return [{"action_type": "wait", "params": {"seconds": seconds}}]


# --------------------------------------------------------------------------- the other way


_PYAUTOGUI_KEYS = {"Return": "enter", "Escape": "esc", "BackSpace": "backspace",
                   "Page_Up": "pageup", "Page_Down": "pagedown", "Caps_Lock": "capslock",
                   "Print": "printscreen", "super": "win", "Delete": "delete", "Tab": "tab",
                   "Home": "home", "End": "end", "Insert": "insert", "Up": "up", "Down": "down",
                   "Left": "left", "Right": "right"}


def _pyautogui_key(key: str) -> str:
    return _PYAUTOGUI_KEYS.get(key, key.lower() if len(key) > 1 else key)


def action_response(action: Action) -> dict[str, Any] | None:
    """An action as the contract's ``ActionResponse`` (None: nothing to report)."""
    if isinstance(action, Click):
        args = f"{action.x}, {action.y}"
        if action.button != "left":
            args += f", button={action.button!r}"
        fn = "doubleClick" if action.count == 2 else "click"
        if action.count == 3:
            args += ", clicks=3"
        return {"action_type": "click", "raw_code": f"pyautogui.{fn}({args})",
                "params": {"x": action.x, "y": action.y, "button": action.button,
                           "clicks": action.count}}
    if isinstance(action, TypeText):
        return {"action_type": "type_text", "params": {"text": action.text},
                "raw_code": f"pyautogui.write({action.text!r})"}
    if isinstance(action, KeyPress):
        keys = [_pyautogui_key(k) for k in action.keys.split("+") if k] or [action.keys]
        if len(keys) == 1:
            return {"action_type": "key_press", "params": {"key": keys[0]},
                    "raw_code": f"pyautogui.press({keys[0]!r})"}
        return {"action_type": "key_combo", "params": {"keys": keys},
                "raw_code": f"pyautogui.hotkey({', '.join(repr(k) for k in keys)})"}
    if isinstance(action, Scroll):
        params: dict[str, Any] = {"direction": action.direction, "amount": action.amount}
        where = ""
        if action.x is not None and action.y is not None:
            params.update(x=action.x, y=action.y)
            where = f", x={action.x}, y={action.y}"
        if action.direction in ("up", "down"):
            clicks = action.amount if action.direction == "up" else -action.amount
            raw = f"pyautogui.scroll({clicks}{where})"
        else:
            clicks = action.amount if action.direction == "right" else -action.amount
            raw = f"pyautogui.hscroll({clicks}{where})"
        return {"action_type": "scroll", "params": params, "raw_code": raw}
    if isinstance(action, Drag):
        return {"action_type": "drag",
                "params": {"start_x": action.x, "start_y": action.y, "x": action.to_x,
                           "y": action.to_y},
                "raw_code": f"pyautogui.moveTo({action.x}, {action.y})\n"
                            f"pyautogui.dragTo({action.to_x}, {action.to_y})"}
    if isinstance(action, MoveMouse):
        return {"action_type": "move", "params": {"x": action.x, "y": action.y},
                "raw_code": f"pyautogui.moveTo({action.x}, {action.y})"}
    if isinstance(action, Wait):
        return {"action_type": "wait", "params": {"seconds": action.seconds},
                "raw_code": f"time.sleep({action.seconds:g})"}
    return None
