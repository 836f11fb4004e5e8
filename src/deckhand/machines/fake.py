"""A machine for tests, shipped in the package as the scripted brain is.

:class:`FakeMachine` implements the :class:`~deckhand.core.machine.Machine`
protocol in memory: a screen of a known size that a click changes (unless the
machine is ``frozen``), every action recorded in order, and terminal commands
answered from a table of outputs. It never touches the host.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from deckhand.core.actions import Action, ActionResult, Click, RunCommand
from deckhand.core.screens import Observation


def screen_image(width: int, height: int, color: tuple[int, int, int] = (30, 90, 160),
                 fmt: str = "JPEG") -> bytes:
    """An image of a known size with a white box, so that screens can differ."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), color)
    ImageDraw.Draw(img).rectangle((width // 4, height // 4, width // 2, height // 2),
                                  fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, format=fmt, quality=80)
    return out.getvalue()


def screen(width: int, height: int, color: tuple[int, int, int] = (30, 90, 160)) -> Observation:
    return Observation(screenshot_jpeg=screen_image(width, height, color), width=width,
                       height=height)


class FakeMachine:
    """An in-memory machine: ``actions`` lists what it was asked to do.

    ``width``/``height`` None makes a machine without a screen (a terminal);
    ``outputs`` maps a command to its output (exit code 0); any other command
    answers with empty output and exit code 0 unless it is in ``failing``.
    """

    def __init__(self, width: int | None = 1280, height: int | None = 800, *,
                 frozen: bool = False, machine_id: str = "fake",
                 outputs: Mapping[str, str] | None = None,
                 failing: frozenset[str] = frozenset()) -> None:
        self.machine_id = machine_id
        self.width, self.height = width, height
        self.frozen = frozen
        self.outputs = dict(outputs or {})
        self.failing = failing
        self.actions: list[Action] = []
        self.downloads: dict[str, bytes] = {}  # what download() answers
        self.screen: Observation | None = (
            screen(width, height) if width is not None and height is not None else None)

    async def observe(self) -> Observation | None:
        return self.screen

    async def act(self, action: Action) -> ActionResult:
        self.actions.append(action)
        if isinstance(action, RunCommand):
            failed = action.command in self.failing
            return ActionResult(ok=not failed, output=self.outputs.get(action.command, ""),
                                exit_code=1 if failed else 0)
        if isinstance(action, Click) and not self.frozen and self.screen is not None:
            assert self.width is not None and self.height is not None
            shade = (len(self.actions) * 37) % 255
            self.screen = screen(self.width, self.height, (shade, 80, 200 - shade // 2))
        return ActionResult(ok=True)

    async def act_and_observe(self, action: Action, *, settle: object = None
                              ) -> tuple[ActionResult, Observation | None]:
        return await self.act(action), self.screen

    async def health(self) -> bool:
        return True

    async def download(self, name: str) -> bytes | None:
        return self.downloads.get(name)
