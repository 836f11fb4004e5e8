"""The offline brain's grounding rules without tesseract: which texts an
element is asked by, which of several places wins, and lines made from where
the words are (brains/offline_ground.py)."""

from __future__ import annotations

from PIL import Image, ImageDraw

from deckhand.brains.offline_ground import by_geometry, candidates, choose
from deckhand.core.text_on_screen import Match, Word, bands, dark_boxes, find_all, lines


def _word(text: str, left: int, top: int, key: int) -> Word:
    return Word(text, left, top, 12 * len(text), 16, 90.0, (1, key, 1, 1))


def test_an_element_is_asked_by_its_quote_or_by_its_words() -> None:
    assert candidates("the Archive button") == ["the Archive button", "Archive"]
    assert candidates('the "Save as" link') == ["Save as"]
    assert candidates("click `Delete` or 'Remove'") == ["Delete", "Remove"]
    assert candidates("“Send” icon") == ["Send"]
    assert candidates("the menu") == ["the menu"]  # nothing left: the words as written
    assert candidates("Sign in.") == ["Sign in"]
    assert candidates("the Email field labelled Work") == ["the Email field labelled Work",
                                                           "Email Work"]


def test_the_topmost_then_leftmost_of_equals() -> None:
    def m(left: int, top: int) -> tuple[int, Match]:
        return 2, Match("Reply", left + 20, top + 8, left, top, 40, 16)

    assert choose([m(900, 500), m(300, 500), m(640, 260)]) == m(640, 260)[1]
    assert choose([m(700, 100), m(200, 103)]) == m(200, 103)[1]  # one line: leftmost
    assert choose([]) is None


def test_lines_come_from_where_the_words_are() -> None:
    # tesseract's sparse mode put each word in a block of its own
    found = [_word("changes", 900, 644, 2), _word("Save", 821, 645, 1),
             _word("Cancel", 300, 645, 3), _word("Delete", 821, 700, 4)]
    assert find_all(found, "Save changes") == []
    regrouped = by_geometry(found)
    texts = sorted(" ".join(w.text for w in ln) for ln in lines(regrouped))
    assert texts == ["Cancel", "Delete", "Save changes"]
    [(score, match)] = find_all(regrouped, "save CHANGES")
    assert score == 2 and (match.left, match.width) == (821, 900 + 84 - 821)


def test_dark_boxes_are_the_dark_regions_largest_first() -> None:
    img = Image.new("RGB", (400, 200), "#fafafa")
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 20, 119, 59), fill="#1d3b6e")     # a dark button
    draw.text((30, 30), "Save", fill="#ffffff")           # its light text stays inside
    draw.rectangle((200, 100, 379, 179), fill="#202020")  # a bigger dark panel
    draw.rectangle((300, 20, 305, 25), fill="#000000")    # too small to hold a label
    boxes = dark_boxes(img)
    assert len(boxes) == 2
    (l1, t1, r1, b1), (l2, t2, r2, b2) = boxes
    assert abs(l1 - 200) <= 4 and abs(t1 - 100) <= 4 and abs(r1 - 380) <= 4 and abs(b1 - 180) <= 4
    assert abs(l2 - 20) <= 4 and abs(t2 - 20) <= 4 and abs(r2 - 120) <= 4 and abs(b2 - 60) <= 4
    assert dark_boxes(Image.new("RGB", (64, 64), "white")) == []


def test_bands_overlap_by_half_and_cover_the_frame() -> None:
    cuts = bands(Image.new("L", (1280, 800)))
    assert cuts[0] == (0, 0, 1280, 160) and cuts[1] == (0, 80, 1280, 240)
    assert cuts[-1][3] == 800 and len(cuts) == 9
    assert bands(Image.new("L", (320, 100))) == [(0, 0, 320, 100)]
