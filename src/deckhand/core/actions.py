"""What an agent can do to a machine in one step, and what came of it.

Actions are data (a pydantic discriminated union on ``kind``) so that a step
record can store them as JSON and a crashed run can be rebuilt from them.
Execution lives in the machine layer; results are frozen values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunCommand(_Action):
    """Run a shell command in the machine's persistent terminal session."""

    kind: Literal["terminal"] = "terminal"
    command: str
    session_id: str | None = None
    cwd: str | None = None
    timeout_ms: int = 120_000


class WriteFile(_Action):
    kind: Literal["write_file"] = "write_file"
    path: str
    content: str


class ReadFile(_Action):
    kind: Literal["read_file"] = "read_file"
    path: str


class Wait(_Action):
    kind: Literal["wait"] = "wait"
    seconds: float = Field(ge=0, le=3600)


class Click(_Action):
    """Click at screen coordinates (the machine's real resolution)."""

    kind: Literal["click"] = "click"
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    button: Literal["left", "right", "middle"] = "left"
    count: int = Field(default=1, ge=1, le=3)


class MoveMouse(_Action):
    kind: Literal["move"] = "move"
    x: int = Field(ge=0)
    y: int = Field(ge=0)


class Drag(_Action):
    kind: Literal["drag"] = "drag"
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    to_x: int = Field(ge=0)
    to_y: int = Field(ge=0)


class TypeText(_Action):
    """Type ``text`` where the focus is, or, with ``into``, into the editable
    field that label names (grounded by the machine). The machine answers
    ``ok`` false when the text would land in no editable element, so a miss
    is a failure and not a silent success."""

    kind: Literal["type"] = "type"
    text: str
    into: str | None = None


class KeyPress(_Action):
    """A key or a combination, xdotool-style names joined by ``+`` (``ctrl+s``)."""

    kind: Literal["key"] = "key"
    keys: str


class Scroll(_Action):
    kind: Literal["scroll"] = "scroll"
    direction: Literal["up", "down", "left", "right"] = "down"
    amount: int = Field(default=3, ge=1, le=50)
    x: int | None = None
    y: int | None = None


class OpenUrl(_Action):
    """Open a URL in the machine's browser."""

    kind: Literal["open_url"] = "open_url"
    url: str


class ClickText(_Action):
    """Click the element or text on screen that reads ``label`` (grounded by the
    machine: the browser's DOM, or text recognition on the screenshot)."""

    kind: Literal["click_text"] = "click_text"
    label: str


class Screenshot(_Action):
    kind: Literal["screenshot"] = "screenshot"


Action = Annotated[
    Union[RunCommand, WriteFile, ReadFile, Wait, Click, MoveMouse, Drag, TypeText, KeyPress,
          Scroll, OpenUrl, ClickText, Screenshot],
    Field(discriminator="kind"),
]
SCREEN_ACTIONS = frozenset({"click", "move", "drag", "type", "key", "scroll", "open_url",
                            "click_text", "screenshot"})


class ActionResult(BaseModel):
    """The outcome of one action. ``ok`` is False when the action itself failed
    (a missing file, a machine error); a command that exits non-zero is still
    ``ok`` — its exit code is data for the brain."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    output: str = ""
    exit_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def content(self) -> str:
        """What the action read: ``output``, else a file read's ``data["content"]``."""
        content = self.data.get("content")
        if not self.output and isinstance(content, str):
            return content
        return self.output
