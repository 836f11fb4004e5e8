"""The interface every artifact store has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Blob:
    """One stored object: its key (the sha256 of its bytes) and when it was
    last written (a put of bytes already there writes them again)."""

    key: str
    size: int
    modified_at: datetime


class ArtifactStore(Protocol):
    """Bytes by key. Every method may raise ``ArtifactError``; none logs a credential."""

    name: str  # "fs" or "s3", for logs and the bench

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` durably before returning (again if it is there)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The bytes, or None when nothing is stored under ``key``."""
        ...

    async def delete(self, keys: list[str]) -> None:
        """Forget ``keys`` (missing ones are fine)."""
        ...

    async def scan(self) -> list[Blob]:
        """Every stored blob (the orphan sweep's view)."""
        ...

    async def close(self) -> None: ...
