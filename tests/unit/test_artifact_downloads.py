"""A step's downloads as the runner keeps them: what the results report,
the file names as kept, one blob for identical bytes, numbered rows."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from deckhand.artifacts import digest
from deckhand.artifacts.downloads import Downloaded, keep_downloads, reported, safe_name
from deckhand.artifacts.fs import FsArtifactStore
from deckhand.artifacts.render import Trajectory

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_reported_collects_the_downloads_of_every_result_in_order() -> None:
    results = [
        {"ok": True, "data": {"downloads": [{"name": "a.csv", "size": 3}]}},
        {"ok": True, "data": {}},
        {"ok": True},
        {"ok": True, "data": {"downloads": [{"name": "b.pdf"}, {"size": 9}, "junk"]}},
        {"ok": True, "data": {"downloads": "not a list"}},
    ]
    assert [d["name"] for d in reported(results)] == ["a.csv", "b.pdf"]


def test_safe_name_drops_directories_and_keeps_the_extension_when_cut() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\x\\report.csv") == "report.csv"
    assert safe_name("  ") == "download"
    long = safe_name("x" * 400 + ".tar.gz")
    assert len(long) == 255 and long.endswith(".gz")


async def test_keep_downloads_writes_each_distinct_file_once(tmp_path: Path) -> None:
    store = FsArtifactStore(tmp_path / "artifacts")
    files = [Downloaded("a.csv", b"1,2\n", "text/csv", "http://127.0.0.1:1/a.csv"),
             Downloaded("copy.csv", b"1,2\n"),
             Downloaded("b.bin", b"\x00\x01", None, "x" * 5000)]
    rows = await keep_downloads(store, "run", 4, files, NOW)
    assert [(r.kind, r.name, r.content_type) for r in rows] == [
        ("download-1", "a.csv", "text/csv"), ("download-2", "copy.csv", "application/octet-stream"),
        ("download-3", "b.bin", "application/octet-stream")]
    assert rows[0].sha256 == rows[1].sha256 == digest(b"1,2\n")
    assert rows[0].source_url == "http://127.0.0.1:1/a.csv" and rows[2].source_url is None
    assert {b.key for b in await store.scan()} == {digest(b"1,2\n"), digest(b"\x00\x01")}
    assert await store.get(rows[2].sha256) == b"\x00\x01"


def test_a_trajectory_keeps_a_steps_files_and_names_a_second_of_the_same_name() -> None:
    out = io.BytesIO()
    t = Trajectory(out, {"id": "run"})
    t.add_step({"number": 2, "finished_at": "2026-12-07T12:00:00Z"}, {},
               [("r.csv", b"one"), ("r.csv", b"two"), ("noext", b"3")])
    t.close()
    z = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    step = json.loads(z.read("steps/0002.json"))
    assert step["download_files"] == ["downloads/0002/r.csv", "downloads/0002/r (2).csv",
                                      "downloads/0002/noext"]
    assert [z.read(n) for n in step["download_files"]] == [b"one", b"two", b"3"]
