"""Artifacts as files under one directory (the embedded default:
``<data dir>/artifacts``), ``ab/<sha256>``: written to a temporary file,
flushed to disk and renamed into place, so a crash leaves the whole blob or none."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from deckhand.artifacts.base import Blob
from deckhand.errors import ArtifactError

_KEY = re.compile(r"^[0-9a-f]{64}$")
STALE_TMP_SECONDS = 3600.0


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
        # a name of its own: two runs may write the same screen at once
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)  # also renews the mtime of bytes already there
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
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
        """The blobs; and away with temporary files a write that crashed left
        (older than STALE_TMP_SECONDS: a write in progress takes milliseconds)."""
        out: list[Blob] = []
        if not self.root.is_dir():
            return out
        stale = time.time() - STALE_TMP_SECONDS
        for sub in os.scandir(self.root):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if _KEY.match(entry.name):
                    out.append(Blob(entry.name, st.st_size,
                                    datetime.fromtimestamp(st.st_mtime, UTC)))
                elif entry.name.endswith(".tmp") and st.st_mtime < stale:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        return out

    async def close(self) -> None:
        return None
