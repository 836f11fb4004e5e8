"""Actions in words: the phrase a step's action is told by, to a model (the
history of a run) and to the agent's recovery hint alike, so both say the
same thing of the same action."""

from __future__ import annotations

from deckhand.core import actions


def short(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (an ellipsis marks the cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(action: actions.Action) -> str:
    """What ``action`` does, in a few words (``click at (5, 5)``, ``run `ls```)."""
    if isinstance(action, actions.Click):
        times = {1: "", 2: "double-", 3: "triple-"}[action.count]
        button = "" if action.button == "left" else f"{action.button}-"
        return f"{times}{button}click at ({action.x}, {action.y})"
    if isinstance(action, actions.MoveMouse):
        return f"move the mouse to ({action.x}, {action.y})"
    if isinstance(action, actions.Drag):
        return f"drag ({action.x}, {action.y}) → ({action.to_x}, {action.to_y})"
    if isinstance(action, actions.TypeText):
        where = f" into {short(action.into, 60)!r}" if action.into else ""
        return f"type {short(action.text, 60)!r}{where}"
    if isinstance(action, actions.KeyPress):
        return f"press {action.keys}"
    if isinstance(action, actions.Scroll):
        return f"scroll {action.direction} {action.amount}"
    if isinstance(action, actions.OpenUrl):
        return f"open {action.url}"
    if isinstance(action, actions.ClickText):
        return f"click {action.label!r}"
    if isinstance(action, actions.Screenshot):
        return "take a screenshot"
    if isinstance(action, actions.RunCommand):
        return f"run `{short(action.command, 120)}`"
    if isinstance(action, actions.ReadFile):
        return f"read {action.path}"
    if isinstance(action, actions.WriteFile):
        return f"write {len(action.content)} characters to {action.path}"
    if isinstance(action, actions.Wait):
        return f"wait {action.seconds:g} s"
    return str(getattr(action, "kind", "action"))
