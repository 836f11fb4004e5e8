"""Text recognition on screenshots with tesseract (a subprocess, one thread:
``OMP_THREAD_LIMIT=1`` takes a frame from 2.5 s to ~0.3 s here).

It lives in the shared vocabulary because the machine agent (grounding labels
on a desktop) and the brains (the offline brain grounding labels on a posted
screenshot) read text the same way, and neither may import the other.

The frame is turned grey and enlarged 2x first (small UI text reads far
better). Light text on a dark or coloured background is looked for in a
second, inverted pass only when the first one does not find a label.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
from dataclasses import dataclass, replace

from PIL import Image, ImageFilter, ImageOps

from deckhand.errors import DeckhandError, ErrorCode

SCALE = 2
DARK = 128  # grey level below which a pixel is a dark background
HOLE = 7  # px: light strokes narrower than this inside a dark box are its text
MIN_BOX = (24, 16)  # px: a dark region smaller than this holds no label
Box = tuple[int, int, int, int]  # left, top, right, bottom
TIMEOUT_S = 30.0


class TextRecognitionError(DeckhandError):
    """tesseract is missing or failed: the server (or machine) lacks a part,
    not the caller's mistake."""

    code = ErrorCode.SERVICE_UNAVAILABLE


@dataclass(frozen=True)
class Word:
    text: str
    left: int
    top: int
    width: int
    height: int
    conf: float
    line: tuple[int, int, int, int]  # page, block, paragraph, line

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height


@dataclass(frozen=True)
class Match:
    text: str
    x: int
    y: int
    left: int
    top: int
    width: int
    height: int


def available() -> bool:
    return shutil.which("tesseract") is not None


def _norm(text: str) -> str:
    return re.sub(r"[^\w@.]+", "", text.lower())


async def words(image: Image.Image, *, invert: bool = False) -> list[Word]:
    """Every word tesseract reads in ``image``, in ``image`` coordinates."""
    if not available():
        raise TextRecognitionError("tesseract is not installed (scripts/install-system-deps)")
    grey = image.convert("L")
    if invert:
        grey = ImageOps.invert(grey)
    big = grey.resize((grey.width * SCALE, grey.height * SCALE), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    big.save(buf, "PPM")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    proc = await asyncio.create_subprocess_exec(
        "tesseract", "stdin", "stdout", "--psm", "11", "tsv",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(buf.getvalue()), TIMEOUT_S)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise TextRecognitionError(f"tesseract failed: {err.decode(errors='replace')[-300:]}")
    found = []
    for row in out.decode(errors="replace").splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or not cols[11].strip():
            continue
        try:
            conf = float(cols[10])
            left, top, w, h = (int(c) // SCALE for c in cols[6:10])
            key = (int(cols[1]), int(cols[2]), int(cols[3]), int(cols[4]))
        except ValueError:
            continue
        found.append(Word(cols[11].strip(), left, top, w, h, conf, key))
    return found


def dark_boxes(image: Image.Image, *, step: int = 4, most: int = 16) -> list[Box]:
    """The dark regions of ``image`` (a dark button, a nav bar on a light page)
    as (left, top, right, bottom), the ``most`` largest. Light text in such a
    box is read by neither the plain pass nor the whole-frame inverted one
    (tesseract skips a light box surrounded by dark), but is once the box is
    cropped and inverted. The dark pixels are closed over ``HOLE`` (so a box's
    light strokes count as its inside) and grouped at 1/``step`` scale."""
    grey = image.convert("L")
    dark = grey.point(lambda v: 255 if v < DARK else 0)
    closed = dark.filter(ImageFilter.MaxFilter(HOLE)).filter(ImageFilter.MinFilter(HOLE))
    small = closed.resize((max(1, grey.width // step), max(1, grey.height // step)),
                          Image.Resampling.BOX)
    w, h = small.size
    data = small.tobytes()
    seen = bytearray(w * h)
    boxes: list[Box] = []
    for start in range(w * h):
        if seen[start] or data[start] < 128:
            continue
        seen[start] = 1
        stack, x0, y0, x1, y1 = [start], w, h, 0, 0
        while stack:
            i = stack.pop()
            x, y = i % w, i // w
            x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
            for j in (i - 1 if x else -1, i + 1 if x + 1 < w else -1, i - w, i + w):
                if 0 <= j < w * h and not seen[j] and data[j] >= 128:
                    seen[j] = 1
                    stack.append(j)
        box = (x0 * step, y0 * step, (x1 + 1) * step, (y1 + 1) * step)
        if box[2] - box[0] >= MIN_BOX[0] and box[3] - box[1] >= MIN_BOX[1]:
            boxes.append(box)
    boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    return boxes[:most]


def bands(image: Image.Image, height: int = 160) -> list[Box]:
    """``image`` cut into full-width bands of ``height`` overlapping by half,
    so every line of text lies whole in one: tesseract reads a small label in
    a band that it skips in the whole frame (a link beside a dark button)."""
    step = height // 2
    return [(0, top, image.width, min(image.height, top + height))
            for top in range(0, max(1, image.height - step), step)]


async def words_in_boxes(image: Image.Image, boxes: list[Box], *,
                         invert: bool = True) -> list[Word]:
    """The words read in each box, cropped (and inverted), in ``image``
    coordinates (each box its own lines); two tesseract runs at a time."""
    grey = image.convert("L")
    gate = asyncio.Semaphore(2)

    async def read(n: int, box: Box) -> list[Word]:
        async with gate:
            crop = grey.crop(box)
            found = await words(ImageOps.invert(crop) if invert else crop)
        return [replace(w, left=w.left + box[0], top=w.top + box[1],
                        line=(1000 + n, *w.line[1:])) for w in found]

    return [w for part in await asyncio.gather(*(read(n, b) for n, b in enumerate(boxes)))
            for w in part]


def lines(found: list[Word]) -> list[list[Word]]:
    grouped: dict[tuple[int, int, int, int], list[Word]] = {}
    for w in found:
        grouped.setdefault(w.line, []).append(w)
    return [sorted(ws, key=lambda w: w.left) for ws in grouped.values()]


def text_of(found: list[Word]) -> str:
    return "\n".join(" ".join(w.text for w in ln) for ln in
                     sorted(lines(found), key=lambda ln: (ln[0].top, ln[0].left)))


def find_all(found: list[Word], label: str) -> list[tuple[int, Match]]:
    """Every place the words spell ``label`` (consecutive on one line, compared
    without case and punctuation), each with its score: 2 exact, 1 a single
    word of 3+ characters contained in a longer one. In the order read."""
    want = [_norm(t) for t in label.split() if _norm(t)]
    if not want:
        return []
    hits: list[tuple[int, Match]] = []
    for ln in lines(found):
        normed = [_norm(w.text) for w in ln]
        for i in range(len(ln) - len(want) + 1):
            window = normed[i:i + len(want)]
            if window == want:
                score = 2
            elif len(want) == 1 and want[0] in window[0] and len(want[0]) >= 3:
                score = 1
            else:
                continue
            ws = ln[i:i + len(want)]
            left, top = min(w.left for w in ws), min(w.top for w in ws)
            right, bottom = max(w.right for w in ws), max(w.bottom for w in ws)
            hits.append((score, Match(" ".join(w.text for w in ws), (left + right) // 2,
                                      (top + bottom) // 2, left, top, right - left,
                                      bottom - top)))
    return hits


def find(found: list[Word], label: str) -> Match | None:
    """The words that spell ``label``; exact before contained, and among equals
    the first read (the desktop's choice)."""
    best: tuple[int, Match] | None = None
    for score, m in find_all(found, label):
        if best is None or score > best[0]:
            best = (score, m)
    return best[1] if best else None


def contains(text: str, wanted: str) -> bool:
    """Whether recognised ``text`` shows ``wanted`` (case, spacing and
    punctuation around words ignored)."""
    return _norm(wanted) in _norm(text) if _norm(wanted) else False


async def locate(image: Image.Image, label: str) -> tuple[Match | None, list[Word]]:
    found = await words(image)
    match = find(found, label)
    if match is None:
        inverted = await words(image, invert=True)
        match = find(inverted, label)
        found = found + inverted
    return match, found
