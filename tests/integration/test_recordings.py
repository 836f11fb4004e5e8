"""Recordings through the HTTP API, on both databases: a desktop run's steps
with the screens the brain saw, each screen, the recording, the trajectory
zip; other accounts and modes get 404; retention forgets the screens and the
run's JSON stays whole."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from datetime import timedelta

import pytest
from PIL import Image

from deckhand.core.clock import utcnow
from tests.support.contract import assert_error
from tests.support.machine_pages import server
from tests.support.runs import script, start, wait_for

__all__ = ["server"]  # the fixture that terminates leftover machines

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(any(shutil.which(b) is None for b in ("Xvfb", "openbox", "xterm"))
                       or not os.path.exists("/usr/bin/chromium"),
                       reason="desktop packages not installed (scripts/install-system-deps)"),
]

STEPS = (
    {"actions": [{"kind": "click", "x": 640, "y": 400}], "text": "click the middle",
     "reasoning": "to focus", "usage": {"input_tokens": 11, "output_tokens": 3}},
    {"actions": [{"kind": "type", "text": "echo recorded"}], "text": "type"},
    {"actions": [{"kind": "key", "keys": "Return"}], "text": "run it",
     "outcome": {"success": True, "answer": "ok"}},
)


async def _desktop_run(c) -> tuple[str, dict]:  # type: ignore[no-untyped-def,type-arg]
    r = await c.post("/v1/machines", json={"display_name": "rec", "desktop_enabled": True})
    assert r.status_code == 200, r.text
    mid = r.json()["machine"]["id"]
    run = await start(c, machine_id=mid, task=script(*STEPS), model="scripted")
    final = await wait_for(c, run["id"], timeout=60)
    assert final["status"] == "succeeded", final
    return run["id"], final


def _image(r) -> Image.Image:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] in ("image/jpeg", "image/png")
    im = Image.open(io.BytesIO(r.content))
    assert im.format == {"image/jpeg": "JPEG", "image/png": "PNG"}[r.headers["content-type"]]
    return im


async def test_a_desktop_run_keeps_every_steps_screens(server) -> None:  # type: ignore[no-untyped-def]
    key = await server.key()
    async with server.client(key) as c:
        run_id, final = await _desktop_run(c)
        body = (await c.get(f"/v1/runs/{run_id}/steps")).json()
        assert body["has_more"] is False
        steps = body["data"]
        assert [s["number"] for s in steps] == [1, 2, 3]
        first = steps[0]
        assert first["text"] == "click the middle" and first["reasoning"] == "to focus"
        assert first["actions"][0]["kind"] == "click" and first["results"][0]["ok"] is True
        assert first["tokens"] == {"input_tokens": 11, "output_tokens": 3,
                                   "cache_creation_input_tokens": 0,
                                   "cache_read_input_tokens": 0}
        assert sum(s["credits"] for s in steps) == final["credits_charged"] > 0
        shots = set()
        for s in steps:
            assert s["screenshot_url"] == f"/v1/runs/{run_id}/steps/{s['number']}/screenshot"
            assert s["screenshot_after_url"] == s["screenshot_url"] + "?after=true"
            for url in (s["screenshot_url"], s["screenshot_after_url"]):
                r = await c.get(url)
                assert _image(r).size == (1280, 800)
                shots.add(r.content)

        page = (await c.get(f"/v1/runs/{run_id}/steps", params={"limit": 2})).json()
        assert [s["number"] for s in page["data"]] == [1, 2] and page["has_more"] is True
        page = (await c.get(f"/v1/runs/{run_id}/steps",
                            params={"limit": 2, "after": 2})).json()
        assert [s["number"] for s in page["data"]] == [3] and page["has_more"] is False
        assert_error(await c.get(f"/v1/runs/{run_id}/steps/4/screenshot"), 404, "NOT_FOUND")
        assert_error(await c.get(f"/v1/runs/{run_id}/steps", params={"limit": 0}), 422,
                     "VALIDATION_ERROR")

        r = await c.get(f"/v1/runs/{run_id}/recording")
        assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
        movie = Image.open(io.BytesIO(r.content))
        assert movie.format == "WEBP" and movie.size == (1280, 800)
        if len(shots) > 1:  # libwebp merges identical screens in a row into one frame
            total = 0
            for i in range(movie.n_frames):
                movie.seek(i)
                movie.load()
                total += movie.info["duration"]
            assert total == 4000  # three screens the brain saw, then the settled end: 1 s each

        r = await c.get(f"/v1/runs/{run_id}/trajectory")
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        z = zipfile.ZipFile(io.BytesIO(r.content))
        names = set(z.namelist())
        assert {"run.json", "steps/0001.json", "steps/0003.json", "screens/0001.jpg",
                "screens/0003-after.jpg"} <= names
        assert json.loads(z.read("run.json"))["id"] == run_id
        step3 = json.loads(z.read("steps/0003.json"))
        assert step3["screenshot_after_file"] == "screens/0003-after.jpg"
        assert Image.open(io.BytesIO(z.read(step3["screenshot_file"]))).size == (1280, 800)

        # retention: the screens go, the run and its steps stay whole
        swept = await server.services.artifact_sweeper.sweep(now=utcnow() + timedelta(days=31))
        assert swept.expired_rows == 6 and swept.deleted_blobs >= 1
        assert (await c.get(f"/v1/runs/{run_id}")).json() == final
        after = (await c.get(f"/v1/runs/{run_id}/steps")).json()["data"]
        assert [s["text"] for s in after] == [s["text"] for s in steps]
        assert all(s["screenshot_url"] is None and s["screenshot_after_url"] is None
                   for s in after)
        assert_error(await c.get(steps[0]["screenshot_url"]), 404, "NOT_FOUND")
        assert_error(await c.get(f"/v1/runs/{run_id}/recording"), 404, "NOT_FOUND")
        assert (await c.get(f"/v1/runs/{run_id}/trajectory")).status_code == 200

    paths = [f"/v1/runs/{run_id}/steps", f"/v1/runs/{run_id}/steps/1/screenshot",
             f"/v1/runs/{run_id}/recording", f"/v1/runs/{run_id}/trajectory"]
    for other in (await server.key(account="other"), await server.key(test=True)):
        async with server.client(other) as c:
            for path in paths:
                assert_error(await c.get(path), 404, "NOT_FOUND")
    async with server.client(key) as c:
        for path in (p.replace(run_id, "not-a-uuid") for p in paths):
            assert_error(await c.get(path), 404, "NOT_FOUND")
