"""The eval's checks against a real machine through the API, and the
loopback site's record of form posts: every check passes on the right state
and fails, saying what it saw, on a wrong one."""

from __future__ import annotations

import httpx
import pytest

from deckhand.client import DeckhandClient
from deckhand.eval.checks import (
    Command,
    FileAbsent,
    FileContains,
    FileEquals,
    FileExists,
    FileMatches,
    FormPost,
    PageShows,
)
from deckhand.eval.site import PASSWORD, USER, serve_site
from deckhand.eval.state import ApiMachineState
from tests.support.machine_pages import pages_port

pytestmark = pytest.mark.asyncio


async def test_file_and_command_checks_read_the_machines_state(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    async with serve_site(pages_port(sqlite_server)) as site, DeckhandClient(sqlite_server.url, key) as api:
        machine = await api.create_machine("checks")
        state = ApiMachineState(api, machine["id"], site.new_slot())
        await state.write_file("notes/a.txt", "alpha\nbeta\n")

        async def verdict(check) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
            done = await check.check(state)
            return done.passed, done.detail

        assert (await verdict(FileExists("notes/a.txt")))[0]
        assert await verdict(FileExists("notes/b.txt")) == (False, "notes/b.txt does not exist")
        assert await verdict(FileAbsent("notes/a.txt")) == (False, "notes/a.txt still exists")
        assert (await verdict(FileAbsent("notes/b.txt")))[0]
        assert (await verdict(FileContains("notes/a.txt", "beta")))[0]
        assert await verdict(FileContains("notes/a.txt", "gamma")) == (
            False, "notes/a.txt does not contain 'gamma' (it has: 'alpha beta')")
        assert (await verdict(FileEquals("notes/a.txt", "alpha\nbeta")))[0]  # ends trimmed
        assert not (await verdict(FileEquals("notes/a.txt", "alpha")))[0]
        assert (await verdict(FileMatches("notes/a.txt", r"^beta$")))[0]
        assert not (await verdict(FileMatches("notes/a.txt", r"^gamma$")))[0]
        assert await verdict(FileContains("nope.txt", "x")) == (False, "nope.txt does not exist")

        # a command runs in a shell of its own in the home directory: `exit`
        # and `cd` leave the session (and its background processes) alone
        assert (await verdict(Command("cd /tmp; sleep 300 & echo $! > ~/bg.pid; exit 0")))[0]
        assert (await verdict(Command("cat notes/a.txt", output_contains="alpha")))[0]
        assert (await verdict(Command('kill -0 "$(cat bg.pid)"')))[0]  # still running
        passed, detail = await verdict(Command("exit 3"))
        assert not passed and detail.startswith("`exit 3` exited with 3, expected 0")
        assert (await verdict(Command("exit 3", exit_code=3)))[0]
        passed, detail = await verdict(Command("echo 1.0", output_matches=r"^2\."))
        assert not passed and "does not match /^2\\./" in detail
        await api.delete_machine(machine["id"])


async def test_form_posts_and_the_page_are_read_from_the_site_and_the_browser(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    async with serve_site(pages_port(sqlite_server)) as site, DeckhandClient(sqlite_server.url, key) as api:
        mine, other = site.new_slot(), site.new_slot()
        machine = await api.create_machine("checks", metadata={"kind": "browser"})
        state = ApiMachineState(api, machine["id"], mine)
        ship = FormPost(form="ship", fields={"order": "1047"}, count=1)
        assert (await ship.check(state)).detail == \
            "the site received 0 post(s) of 'ship', expected 1: []"
        async with httpx.AsyncClient() as http:
            # another attempt's post is not this one's
            await http.post(f"{other.base_url}/ship", data={"order": "1047"})
            assert not (await ship.check(state)).passed
            await http.post(f"{mine.base_url}/ship", data={"order": "1046"})
            assert (await ship.check(state)).detail.startswith("no post of 'ship' carries")
            await http.post(f"{mine.base_url}/ship", data={"order": "1047"})
            assert not (await ship.check(state)).passed  # two posts, one expected
            assert (await FormPost(form="ship", fields={"order": "1047"}).check(state)).passed
            # the one-time code works once, for this slot only
            r = await http.post(f"{mine.base_url}/login",
                                data={"username": USER, "password": PASSWORD})
            assert r.status_code == 303 and mine.code is not None and other.code is None
            code = (await http.get(f"{mine.base_url}/inbox.txt")).text
            assert (await http.post(f"{mine.base_url}/otp", data={"code": "000000" if code
                                    != "000000" else "111111"})).status_code == 401
            assert (await http.post(f"{mine.base_url}/otp", data={"code": code})).status_code \
                == 303
            assert (await http.post(f"{mine.base_url}/otp", data={"code": code})).status_code \
                == 401
        assert mine.posts("signed_in") == [{"username": USER}]

        r = await api.call("POST", f"/v1/machines/{machine['id']}/browser/open",
                           json={"parameters": {"url": f"{mine.base_url}/orders?page=2"}})
        assert r["success"], r
        assert (await PageShows("Grace Hopper").check(state)).passed
        shows = await PageShows("Ada Lovelace").check(state)  # she is on page 1
        assert not shows.passed and "does not show 'Ada Lovelace'" in shows.detail
        await api.delete_machine(machine["id"])


async def test_a_setup_that_fails_is_reported_and_the_machine_removed(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    from deckhand.eval.runner import EvalOptions, run_task
    from deckhand.eval.tasks import parse_task

    task = parse_task({"id": "broken", "kind": "terminal", "goal": "g",
                       "offline": 'write "x" to x.txt',
                       "setup": {"commands": ["echo half-way; exit 4"]},
                       "checks": [{"type": "file_exists", "path": "x.txt"}]})
    key = await sqlite_server.key()
    async with serve_site(pages_port(sqlite_server)) as site, DeckhandClient(sqlite_server.url, key) as api:
        result = await run_task(api, task, site, EvalOptions(phrasing="offline"))
        assert (result.status, result.passed, result.run_id) == ("setup_failed", False, None)
        assert result.error == "setup command `echo half-way; exit 4` exited with 4: half-way\n"
        listed = await api.call("GET", "/v1/machines")
        assert listed["data"] == [], listed  # deleted machines are not listed
