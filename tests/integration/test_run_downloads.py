"""Files a run's browser downloads are artifacts of the run: listed, fetched
as attachments, in the step's record and in the trajectory zip, private to
the run's account and mode, and swept with the run's screens."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest

from deckhand.core.clock import utcnow
from tests.support.cli import deckhand
from tests.support.contract import assert_error
from tests.support.machine_pages import pages_port, sqlite_server
from tests.support.runs import script, start, wait_for
from tests.support.static_site import static_site

__all__ = ["sqlite_server"]

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                       reason="chromium not installed (scripts/install-system-deps)"),
]

REPORT = "name,total\nalpha,3\nbeta,5\n"
# one link over the top-left of the page: a click at (100, 100) downloads
PAGE = ("<meta charset=utf-8><title>reports</title><a id=get download href='report.csv' style='display:block;"
        "position:absolute;left:0;top:0;width:400px;height:200px;background:#4a8'>"
        "report</a><a download='notes été.txt' href='notes.txt' style='display:block;"
        "position:absolute;left:0;top:300px;width:400px;height:200px'>notes</a>")


async def test_a_browser_runs_downloads_are_kept_with_the_run(sqlite_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = sqlite_server
    key = await server.key()
    with static_site({"index.html": PAGE, "report.csv": REPORT, "notes.txt": "<b>notes</b>"},
                     pages_port(server)) as site:
        async with server.client(key) as c:
            r = await c.post("/v1/machines", json={"display_name": "dl",
                                                   "metadata": {"kind": "browser"}})
            assert r.status_code == 200, r.text
            mid = r.json()["machine"]["id"]
            task = script(
                {"actions": [{"kind": "open_url", "url": f"{site}/index.html"}], "text": "open"},
                {"actions": [{"kind": "click", "x": 100, "y": 100},
                             {"kind": "click", "x": 100, "y": 400}], "text": "download both"},
                {"actions": [], "text": "done", "outcome": {"success": True, "answer": "ok"}},
            )
            run = await start(c, machine_id=mid, task=task, model="scripted")
            final = await wait_for(c, run["id"], timeout=90)
            assert final["status"] == "succeeded", final
            run_id = run["id"]

            listed = (await c.get(f"/v1/runs/{run_id}/downloads")).json()
            assert listed["has_more"] is False
            files = listed["data"]
            assert [(f["step"], f["index"], f["name"]) for f in files] == [
                (2, 1, "report.csv"), (2, 2, "notes été.txt")]
            report = files[0]
            assert report["size"] == len(REPORT) and report["content_type"] == "text/csv"
            assert report["source_url"] == f"{site}/report.csv"
            assert report["url"] == f"/v1/runs/{run_id}/steps/2/downloads/1"

            r = await c.get(report["url"])
            assert r.status_code == 200 and r.content == REPORT.encode()
            assert r.headers["content-disposition"].startswith('attachment; filename="report.csv"')
            assert r.headers["x-content-type-options"] == "nosniff"
            # a page's file is never rendered on the server's origin
            r = await c.get(files[1]["url"])
            assert r.content == b"<b>notes</b>"
            assert "sandbox" in r.headers["content-security-policy"]
            assert "filename*=UTF-8''notes%20%C3%A9t%C3%A9.txt" in r.headers["content-disposition"]

            steps = (await c.get(f"/v1/runs/{run_id}/steps")).json()["data"]
            assert [len(s["downloads"]) for s in steps] == [0, 2, 0]
            assert steps[1]["downloads"] == files

            z = zipfile.ZipFile(io.BytesIO((await c.get(f"/v1/runs/{run_id}/trajectory")).content))
            assert z.read("downloads/0002/report.csv") == REPORT.encode()
            step2 = json.loads(z.read("steps/0002.json"))
            assert step2["download_files"] == ["downloads/0002/report.csv",
                                               "downloads/0002/notes été.txt"]

            assert_error(await c.get(f"/v1/runs/{run_id}/steps/2/downloads/3"), 404, "NOT_FOUND")
            assert_error(await c.get(f"/v1/runs/{run_id}/steps/2/downloads/0"), 422,
                         "VALIDATION_ERROR")

    # from the shell: list and save them
    code, out, err = await deckhand(tmp_path, "runs", "downloads", run_id, "--save", "got",
                                    server=server, key=key)
    assert code == 0, err
    assert (tmp_path / "got" / "0002-1-report.csv").read_text() == REPORT
    assert (tmp_path / "got" / "0002-2-notes été.txt").read_bytes() == b"<b>notes</b>"

    paths = [f"/v1/runs/{run_id}/downloads", f"/v1/runs/{run_id}/steps/2/downloads/1"]
    for other in (await server.key(account="other"), await server.key(test=True)):
        async with server.client(other) as c:
            for path in paths:
                assert_error(await c.get(path), 404, "NOT_FOUND")

    # retention forgets the files with the screens; the run stays whole
    await server.services.artifact_sweeper.sweep(now=utcnow() + timedelta(days=31))
    async with server.client(key) as c:
        assert (await c.get(f"/v1/runs/{run_id}/downloads")).json()["data"] == []
        assert_error(await c.get(paths[1]), 404, "NOT_FOUND")
        assert (await c.get(f"/v1/runs/{run_id}")).json() == final
