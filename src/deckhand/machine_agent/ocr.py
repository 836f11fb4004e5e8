"""Text recognition on the desktop's frames: :mod:`deckhand.core.text_on_screen`
(shared with the offline brain, which grounds labels on posted screenshots),
with its failures raised as the agent's own :class:`OcrError`."""

from __future__ import annotations

from PIL import Image

from deckhand.core import text_on_screen
from deckhand.core.text_on_screen import (
    SCALE,
    TIMEOUT_S,
    Match,
    TextRecognitionError,
    Word,
    available,
    contains,
    find,
    lines,
    text_of,
)
from deckhand.machine_agent.errors import AgentError

__all__ = ["SCALE", "TIMEOUT_S", "Match", "OcrError", "Word", "available", "contains", "find",
           "lines", "locate", "text_of", "words"]


class OcrError(AgentError):
    pass


async def words(image: Image.Image, *, invert: bool = False) -> list[Word]:
    """Every word tesseract reads in ``image``, in ``image`` coordinates."""
    try:
        return await text_on_screen.words(image, invert=invert)
    except TextRecognitionError as exc:
        raise OcrError(exc.message) from exc


async def locate(image: Image.Image, label: str) -> tuple[Match | None, list[Word]]:
    """The label's match (a second, inverted pass when the first finds none)
    and every word read."""
    try:
        return await text_on_screen.locate(image, label)
    except TextRecognitionError as exc:
        raise OcrError(exc.message) from exc
