"""``type … into "LABEL"`` on a real page, in a headless browser (the DOM)
and in the desktop's browser (text recognition and the image's boxes): the
field a label names is the one typed into, and a type that lands in no
editable element answers ``ok`` false with the reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from deckhand.core.actions import ClickText, OpenUrl, TypeText
from deckhand.machine_agent.browser import chromium_available
from deckhand.machine_agent.server import MachineAgent
from tests.support.static_site import static_site

pytestmark = pytest.mark.skipif(not chromium_available(), reason="chromium not installed")

FORM = """<!doctype html><html><head><title>Sign up</title><style>
body{font:20px 'DejaVu Sans';margin:60px} input{font:inherit;width:320px;padding:6px}
</style></head><body><h1>Sign up</h1>
<div><label>Email address</label></div><div><input id="email"></div>
<p style="margin-top:30px">Full name <input id="name"></p>
<p><input id="city" placeholder="City"></p>
<p><label>Newsletter <select id="pick"><option>yes</option></select></label></p>
<p style="margin-top:30px">Terms apply to everyone.</p></body></html>"""
VALUES = "() => ['email', 'name', 'city'].map(id => document.getElementById(id).value)"


async def _agent(tmp_path: Path, *, desktop: bool) -> MachineAgent:
    (tmp_path / "ws").mkdir(exist_ok=True)
    agent = MachineAgent("m-1", tmp_path / "ws", sandbox=False, state_dir=tmp_path / "state",
                         desktop=desktop, browser=not desktop)
    await agent.start()
    return agent


@pytest.fixture
def served() -> Iterator[str]:
    with static_site({"form.html": FORM}) as base:
        yield f"{base}/form.html"


async def test_dom_types_into_the_field_a_label_names(tmp_path: Path, served: str) -> None:
    agent = await _agent(tmp_path, desktop=False)
    try:
        assert (await agent.act(OpenUrl(url=served)))[0].ok
        typed = {}
        for label, text in (("Email address", "ada@example.com"), ("Full name", "Ada"),
                            ("City", "Paris")):
            result, _ = await agent.act(TypeText(text=text, into=label))
            assert result.ok, result.error
            typed[label] = result.data["how"]
        assert typed == {"Email address": "nearby-text", "Full name": "nearby-text",
                         "City": "placeholder"}
        assert await agent.browser.execute(VALUES) == ["ada@example.com", "Ada", "Paris"]

        missing, _ = await agent.act(TypeText(text="x", into="Phone number"))
        assert not missing.ok and missing.data["label_found"] is False
        assert "no editable field on the page is named 'Phone number'" in (missing.error or "")
        # A select takes no typed text: naming it is a miss, not a success.
        select, _ = await agent.act(TypeText(text="x", into="Newsletter"))
        assert not select.ok, select
        # Clicking a label's text focuses nothing; typing then lands nowhere.
        assert (await agent.act(ClickText(label="Terms apply to everyone.")))[0].ok
        nowhere, _ = await agent.act(TypeText(text="lost"))
        assert not nowhere.ok
        assert "the text would land in no editable element" in (nowhere.error or "")
        assert await agent.browser.execute(VALUES) == ["ada@example.com", "Ada", "Paris"]
    finally:
        await agent.close()


@pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("tesseract") is None,
                    reason="Xvfb or tesseract not installed")
async def test_desktop_types_into_the_field_a_label_names(tmp_path: Path, served: str) -> None:
    agent = await _agent(tmp_path, desktop=True)
    try:
        assert (await agent.act(OpenUrl(url=served)))[0].ok
        hows = []
        for label, text in (("Email address", "ada@example.com"), ("Full name", "Ada"),
                            ("City", "Paris")):
            result, _ = await agent.act(TypeText(text=text, into=label))
            assert result.ok, result.error
            assert result.data["grounding"] == "ocr"
            hows.append(result.data["how"])
        assert hows == ["box-below", "box-right", "placeholder"]
        assert await agent.browser.execute(VALUES) == ["ada@example.com", "Ada", "Paris"]
        agent.desktop.image().save(tmp_path / "typed.png")  # type: ignore[union-attr]

        missing, _ = await agent.act(TypeText(text="x", into="Phone number"))
        assert not missing.ok and missing.data["label_found"] is False
        assert "'Phone number' is not on the screen" in (missing.error or "")
        no_field, _ = await agent.act(TypeText(text="x", into="everyone"))
        assert not no_field.ok and no_field.data["label_found"] is True
        assert "no field is inside it, below it or to its right" in (no_field.error or "")
        assert await agent.browser.execute(VALUES) == ["ada@example.com", "Ada", "Paris"]
    finally:
        await agent.close()
