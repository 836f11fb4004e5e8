"""Artifacts as files under one directory (the embedded default:
``<data dir>/artifacts``), ``ab/<sha256>``: written to a temporary file,
flushed to disk and renamed into place, so a crash leaves the whole blob or none."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from deckhand.artifacts.base import Blob
from deckhand.errors import ArtifactError

_KEY = re.compile(r"^[0-9a-f]{64}$")


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ArtifactError(f"not an artifact key: {key[:80]!r}")
    return key


class FsArtifactStore:
    name = "fs"

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync

    def path(self, key: str) -> Path:
        return self.root / check_key(key)[:2] / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self.path(key), data)

    def _put(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                if self.fsync:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)  # also renews the mtime of bytes already there
        except OSError as exc:
            raise ArtifactError(f"writing artifact {path.name}: {exc.strerror}") from exc

    async def get(self, key: str) -> bytes | None:
        path = self.path(key)

        def read() -> bytes | None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise ArtifactError(f"reading artifact {key}: {exc.strerror}") from exc

        return await asyncio.to_thread(read)

    async def delete(self, keys: list[str]) -> None:
        paths = [self.path(k) for k in keys]

        def unlink() -> None:
            for p in paths:
                try:
                    p.unlink(missing_ok=True)
                except OSError as exc:
                    raise ArtifactError(f"deleting artifact {p.name}: {exc.strerror}") from exc

        await asyncio.to_thread(unlink)

    async def scan(self) -> list[Blob]:
        return await asyncio.to_thread(self._list)

    def _list(self) -> list[Blob]:
        out: list[Blob] = []
        if not self.root.is_dir():
            return out
        for sub in os.scandir(self.root):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                if not _KEY.match(entry.name):
                    continue  # a temporary file of a write in progress (or a crashed one)
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                out.append(Blob(entry.name, st.st_size,
                                datetime.fromtimestamp(st.st_mtime, UTC)))
        return out

    async def close(self) -> None:
        return None
