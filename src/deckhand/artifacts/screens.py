"""A step's screens into the artifact store: the bytes first (content
addressed), then rows for the step's transaction to insert."""

from __future__ import annotations

from datetime import datetime

from deckhand.artifacts import digest
from deckhand.artifacts.base import ArtifactStore
from deckhand.core.screens import Observation
from deckhand.store.records import RunArtifact


def content_type(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"  # what machines send (core/machine.py)


async def keep_screens(store: ArtifactStore, run_id: str, step: int,
                       screens: dict[str, Observation | None],
                       now: datetime, stored: frozenset[str] = frozenset()
                       ) -> list[RunArtifact]:
    """Write each screen's bytes (one write for identical bytes; none for
    ``stored``, bytes a committed row already points at: the previous step's
    settled screen is most often this step's screen) and answer the rows that
    point at them, for the step's transaction."""
    rows: list[RunArtifact] = []
    written: set[str] = set(stored)
    for kind, obs in screens.items():
        if obs is None or not obs.screenshot_jpeg:
            continue
        data = obs.screenshot_jpeg
        key = digest(data)
        if key not in written:
            await store.put(key, data)
            written.add(key)
        rows.append(RunArtifact(run_id=run_id, step=step, kind=kind, sha256=key,
                                content_type=content_type(data), size=len(data),
                                width=obs.width, height=obs.height, created_at=now))
    return rows
