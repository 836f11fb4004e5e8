"""Form fields on a screenshot (a desktop: no DOM to ask): which field a
label names, read with text recognition and the image's rectangles.

``type "…" into "LABEL"`` on a desktop clicks the field LABEL names:

1. the label is read with text recognition (:mod:`.ocr`'s passes first;
   when they miss it, contrast passes that darken everything short of
   white, so light-grey placeholder text reads like ink (tesseract's global
   threshold drops it otherwise): at ocr's own 2x, then at 3x for small
   text, each also inverted for light text on a colour);
2. a field-like box is a rectangle whose border stands out from the page
   (two long horizontal edges of the same span, joined by vertical ones);
   the insides of all boxes are also read on their own (a mosaic on white),
   which finds placeholders that the whole screen's passes miss;
3. the text inside a box is that field's placeholder: the field is that
   box; else the field is the nearest box below the text or to its right.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from deckhand.machine_agent import ocr

# On top of ocr's own 2x: 2x first (3x reads glyphs of 20 px and more worse), then 3x.
CONTRAST_SCALES = (1.0, 1.5)
EDGE = 28  # grey levels between a border pixel and the pixel beside it
MIN_BOX_W, MIN_BOX_H, MAX_BOX_H = 60, 14, 140
NEAR_BELOW, NEAR_RIGHT = 180, 320  # how far below or right of its label a field may be
SEARCH_W, SEARCH_H = 760, 220


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    def holds(self, x: int, y: int) -> bool:
        return self.left < x < self.right and self.top < y < self.bottom

    @property
    def centre(self) -> tuple[int, int]:
        return (self.left + self.right) // 2, (self.top + self.bottom) // 2


@dataclass(frozen=True)
class Field:
    """Where to click the field a label names, and how it was found."""

    x: int
    y: int
    box: Box
    label: ocr.Match
    how: str  # placeholder | box-below | box-right


def contrast(image: Image.Image, scale: float = 1.0) -> Image.Image:
    """Grey, everything short of near-white darkened (light placeholder text
    becomes dark while anti-aliasing is kept), enlarged ``scale`` times."""
    grey = image.convert("L").point(lambda v: 255 if v >= 246 else v * 3 // 5)
    if scale == 1.0:
        return grey
    size = (int(grey.width * scale), int(grey.height * scale))
    return grey.resize(size, Image.LANCZOS)


async def read_label(image: Image.Image, label: str) -> tuple[ocr.Match | None, list[ocr.Word]]:
    """``label`` on ``image``: ocr's passes, then the contrast pass (and its
    inverse, for light text on a colour) when they do not find it."""
    match, found = await ocr.locate(image, label)
    if match is not None:
        return match, found
    inside = await words_in_boxes(image, boxes(image, Box(0, 0, image.width, image.height)))
    found += inside
    match = ocr.find(inside, label)
    if match is not None:
        return match, found
    for scale in CONTRAST_SCALES:
        tuned = contrast(image, scale)
        for invert in (False, True):
            words = [_scaled(w, scale) for w in await ocr.words(
                ImageOps.invert(tuned) if invert else tuned)]
            found += words
            match = ocr.find(words, label)
            if match is not None:
                return match, found
    return None, found


async def words_in_boxes(image: Image.Image, found: list[Box]) -> list[ocr.Word]:
    """The words inside ``found`` boxes (placeholders), read from a mosaic of
    the boxes' insides on white: one recognition for all of them, and none
    of the page around (a dark page skews tesseract's global threshold so
    that grey text in a white field is lost)."""
    if not found:
        return []
    gap = 16
    width = max(b.right - b.left for b in found) + 2 * gap
    height = sum(b.bottom - b.top + gap for b in found) + gap
    sheet = Image.new("L", (width, height), 255)
    slots: list[tuple[int, Box]] = []
    y = gap
    for b in found:
        inner = contrast(image.crop((b.left + 2, b.top + 2, b.right - 2, b.bottom - 2)))
        sheet.paste(inner, (gap, y))
        slots.append((y, b))
        y += b.bottom - b.top + gap
    out = []
    for w in await ocr.words(sheet):
        cy = w.top + w.height // 2
        for top, b in slots:
            if top <= cy < top + b.bottom - b.top:
                out.append(ocr.Word(w.text, w.left - gap + b.left + 2, w.top - top + b.top + 2,
                                    w.width, w.height, w.conf, (-1, top, *w.line[2:])))
                break
    return out


def _scaled(w: ocr.Word, s: float) -> ocr.Word:
    if s == 1.0:
        return w
    return ocr.Word(w.text, int(w.left / s), int(w.top / s), max(1, int(w.width / s)),
                    max(1, int(w.height / s)), w.conf, w.line)


def boxes(image: Image.Image, area: Box) -> list[Box]:
    """Field-like rectangles inside ``area`` of ``image``: a top and a bottom
    edge over the same span, with edges at both ends between them."""
    grey = image.convert("L").crop((area.left, area.top, area.right, area.bottom))
    w, h = grey.size
    px = grey.tobytes()
    runs: list[tuple[int, int, int]] = []  # (y, x0, x1) of long horizontal edges
    for y in range(1, h):
        row, above = y * w, (y - 1) * w
        start = -1
        for x in range(w + 1):
            edge = x < w and abs(px[row + x] - px[above + x]) >= EDGE
            if edge and start < 0:
                start = x
            elif not edge and start >= 0:
                if x - start >= MIN_BOX_W:
                    runs.append((y, start, x))
                start = -1
    found: list[Box] = []
    for i, (y0, a0, a1) in enumerate(runs):
        for y1, b0, b1 in runs[i + 1:]:
            if not MIN_BOX_H <= y1 - y0 <= MAX_BOX_H:
                continue
            if abs(a0 - b0) > 6 or abs(a1 - b1) > 6:
                continue
            left, right = min(a0, b0), max(a1, b1)
            if _vertical_edge(px, w, left, y0, y1) and _vertical_edge(px, w, right - 1, y0, y1):
                found.append(Box(area.left + left, area.top + y0, area.left + right,
                                 area.top + y1))
                break
    return _distinct(found)


def _vertical_edge(px: bytes, w: int, x: int, y0: int, y1: int) -> bool:
    """Whether a border runs down near column ``x`` between rows y0 and y1."""
    inner = range(y0 + 4, y1 - 3)
    if len(inner) < 3:
        return True
    for cx in range(max(1, x - 4), min(w - 1, x + 5)):
        strong = sum(abs(px[y * w + cx] - px[y * w + cx - 1]) >= EDGE
                     or abs(px[y * w + cx] - px[y * w + cx + 1]) >= EDGE for y in inner)
        if strong >= len(inner) * 0.8:
            return True
    return False


def _distinct(found: list[Box]) -> list[Box]:
    """One box per rectangle (a 1-px border gives edges on both of its sides)."""
    out: list[Box] = []
    for b in found:
        if not any(abs(b.left - o.left) <= 6 and abs(b.top - o.top) <= 6
                   and abs(b.bottom - o.bottom) <= 6 for o in out):
            out.append(b)
    return out


def field_for(image: Image.Image, label: ocr.Match) -> Field | None:
    """The field ``label`` (text already read) names: the box it is inside
    (a placeholder), else the nearest box below it or to its right."""
    area = Box(max(0, label.left - 40), max(0, label.top - 60),
               min(image.width, label.left + SEARCH_W), min(image.height, label.top + SEARCH_H))
    found = boxes(image, area)
    inside = [b for b in found if b.holds(label.x, label.y)]
    if inside:
        b = min(inside, key=lambda b: (b.right - b.left) * (b.bottom - b.top))
        return Field(b.left + min(40, (b.right - b.left) // 2), b.centre[1], b, label,
                     "placeholder")
    right_end, bottom = label.left + label.width, label.top + label.height
    best: tuple[float, Box, str] | None = None
    for b in found:
        if b.top >= label.y and b.left < right_end + 40 and b.right > label.left - 40:
            gap, how = max(0, b.top - bottom) + max(0, b.left - label.left) / 4, "box-below"
        elif b.left >= right_end - 4 and b.top < bottom and b.bottom > label.top:
            gap, how = float(b.left - right_end), "box-right"
        else:
            continue
        if gap <= (NEAR_BELOW if how == "box-below" else NEAR_RIGHT) \
                and (best is None or gap < best[0]):
            best = (gap, b, how)
    if best is None:
        return None
    b = best[1]
    return Field(b.left + min(40, (b.right - b.left) // 2), b.centre[1], b, label, best[2])
