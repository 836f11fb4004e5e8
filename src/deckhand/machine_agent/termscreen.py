"""The screen of a machine without a desktop or an open page: its terminal,
rendered to an image (the last lines of the most recently used session)."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import TYPE_CHECKING

from deckhand.machine_agent.desktop import Frame

if TYPE_CHECKING:  # Pillow is loaded when a terminal is first drawn
    from PIL import ImageFont

WIDTH, HEIGHT = 1280, 800
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_SIZE = 15
MARGIN = 12
BACKGROUND = (18, 18, 18)
FOREGROUND = (225, 225, 225)


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        from PIL import ImageFont

        return ImageFont.truetype(FONT, FONT_SIZE)
    except OSError:
        return ImageFont.load_default()


def _grid() -> tuple[int, int, int]:
    font = _font()
    box = font.getbbox("M")
    cw = max(1, int(font.getlength("M")))
    lh = max(1, (box[3] - box[1]) + 5)
    return cw, lh, (WIDTH - 2 * MARGIN) // cw


def screen_lines(transcript: str) -> list[str]:
    """What fits on the screen: the transcript's last lines, wrapped."""
    _, lh, cols = _grid()
    rows = (HEIGHT - 2 * MARGIN) // lh
    out: list[str] = []
    for line in transcript.replace("\t", "    ").splitlines() or [""]:
        line = "".join(ch if ch.isprintable() else "?" for ch in line)
        while len(line) > cols:
            out.append(line[:cols])
            line = line[cols:]
        out.append(line)
    return out[-rows:]


class TerminalScreen:
    """Renders a transcript; the last frame is kept until the text changes."""

    def __init__(self) -> None:
        self._key: tuple[int, str] | None = None
        self._frame: Frame | None = None

    def render(self, transcript: str, version: int, prompt: str = "$ ") -> Frame:
        key = (version, prompt)
        if self._frame is not None and self._key == key:
            return self._frame
        text = transcript + prompt
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
        draw = ImageDraw.Draw(img)
        _, lh, _ = _grid()
        for i, line in enumerate(screen_lines(text)):
            draw.text((MARGIN, MARGIN + i * lh), line, font=_font(), fill=FOREGROUND)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        self._frame = Frame(buf.getvalue(), WIDTH, HEIGHT, "terminal")
        self._key = key
        return self._frame
