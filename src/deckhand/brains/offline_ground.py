"""The offline brain's grounding: where a visible text label is on a posted
screenshot, read with the same recognizer and preprocessing the desktop
machines use (:mod:`deckhand.core.text_on_screen`: grey, 2x, tesseract, an
inverted pass for light text on a dark screen), and, when neither finds the
label, a third pass over each dark region cropped and inverted (light text on
a dark button of a light page, which neither of the first two reads) and a
fourth over the frame in overlapping horizontal bands (a small label tesseract
skips in the whole frame).

An element is asked for in words ("the Archive button", ``"Delete"``). It is
looked for as text, in this order, and the first that is on the screen wins:

1. the quoted part, when the element quotes one (``the "Save as" link``);
2. otherwise the element as written, then the element without its
   descriptive words (articles and the names of controls: button, link,
   field, icon, tab, menu, …), so "the File menu" finds "File" while a
   screen that literally reads "Menu" is still found by "the menu".

Words are compared without case and punctuation; a multi-word label must be
consecutive words of one line (lines are made from where the words are, see
:func:`by_geometry`). The best place wins: a label that is all its line reads
(a button, a tab) over the same words inside a sentence, exact words over a
word that only contains the label, the quoted or written text over the
stripped one. Among equally good places the topmost is chosen, and on its
line the leftmost, so the answer is the same for the same screenshot. The
later passes are read only while no whole-line label is found. What is not
text on the screenshot ("the red circle") is answered
``OFFLINE_BRAIN_UNSUPPORTED``, saying what the offline brain can do.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace

from PIL import Image

from deckhand.core import text_on_screen
from deckhand.core.screens import Observation
from deckhand.core.text_on_screen import Match, Word
from deckhand.core.verdicts import Grounded
from deckhand.errors import BrainUnsupported, DeckhandError, ErrorCode

#: words that describe an element rather than spell its text
DESCRIPTIVE = frozenset({
    "the", "a", "an", "button", "btn", "link", "hyperlink", "field", "icon", "tab", "menu",
    "item", "menuitem", "option", "checkbox", "box", "input", "textbox", "label", "text",
    "labelled", "labeled", "named", "called", "titled", "saying", "reading", "that", "says",
    "reads", "with", "entry", "control", "element",
})
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’|`([^`]+)`|(?<![\w])'([^']+)'(?![\w])")
_QUOTE_CHARS = "\"'`“”‘’"
SEEN_CHARS = 200


def candidates(element: str) -> list[str]:
    """The texts ``element`` may be asked by, in the order they are tried."""
    quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(element)]
    quoted = [q.strip() for q in quoted if q.strip()]
    if quoted:
        return quoted
    written = " ".join(element.strip(_QUOTE_CHARS + " \t\n.,:;!?").split())
    plain = " ".join(w for w in written.split()
                     if w.lower().strip(_QUOTE_CHARS + ".,:;!?") not in DESCRIPTIVE)
    tried: list[str] = []
    for text in (written, plain):
        if text and text not in tried:
            tried.append(text)
    return tried


Rank = tuple[int, int]  # (how well it matches, minus the index of the text asked)
WHOLE_LINE = 3  # the label is all its line reads: a button, a tab, a menu entry


def choose(hits: list[tuple[int, Match]]) -> Match | None:
    """Among equally good hits the topmost, and on its line the leftmost
    (boxes that overlap vertically are one line)."""
    if not hits:
        return None
    best = sorted((m for _, m in hits), key=lambda m: (m.top, m.left))
    first = best[0]
    same_line = [m for m in best if m.top < first.top + first.height]
    return min(same_line, key=lambda m: (m.left, m.top))


def by_geometry(found: list[Word]) -> list[Word]:
    """``found`` with lines made from where the words are: a word joins the
    line it overlaps vertically by half its height when the gap to that line's
    last word is under twice its height. tesseract's sparse mode (--psm 11)
    may put each word of a wide-spaced label (a monospace "Save changes") in a
    block of its own, which would keep a multi-word label from matching."""
    rows: list[list[Word]] = []
    for w in sorted(found, key=lambda w: (w.left, w.top)):
        for row in rows:
            last = row[-1]
            overlap = min(last.bottom, w.bottom) - max(last.top, w.top)
            if overlap * 2 >= min(last.height, w.height) and \
                    0 <= w.left - last.right < 2 * max(last.height, w.height):
                row.append(w)
                break
        else:
            rows.append([w])
    return [replace(w, line=(0, 0, 0, n)) for n, row in enumerate(rows) for w in row]


def _pick(found: list[Word], labels: list[str]) -> tuple[Rank, Match] | None:
    """The best place any of ``labels`` is read in ``found``: a label that is
    its whole line over one inside a sentence ("Delete" the button over
    "…want to delete this…"), exact words over a contained one, the text
    asked first over the later ones; ties by :func:`choose`."""
    ranked: dict[Rank, list[tuple[int, Match]]] = {}
    for ln in text_on_screen.lines(by_geometry(found)):
        for index, label in enumerate(labels):
            for score, match in text_on_screen.find_all(ln, label):
                kind = WHOLE_LINE if score == 2 and len(match.text.split()) == len(ln) \
                    else score
                ranked.setdefault((kind, -index), []).append((score, match))
    if not ranked:
        return None
    rank = max(ranked)
    chosen = choose(ranked[rank])
    return (rank, chosen) if chosen is not None else None


def _image(observation: Observation) -> Image.Image:
    try:
        with Image.open(io.BytesIO(observation.screenshot_jpeg)) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DeckhandError("The screenshot could not be decoded as an image.",
                            code=ErrorCode.INVALID_SCREENSHOT) from exc


def not_text(element: str, found: list[Word]) -> BrainUnsupported:
    """The answer for an element that is not visible text: what the offline
    brain grounds, what it read, and how to ground anything else."""
    seen = " ".join(text_on_screen.text_of(found).split())[:SEEN_CHARS] or "no text"
    return BrainUnsupported(
        f"The offline brain grounds visible text labels; {element[:200]!r} is not text on "
        f"this screenshot (it reads: {seen}). Ask for the words an element shows "
        "(e.g. 'the Archive button' or '\"Delete\"'), or configure a model to ground "
        "anything else.")


async def ground_text(observation: Observation, element: str) -> Grounded:
    """The centre of ``element``'s text on the screenshot, in the observation's
    screen space (``width`` × ``height``, which may differ from the image's)."""
    labels = candidates(element)
    image = _image(observation)
    found = await text_on_screen.words(image)
    best = _pick(found, labels)
    # light text on a dark screen (the desktop's inverted pass), light text in a
    # dark box on a light page, then the frame in bands: read only while no
    # whole-line label is found
    for again in ("inverted", "dark boxes", "bands"):
        if best is not None and best[0][0] == WHOLE_LINE:
            break
        if again == "inverted":
            more = _pick(await text_on_screen.words(image, invert=True), labels)
        elif again == "dark boxes":
            boxes = text_on_screen.dark_boxes(image)
            more = _pick(await text_on_screen.words_in_boxes(image, boxes), labels)
        else:
            cuts = text_on_screen.bands(image)
            more = _pick(await text_on_screen.words_in_boxes(image, cuts, invert=False),
                         labels)
        if more is not None and (best is None or more[0] > best[0]):
            best = more
    if best is None:
        raise not_text(element, found)
    match = best[1]
    x = min(observation.width - 1, round(match.x * observation.width / image.width))
    y = min(observation.height - 1, round(match.y * observation.height / image.height))
    return Grounded(found=True, x=x, y=y)
