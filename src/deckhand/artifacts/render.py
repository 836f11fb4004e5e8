"""A run's screens as one file: the recording (an animated WebP) and the
trajectory (a zip of the steps' JSON and screens; layout in docs/recordings.md).
CPU-bound: callers run these in a worker thread."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import IO, Any

from PIL import Image

FRAME_MS = 1000  # one step a second
MAX_FRAMES = 100  # a longer run is sampled evenly (first and last kept): Pillow holds
# every decoded frame until it assembles the file, ~4 MB a 1280×800 frame
MAX_SIDE = 1280
WEBP_QUALITY = 60
WEBP_METHOD = 2  # 0 fastest … 6 smallest; 2 is within a few % of 4's size at half the time


@dataclass(frozen=True)
class Frame:
    data: bytes  # JPEG or PNG
    duration_ms: int = FRAME_MS


def picks(count: int, limit: int = MAX_FRAMES) -> list[tuple[int, int]]:
    """Which of ``count`` frames a recording shows, at most ``limit``, evenly
    spread with the first and the last kept: (index, how many frames it stands for)."""
    if count <= limit:
        return [(i, 1) for i in range(count)]
    at = [round(i * (count - 1) / (limit - 1)) for i in range(limit)]
    return [(a, (at[i + 1] if i + 1 < limit else count) - a) for i, a in enumerate(at)]


def recording_webp(frames: list[Frame]) -> bytes:
    """The frames as an animated WebP (looping), sized as the first frame
    (fitted within MAX_SIDE); frames of another size are fitted to it."""
    images = []
    size: tuple[int, int] | None = None
    for f in frames:
        src = Image.open(io.BytesIO(f.data))
        src.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale when larger
        im = src.convert("RGB")
        if size is None:
            im.thumbnail((MAX_SIDE, MAX_SIDE))
            size = im.size
        elif im.size != size:
            im = im.resize(size)
        images.append(im)
    out = io.BytesIO()
    images[0].save(out, format="WEBP", save_all=True, append_images=images[1:],
                   duration=[f.duration_ms for f in frames], loop=0,
                   quality=WEBP_QUALITY, method=WEBP_METHOD)
    return out.getvalue()


def extension(content_type: str) -> str:
    return {"image/png": "png", "image/webp": "webp"}.get(content_type, "jpg")


class Trajectory:
    """The zip, written a step at a time: ``run.json``, ``steps/NNNN.json``
    each (the step as the steps list shows it, plus ``screenshot_file`` and
    ``screenshot_after_file``: paths in the zip, or null, and
    ``download_files``), ``screens/NNNN.<ext>``, ``screens/NNNN-after.<ext>``
    and ``downloads/NNNN/<file name>``."""

    def __init__(self, out: IO[bytes], run: dict[str, Any]) -> None:
        self._zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self._zip.writestr("run.json", json.dumps(run, indent=2))

    def add_step(self, view: dict[str, Any], screens: dict[str, tuple[str, bytes]],
                 files: list[tuple[str, bytes]] | tuple[()] = ()) -> None:
        """One step: its JSON, its screens ({kind: (content type, bytes)}) and
        its downloads ([(file name, bytes)])."""
        n = int(view["number"])
        view = dict(view)
        for kind, field, suffix in (("screen", "screenshot_file", ""),
                                    ("after", "screenshot_after_file", "-after")):
            view[field] = None
            if kind in screens:
                ctype, data = screens[kind]
                name = f"screens/{n:04d}{suffix}.{extension(ctype)}"
                info = zipfile.ZipInfo(name, date_time=_zip_time(view))
                self._zip.writestr(info, data, compress_type=zipfile.ZIP_STORED)  # compressed
                view[field] = name
        view["download_files"] = []
        for file_name, data in files:
            name = _unique(f"downloads/{n:04d}/{file_name}", view["download_files"])
            self._zip.writestr(zipfile.ZipInfo(name, date_time=_zip_time(view)), data)
            view["download_files"].append(name)
        self._zip.writestr(f"steps/{n:04d}.json", json.dumps(view, indent=2))

    def close(self) -> None:
        self._zip.close()


def _unique(name: str, taken: list[str]) -> str:
    """``name``, or ``name`` with " (2)", " (3)", … before its extension when
    the step already has a file of that name."""
    stem, dot, ext = name.rpartition(".")
    if not dot or "/" in ext:
        stem, dot, ext = name, "", ""
    candidate, i = name, 1
    while candidate in taken:
        i += 1
        candidate = f"{stem} ({i}){dot}{ext}"
    return candidate


def _zip_time(view: dict[str, Any]) -> tuple[int, int, int, int, int, int]:
    at = str(view.get("finished_at") or "1980-01-01T00:00:00")
    try:
        return (int(at[0:4]), int(at[5:7]), int(at[8:10]), int(at[11:13]), int(at[14:16]),
                int(at[17:19]))
    except ValueError:
        return (1980, 1, 1, 0, 0, 0)
