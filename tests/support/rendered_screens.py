"""Screenshots drawn for real with PIL and the DejaVu fonts: buttons whose
labels sit where the test knows, so a grounded point can be checked against
the box the text was drawn in (tests/integration/test_offline_grounding.py,
bench/grounding.py)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

FONTS = "/usr/share/fonts/truetype/dejavu/"
SANS, SERIF_BOLD, MONO = "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf"
CONDENSED_BOLD = "DejaVuSansCondensed-Bold.ttf"


@dataclass(frozen=True)
class Button:
    """A label drawn at ``at`` (its text's top-left) on a padded background."""

    label: str
    at: tuple[int, int]
    font: str = SANS
    size: int = 18
    fg: str = "#111111"
    bg: str = "#e4e4e4"


@dataclass
class Screen:
    """A rendered screenshot and the box each label's text was drawn in."""

    width: int = 1280
    height: int = 800
    page: str = "#fafafa"
    buttons: list[Button] = field(default_factory=list)
    shapes: list[tuple[int, int, int, int]] = field(default_factory=list)  # red circles
    boxes: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)

    def png(self) -> bytes:
        img = Image.new("RGB", (self.width, self.height), self.page)
        draw = ImageDraw.Draw(img)
        self.boxes = []
        for b in self.buttons:
            font = ImageFont.truetype(FONTS + b.font, b.size)
            left, top, right, bottom = draw.textbbox(b.at, b.label, font=font)
            draw.rounded_rectangle((left - 14, top - 9, right + 14, bottom + 9), radius=5,
                                   fill=b.bg)
            draw.text(b.at, b.label, font=font, fill=b.fg)
            self.boxes.append((b.label, (left, top, right, bottom)))
        for box in self.shapes:
            draw.ellipse(box, fill="#d01010")
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()

    def b64(self) -> str:
        return base64.b64encode(self.png()).decode()

    def box_of(self, label: str, nth: int = 0) -> tuple[int, int, int, int]:
        """The drawn box of the ``nth`` button reading ``label`` (after :meth:`png`)."""
        return [box for text, box in self.boxes if text == label][nth]


def inside(point: tuple[int, int], box: tuple[int, int, int, int], slack: int = 2) -> bool:
    """Whether ``point`` lies in ``box`` (grown by ``slack`` px for anti-aliasing)."""
    x, y = point
    left, top, right, bottom = box
    return left - slack <= x <= right + slack and top - slack <= y <= bottom + slack


def toolbar(width: int = 1280, height: int = 800) -> Screen:
    """A typical application screen: a toolbar, a dialog, a dark primary button."""
    return Screen(width, height, buttons=[
        Button("File", (24, 14), SANS, 14), Button("Edit", (84, 14), SANS, 14),
        Button("View", (144, 14), SANS, 14),
        Button("Archive", (420, 120), SANS, 16),
        Button("Move to folder", (560, 120), SANS, 16),
        Button("Inbox", (60, 200), CONDENSED_BOLD, 22),
        Button("Are you sure you want to delete this message?", (380, 330), SANS, 18,
               bg="#fafafa"),
        Button("Cancel", (560, 420), SANS, 18),
        Button("Delete", (700, 420), SERIF_BOLD, 20, fg="#ffffff", bg="#b3261e"),
        Button("Save changes", (820, 640), MONO, 26, fg="#f5f5f5", bg="#1d3b6e"),
    ], shapes=[(1120, 180, 1190, 250)])
