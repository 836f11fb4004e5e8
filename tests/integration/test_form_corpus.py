"""Recall of ``type … into "LABEL"`` over a corpus of rendered form pages
(:mod:`tests.support.form_corpus`: 36 pages, 72 labels, of which the
desktop reads the first 12; label above, label
left, wrapping label, placeholders only; three fonts, 14-28 px, grey on
white and white on a colour), in a headless browser (the DOM) and in the
desktop's browser (text recognition and the image's boxes). A label is
found when the machine read it; its field is grounded when the text typed
ends up in that field, read back from the page. ``bench/forms.py`` prints
the same numbers as a table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deckhand.machine_agent.browser import chromium_available
from deckhand.machine_agent.server import MachineAgent
from tests.support import form_corpus

DESKTOP_PAGES = 12  # 4 layouts x 3 colour schemes

pytestmark = pytest.mark.skipif(not chromium_available(), reason="chromium not installed")


async def _recall(tmp_path: Path, *, desktop: bool, count: int) -> form_corpus.Tally:
    (tmp_path / "ws").mkdir()
    agent = MachineAgent("m-1", tmp_path / "ws", sandbox=False, state_dir=tmp_path / "state",
                         desktop=desktop, browser=not desktop)
    await agent.start()
    try:
        corpus = form_corpus.pages(count)
        with form_corpus.serve(corpus) as base:
            return await form_corpus.measure(agent, base, corpus)
    finally:
        await agent.close()


def _check(tally: form_corpus.Tally, count: int) -> None:
    labels, fields = tally.recall()
    assert tally.labels == 2 * count
    assert labels >= form_corpus.GOAL and fields >= form_corpus.GOAL, (
        f"labels {labels:.1%}, fields {fields:.1%}; missed:\n" + "\n".join(tally.misses))


async def test_dom_recall_of_labels_and_fields(tmp_path: Path) -> None:
    _check(await _recall(tmp_path, desktop=False, count=form_corpus.PAGES), form_corpus.PAGES)


@pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("tesseract") is None,
                    reason="Xvfb or tesseract not installed")
async def test_desktop_recall_of_labels_and_fields(tmp_path: Path) -> None:
    # The first DESKTOP_PAGES pages hold every layout in every colour scheme;
    # text recognition takes about 1.4 s a field, so the whole corpus is
    # bench/forms.py's to read (the test stays well inside its timeout).
    _check(await _recall(tmp_path, desktop=True, count=DESKTOP_PAGES), DESKTOP_PAGES)
