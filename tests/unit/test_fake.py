"""The fake machine shipped in the package (deckhand.machines.fake)."""

from __future__ import annotations

import io

from PIL import Image

from deckhand.core.actions import Click, RunCommand
from deckhand.machines.fake import FakeMachine


async def test_a_click_changes_the_screen_and_every_action_is_recorded() -> None:
    machine = FakeMachine(640, 400)
    before = await machine.observe()
    assert before is not None and Image.open(io.BytesIO(before.screenshot_jpeg)).size == (640, 400)
    result, after = await machine.act_and_observe(Click(x=3, y=4))
    assert result.ok and after is not None and after.screenshot_jpeg != before.screenshot_jpeg
    assert machine.actions == [Click(x=3, y=4)]


async def test_a_frozen_screen_stays_the_same() -> None:
    machine = FakeMachine(320, 200, frozen=True)
    before = await machine.observe()
    _, after = await machine.act_and_observe(Click(x=1, y=1))
    assert after == before


async def test_commands_answer_from_the_table_and_a_terminal_has_no_screen() -> None:
    machine = FakeMachine(None, None, outputs={"echo hi": "hi\n"}, failing=frozenset({"false"}))
    assert await machine.observe() is None
    ok = await machine.act(RunCommand(command="echo hi"))
    assert (ok.ok, ok.output, ok.exit_code) == (True, "hi\n", 0)
    bad = await machine.act(RunCommand(command="false"))
    assert (bad.ok, bad.exit_code) == (False, 1)
