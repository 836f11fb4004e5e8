"""A step's downloads into the artifact store: files the machine's browser
saved in its Downloads folder during the step, the bytes first (content
addressed), then rows for the step's transaction to insert."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from deckhand.artifacts import digest
from deckhand.artifacts.base import ArtifactStore
from deckhand.store.artifacts import download_kind
from deckhand.store.records import RunArtifact

NAME_LIMIT = 255
FALLBACK_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Downloaded:
    """One finished download as the machine reported it, with its bytes."""

    name: str
    data: bytes
    mime: str | None = None
    url: str | None = None


def reported(results: list[dict[str, object]]) -> list[dict[str, object]]:
    """The downloads the machine reported in a step's action results
    (``data.downloads``: name, size, url, mime), in order."""
    found: list[dict[str, object]] = []
    for result in results:
        data = result.get("data")
        items = data.get("downloads") if isinstance(data, dict) else None
        if isinstance(items, list):
            found.extend(d for d in items
                         if isinstance(d, dict) and isinstance(d.get("name"), str))
    return found


def safe_name(name: str) -> str:
    """The file name as kept: no directory part, at most NAME_LIMIT characters."""
    base = os.path.basename(name.replace("\\", "/")).strip() or "download"
    if len(base) <= NAME_LIMIT:
        return base
    stem, dot, ext = base.rpartition(".")
    if dot and 0 < len(ext) < 16:
        return stem[:NAME_LIMIT - len(ext) - 1] + "." + ext
    return base[:NAME_LIMIT]


async def keep_downloads(store: ArtifactStore, run_id: str, step: int,
                         files: list[Downloaded], now: datetime) -> list[RunArtifact]:
    """Write each file's bytes (one write for identical bytes) and answer the
    rows that point at them, numbered 1, 2, … in the step."""
    rows: list[RunArtifact] = []
    written: set[str] = set()
    for index, f in enumerate(files, start=1):
        key = digest(f.data)
        if key not in written:
            await store.put(key, f.data)
            written.add(key)
        rows.append(RunArtifact(
            run_id=run_id, step=step, kind=download_kind(index), sha256=key,
            content_type=(f.mime or FALLBACK_TYPE)[:64], size=len(f.data), width=None,
            height=None, created_at=now, name=safe_name(f.name),
            source_url=f.url if f.url and len(f.url) <= 4096 else None))
    return rows
