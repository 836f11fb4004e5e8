"""A real download in a browser machine's Chromium (over CDP, in the
machine's box: its own user and network, the page served on a loopback port
the box allows): the file lands in the workspace's Downloads under the name
the page suggested, owned by the machine's user, and ``take_downloads``
hands it over once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deckhand.machine_agent.browser import chromium_available
from deckhand.machine_agent.cgroups import Limits
from deckhand.machine_agent.server import MachineAgent
from tests.support.deployment import free_port
from tests.support.polling import wait_until
from tests.support.static_site import static_site

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not chromium_available(), reason="chromium not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the box needs root"),
]

CSV = "name,score\n" + "".join(f"row{i},{i}\n" for i in range(2000))
PAGE = """<!doctype html><html><body style="font-size:24px">
<a id="get" href="/data.csv" download="report.csv">Get the report</a>
<a id="bad" href="/missing.csv" download="missing.csv">Broken link</a></body></html>"""


async def test_a_download_lands_in_the_workspace_as_the_machines_user(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "ws").mkdir()
    agent = MachineAgent("m-dl", tmp_path / "ws", state_dir=tmp_path / "state", browser=True,
                         limits=Limits(1024, 1.0, 256), host_allow=[("127.0.0.1", port)])
    with static_site({"page.html": PAGE, "data.csv": CSV}, port) as base:
        await agent.start()
        try:
            b = agent.browser
            assert b.take_downloads() == []
            await b.goto(f"{base}/page.html")
            await b.click({"selector": "#bad"})  # a 404: a failed download is not listed
            await b.click({"selector": "#get"})
            done = await wait_until(b.take_downloads, done=bool, timeout=20, every=0.05,
                                    what="the download to finish")
            assert done == [{"name": "report.csv", "size": len(CSV),
                             "url": f"{base}/data.csv", "mime": "text/csv"}]
            saved = tmp_path / "ws" / "Downloads" / "report.csv"
            assert saved.read_text() == CSV
            uid = agent.box.uid
            assert uid is not None and uid != 0
            assert saved.stat().st_uid == uid  # the machine's user's file
            assert b.take_downloads() == []  # handed over once
            # nothing else was left in Downloads (no half-written guid file)
            assert sorted(p.name for p in saved.parent.iterdir()) == ["report.csv"]
        finally:
            await agent.close()
