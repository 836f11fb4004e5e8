"""A form task end to end through the public API (``POST /v1/runs`` with the
offline brain), on a browser machine and on a desktop machine: a label above
its field and a placeholder-only field are typed into, the form is sent and
the result text is verified; the same task naming a field that is not there
fails with the machine's reason instead of going on."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.machine_pages import recorded_groundings, serve_pages, server, sqlite_server
from tests.support.runs import start, wait_for

__all__ = ["server", "sqlite_server"]  # fixtures that terminate leftover machines

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                reason="chromium not installed")
DESKTOP = pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("tesseract") is None,
                             reason="Xvfb or tesseract not installed")


def _task(base: str, email_label: str = "Email address") -> str:
    return (f'open {base}/form.html, type "ada@example.com" into "{email_label}", '
            'type "Ada" into "Your name", click "Submit", '
            'verify the screen shows "Thanks Ada, we wrote to ada@example.com"')


async def _machine(c, kind: str) -> str:  # type: ignore[no-untyped-def]
    body = ({"display_name": "d", "desktop_enabled": True} if kind == "desktop"
            else {"display_name": "b", "metadata": {"kind": "browser"}})
    r = await c.post("/v1/machines", json=body)
    assert r.status_code == 200, r.text
    return r.json()["machine"]["id"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["browser", pytest.param("desktop", marks=DESKTOP)])
async def test_a_form_task_succeeds_and_a_missing_field_fails(sqlite_server, kind: str) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    grounding = "ocr" if kind == "desktop" else "dom"
    with serve_pages(sqlite_server) as base:
        async with sqlite_server.client(key) as c:
            mid = await _machine(c, kind)
            run = await start(c, machine_id=mid, task=_task(base))
            final = await wait_for(c, run["id"], timeout=120)
            assert final["status"] == "succeeded", final
            assert await recorded_groundings(sqlite_server, run["id"]) == [grounding] * 3

            run = await start(c, machine_id=mid, task=_task(base, "Phone number"))
            final = await wait_for(c, run["id"], timeout=120)
            assert final["status"] == "failed", final
            assert final["error"]["code"] == "MACHINE_ERROR"
            message = final["error"]["message"]
            assert "'Phone number'" in message and "failed on the machine" in message, message
            assert final["steps_completed"] <= 3  # it stopped at the miss: no click, no verify
