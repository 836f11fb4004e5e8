"""Typing on the screen, and knowing whether the text landed.

An action that misses is a failure: ``type`` answers ``ok`` false with the
reason when its text would land (or landed) in no editable element, so the
brain sees the miss instead of a success that did nothing.

- In a browser (the DOM): with ``into``, the field that label names is found
  (:mod:`.form_dom`) and clicked; then, with or without ``into``, the
  element with the focus must take text (a text-like input, a textarea,
  contenteditable), else nothing is typed.
- On a desktop (pixels only): with ``into``, the field is found by text
  recognition and the image's boxes (:mod:`.fields`) and clicked; the text
  is typed and the field's region (the whole screen without ``into``) must
  have changed once the screen settles (or within a second after: some
  apps draw late).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from deckhand.core.actions import ActionResult, TypeText
from deckhand.machine_agent import form_dom
from deckhand.machine_agent.browser import Browser
from deckhand.machine_agent.desktop import Desktop
from deckhand.machine_agent.settle import until_changed

if TYPE_CHECKING:  # Pillow and text recognition: loaded when a desktop types
    from PIL import Image

    from deckhand.machine_agent import ocr

Settle = Callable[[], Awaitable[None]]
PAD = 6  # around a field's box: a caret or a focus ring drawn on its border counts
LATE_DRAW_MS = 1000  # how long typed text that has not shown yet is waited for


async def type_in_browser(browser: Browser, action: TypeText) -> ActionResult:
    """Type ``action.text`` into the page (into the field ``action.into``
    names, if given), refusing when the focus is on nothing editable."""
    page = await browser.page()
    data: dict[str, Any] = {"grounding": "dom"}
    if action.into is not None:
        field = await form_dom.find_field(page, action.into)
        if field is None:
            return ActionResult(ok=False, data={**data, "label_found": False}, error=(
                f"no editable field on the page is named {action.into!r} (looked for a "
                "<label>, aria-label, aria-labelledby, a placeholder, and a field below or "
                "right of that text)"))
        await page.click(field["x"], field["y"])
        await page.press("End")  # after what the field holds, not inside it
        data.update(label_found=True, field=field, how=field["how"])
    focused = await form_dom.focus(page)
    if not focused["editable"]:
        where = _element(focused)
        into = f" after clicking the field named {action.into!r}" if action.into else ""
        return ActionResult(ok=False, data={**data, "focus": focused}, error=(
            f"the text would land in no editable element: the focus is on {where}{into}, "
            "so nothing was typed"))
    await page.insert_text(action.text)
    return ActionResult(ok=True, output=f"typed {len(action.text)} characters into "
                        f"{_element(focused)}", data={**data, "focus": focused})


def _element(focused: dict[str, Any]) -> str:
    tag = focused.get("tag")
    if not tag or tag == "body":
        return "the page itself (no element)"
    named = focused.get("id") or focused.get("name")
    kind = f" type={focused['type']}" if focused.get("type") else ""
    return f"<{tag}{kind}{' ' + repr(named) if named else ''}>"


async def type_on_desktop(desktop: Desktop, settle: Settle, action: TypeText) -> ActionResult:
    """Type ``action.text`` on the desktop (into the field ``action.into``
    names, if given) and check that the field's region changed."""
    assert desktop.input is not None
    from deckhand.machine_agent import fields, ocr

    data: dict[str, Any] = {"grounding": "ocr"}
    region: tuple[int, int, int, int] = (0, 0, desktop.width, desktop.height)
    if action.into is not None:
        await settle()
        image = desktop.image()
        label, found = await fields.read_label(image, action.into)
        if label is None:
            seen = ocr.text_of(found)[:400] or "(no text recognised)"
            return ActionResult(ok=False, data={**data, "label_found": False}, error=(
                f"{action.into!r} is not on the screen (text recognition read: {seen})"))
        field = fields.field_for(image, label)
        if field is None:
            return ActionResult(ok=False, data={**data, "label_found": True, "label": _at(
                label)}, error=(f"{action.into!r} is on the screen at ({label.x}, {label.y}) "
                                "but no field is inside it, below it or to its right"))
        desktop.input.click(field.x, field.y)
        desktop.input.key_combo("End")  # after what the field holds, not inside it
        b = field.box
        region = (max(0, b.left - PAD), max(0, b.top - PAD), min(desktop.width, b.right + PAD),
                  min(desktop.height, b.bottom + PAD))
        data.update(label_found=True, label=_at(label), how=field.how, x=field.x, y=field.y,
                    box=[b.left, b.top, b.right - b.left, b.bottom - b.top])
    await settle()
    before = desktop.image().crop(region)
    desktop.input.type_text(action.text)
    await settle()
    # an app may draw the text only after the screen looked still (Gnumeric
    # opening its formula editor on "="): look again for a while before
    # calling it a miss
    after = await until_changed(lambda: desktop.image().crop(region), before, _changed,
                                LATE_DRAW_MS)
    if not action.text or _changed(before, after):
        return ActionResult(ok=True, output=f"typed {len(action.text)} characters", data=data)
    where = (f"the field named {action.into!r} at {region}" if action.into is not None
             else "the screen")
    return ActionResult(ok=False, data=data, error=(
        f"the text landed in no editable element: {where} did not change after typing"))


def _changed(before: Image.Image, after: Image.Image) -> bool:
    from PIL import ImageChops

    return ImageChops.difference(before, after).getbbox() is not None


def _at(m: ocr.Match) -> dict[str, Any]:
    return {"text": m.text, "x": m.x, "y": m.y, "box": [m.left, m.top, m.width, m.height]}
