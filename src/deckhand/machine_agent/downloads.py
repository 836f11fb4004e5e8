"""The browser's downloads: Chromium saves each under ``downloads_dir`` as
its guid (``Browser.setDownloadBehavior`` ``allowAndName``, written by
Chromium itself, so as the machine's user); once complete it is renamed to
the name the page suggested (the basename only: a name cannot leave the
directory), replacing a file of that name. :meth:`Downloads.take` hands the
finished ones over once each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class Downloads:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._started: dict[str, dict[str, Any]] = {}
        self._done: list[dict[str, Any]] = []
        self.mimes: dict[str, str] = {}  # url → the mime type its response declared
        self._idle = asyncio.Event()  # no download in progress
        self._idle.set()

    def listen(self, session: Any) -> None:
        """``session``: the browser's own (the events come to it)."""
        session.on("Browser.downloadWillBegin", self._begin)
        session.on("Browser.downloadProgress", self._progress)

    def behavior(self) -> dict[str, Any]:
        return {"behavior": "allowAndName", "downloadPath": str(self.directory),
                "eventsEnabled": True}

    def _begin(self, p: dict[str, Any]) -> None:
        name = os.path.basename(str(p.get("suggestedFilename") or "")) or "download"
        if name in (".", ".."):
            name = "download"
        self._started[str(p.get("guid"))] = {"name": name, "url": str(p.get("url") or "")}
        self._idle.clear()

    def _progress(self, p: dict[str, Any]) -> None:
        state = p.get("state")
        if state == "inProgress":
            return
        guid = str(p.get("guid"))
        entry = self._started.pop(guid, None)
        if not self._started:
            self._idle.set()
        if entry is None or state != "completed":
            if entry is not None:
                logger.info("download %s %s", entry["name"], state)
            return
        saved = Path(p.get("filePath") or self.directory / guid)
        target = self.directory / entry["name"]
        try:
            os.replace(saved, target)
            size = target.stat().st_size
        except OSError as exc:
            logger.warning("download %s: %s", entry["name"], exc)
            return
        mime = self.mimes.get(entry["url"]) or mimetypes.guess_type(entry["name"])[0]
        self._done.append({"name": entry["name"], "size": size, "url": entry["url"],
                           "mime": mime})

    def note_response(self, url: str, mime: str | None) -> None:
        if mime:
            self.mimes[url] = mime
            if len(self.mimes) > 200:
                self.mimes.pop(next(iter(self.mimes)))

    async def wait(self, timeout: float) -> None:
        """Until no download is in progress, or ``timeout`` s."""
        if self._started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)

    def take(self) -> list[dict[str, Any]]:
        done, self._done = self._done, []
        return done
