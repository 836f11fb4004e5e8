"""Actions in words: the phrase a step's action is told by, to a model (the
history of a run) and to the agent's recovery hint alike, so both say the
same thing of the same action."""

from __future__ import annotations

from deckhand.core.actions import (
    Action,
    Click,
    ClickText,
    Drag,
    KeyPress,
    MoveMouse,
    OpenUrl,
    ReadFile,
    RunCommand,
    Screenshot,
    Scroll,
    TypeText,
    Wait,
    WriteFile,
)


def short(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (an ellipsis marks the cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(action: Action) -> str:
    """What ``action`` does, in a few words (``click at (5, 5)``, ``run `ls```)."""
    if isinstance(action, Click):
        times = {1: "", 2: "double-", 3: "triple-"}[action.count]
        button = "" if action.button == "left" else f"{action.button}-"
        return f"{times}{button}click at ({action.x}, {action.y})"
    if isinstance(action, MoveMouse):
        return f"move the mouse to ({action.x}, {action.y})"
    if isinstance(action, Drag):
        return f"drag ({action.x}, {action.y}) → ({action.to_x}, {action.to_y})"
    if isinstance(action, TypeText):
        return f"type {short(action.text, 60)!r}"
    if isinstance(action, KeyPress):
        return f"press {action.keys}"
    if isinstance(action, Scroll):
        return f"scroll {action.direction} {action.amount}"
    if isinstance(action, OpenUrl):
        return f"open {action.url}"
    if isinstance(action, ClickText):
        return f"click {action.label!r}"
    if isinstance(action, Screenshot):
        return "take a screenshot"
    if isinstance(action, RunCommand):
        return f"run `{short(action.command, 120)}`"
    if isinstance(action, ReadFile):
        return f"read {action.path}"
    if isinstance(action, WriteFile):
        return f"write {len(action.content)} characters to {action.path}"
    if isinstance(action, Wait):
        return f"wait {action.seconds:g} s"
    return str(getattr(action, "kind", "action"))
