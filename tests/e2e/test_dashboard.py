"""The dashboard in a real browser (Debian's Chromium driven by Playwright)
against a real ``deckhand serve``: sign in, watch runs go live without a
reload, step through a run, resume one that waits for a human, and the
session's limits — no page without it, no other account's or mode's run, no
mutation without its CSRF token.

One server and one browser for the module. ``DECKHAND_DASHBOARD_SHOTS=DIR``
also saves screenshots of the main pages there (docs/dashboard/ holds them).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deckhand.client import DeckhandClient
from deckhand.scopes import OPERATOR_SCOPES
from deckhand.store import accounts as accounts_store
from deckhand.store import keys as keys_store
from deckhand.store.db import Database
from tests.support.crash import kill_sessions_naming, step_script
from tests.support.deployment import Deployment, free_port, poll
from tests.support.static_site import static_site

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--test-type"]
SHOTS = os.environ.get("DECKHAND_DASHBOARD_SHOTS")
UUID_0 = "00000000-0000-4000-8000-000000000000"


@dataclass
class Site:
    d: Deployment
    base: str
    key: str  # the default account, live
    key_id: str
    other_key: str  # another account
    test_key: str  # the default account, test mode
    machine: str = ""
    browser: Any = None
    errors: list[str] = field(default_factory=list)
    pages_port: int = 0  # a loopback port the machines may reach (DECKHAND_MACHINE_HOST_ALLOW)

    def client(self, key: str | None = None) -> DeckhandClient:
        return DeckhandClient(self.base, key or self.key, timeout=30)


async def _keys(d: Deployment) -> dict[str, tuple[str, str]]:
    """(key id, key) of: the default account live, another account, the
    default account in test mode — made in this process (a CLI call each
    would cost seconds), in the served, migrated database."""
    db = Database(d.url)
    secret = d.secret.encode()
    out = {}
    try:
        async with db.write() as conn:
            mine = await accounts_store.create(conn, "default")
            other = await accounts_store.create(conn, "other")
            for name, account, test in (("main", mine, False), ("other", other, False),
                                        ("test", mine, True)):
                key, raw = await keys_store.create(conn, secret=secret, account_id=account.id,
                                                   name=name, test=test, scopes=OPERATOR_SCOPES)
                out[name] = (key.id, raw)
    finally:
        await db.dispose()
    return out


@pytest.fixture(scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    from playwright.async_api import async_playwright

    tmp = tmp_path_factory.mktemp("dash")
    d = Deployment(tmp, None, secret_prefix="dash-", lease_seconds=5)
    try:
        port, pages = free_port(), free_port()
        await d.serve(port, env={"DECKHAND_MACHINE_HOST_ALLOW": f"127.0.0.1:{pages}"})
        keys = await _keys(d)
        s = Site(d, f"http://127.0.0.1:{port}", keys["main"][1], keys["main"][0],
                 keys["other"][1], keys["test"][1], pages_port=pages)
        async with s.client() as c:
            s.machine = (await c.create_machine("dash-box"))["id"]
            d.machines.append(s.machine)
        async with async_playwright() as pw:
            s.browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=ARGS)
            try:
                yield s
            finally:
                await s.browser.close()
    finally:
        await d.teardown()
        kill_sessions_naming(d.data_dir)


async def new_page(s: Site, *, width: int = 1280, height: int = 860) -> Any:
    """A fresh browser context (no cookie) and a page recording console errors."""
    ctx = await s.browser.new_context(viewport={"width": width, "height": height},
                                      base_url=s.base)
    page = await ctx.new_page()
    page.on("console", lambda m: m.type == "error" and s.errors.append(
        f"{page.url}: {m.text}"))
    page.on("pageerror", lambda e: s.errors.append(f"{page.url}: {e}"))
    return page


async def signed_in(s: Site, key: str | None = None, **kw: Any) -> Any:
    page = await new_page(s, **kw)
    await page.goto("/sign-in")
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'key'")
    await page.keyboard.type(key or s.key)  # by keyboard: the field has focus, Enter submits
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/(runs)?$"))
    return page


async def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.evaluate("document.activeElement && document.activeElement.blur(); "
                            "window.scrollTo(0, 0)")
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def no_console_errors(s: Site) -> None:
    errors, s.errors[:] = list(s.errors), []
    assert errors == [], errors


async def wait_run(s: Site, run_id: str, statuses: set[str]) -> dict[str, Any]:
    async with s.client() as c:
        async def reached() -> dict[str, Any] | None:
            run = await c.get_run(run_id)
            return run if run["status"] in statuses else None

        return await poll(reached, timeout=30, what=f"run {run_id} in {statuses}", logs=s.d.logs)


# ----------------------------------------------------------------------------- tests


async def test_no_page_and_no_data_without_a_session(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.base, follow_redirects=False) as h:
        for path in ("/", "/runs", "/machines", "/workflows", "/usage", "/schedules",
                     f"/runs/{UUID_0}"):
            r = await h.get(path)
            assert r.status_code == 303, (path, r.status_code)
            assert r.headers["location"].startswith("/sign-in?next="), r.headers
            assert "Deckhand" not in r.text
        assert (await h.get("/sign-in")).status_code == 200
        for path in ("/v1/runs", "/v1/machines", "/v1/usage", "/v1/runs/stream"):
            r = await h.get(path)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "INVALID_API_KEY"
    # a forged cookie is no session
    async with httpx.AsyncClient(base_url=site.base, follow_redirects=False,
                                 cookies={"deckhand_session": "v1.key_x.99999999999.00"}) as h:
        assert (await h.get("/v1/runs")).status_code == 401
        assert (await h.get("/runs")).status_code == 303
    page = await new_page(site)
    await page.goto("/machines")
    assert page.url.endswith("/sign-in?next=/machines"), page.url
    await page.fill("input[type=password]", "sk-dh-live-" + "0" * 64)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#error:not([hidden])")
    assert "Invalid" in await page.inner_text("#error")
    site.errors.clear()  # the refused sign-in is a 401 the console reports
    await shot(page, "sign-in")
    await page.context.close()


async def test_sign_in_and_watch_a_run_go_live(site: Site) -> None:
    page = await signed_in(site)
    await page.wait_for_selector("#live-state.on")
    # keyboard: the first Tab reaches "Skip to content", then the links, with a focus ring
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Runs"
    assert await page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    # Schedules: linked only once this server serves GET /v1/schedules
    schedules = await page.get_attribute("body", "data-schedules-api") == "1"
    assert await page.locator("#nav-schedules").is_visible() == schedules
    await page.evaluate("window.__noReload = 1")
    async with site.client() as c:
        run = await c.create_run(machine_id=site.machine, task=step_script(3, 0.7),
                                 model="scripted")
    row = f"tr[data-run-id='{run['id']}']"
    await page.wait_for_selector(f"{row}[data-status='running']", timeout=20_000)
    await page.wait_for_selector(f"{row}[data-status='succeeded']", timeout=20_000)
    assert await page.inner_text(f"{row} td.steps") == "3"
    assert await page.evaluate("window.__noReload") == 1  # changed in place
    # the status filter
    await page.click("button.chip[data-status='failed']")
    await page.wait_for_selector(row, state="detached")
    await page.click("button.chip[data-status='all']")
    await page.wait_for_selector(row)
    await shot(page, "runs")
    no_console_errors(site)

    # open it and step through its steps
    await page.click(f"{row} a.task-link")
    await page.wait_for_url(f"**/runs/{run['id']}")
    await page.wait_for_selector("main[data-ended='1']")
    await page.wait_for_selector("#step-counter:has-text('Step 3 of 3')")
    assert await page.locator("#timeline button[data-step]").count() == 3
    await page.wait_for_selector("#result")
    assert "ok" in await page.inner_text("#result")
    await page.click("#prev-step")
    await page.wait_for_selector("#step-counter:has-text('Step 2 of 3')")
    assert "echo step-2" in await page.inner_text("#step-actions")
    assert "step-2" in await page.inner_text("#step-actions pre")
    await page.click("#prev-step")
    await page.wait_for_selector("#step-counter:has-text('Step 1 of 3')")
    assert await page.is_disabled("#prev-step")
    await page.focus("#player")
    await page.keyboard.press("ArrowRight")
    await page.wait_for_selector("#step-counter:has-text('Step 2 of 3')")
    await page.fill("#scrubber", "3")
    await page.wait_for_selector("#step-counter:has-text('Step 3 of 3')")
    assert await page.is_disabled("#next-step")
    # the recordings' API serves each step's screen: the player shows the one it saw
    assert await page.get_attribute("body", "data-steps-api") == "1"
    for number in (3, 2):
        if number == 2:
            await page.click("#prev-step")
        img = page.locator("#screen-img")
        await img.wait_for()
        await page.wait_for_function(
            "n => { const i = document.querySelector('#screen-img');"
            " return i && i.complete && i.naturalWidth > 0"
            " && i.src.includes('/steps/' + n + '/screenshot') }", arg=number)
    await shot(page, "run")
    no_console_errors(site)
    await page.context.close()


async def test_resume_an_awaiting_run_with_a_note(site: Site) -> None:
    script = {"script": [
        {"text": "Preparing", "actions": [{"kind": "terminal", "command": "echo ready"}]},
        {"text": "Need approval", "ask_human": "Deploy to production?"},
        {"outcome": {"success": True, "answer": "deployed"}},
    ]}
    async with site.client() as c:
        run = await c.create_run(machine_id=site.machine, task=json.dumps(script),
                                 model="scripted")
    await wait_run(site, run["id"], {"awaiting_human"})
    page = await signed_in(site)
    await page.goto(f"/runs/{run['id']}")
    await page.wait_for_selector("#question:has-text('Deploy to production?')")
    await page.wait_for_selector("#live-view iframe")
    frame = page.frame_locator("#live-view iframe")
    await frame.locator("#status", has_text="connected").wait_for()  # the machine's own screen
    await shot(page, "run-awaiting-human")
    await page.fill("#note", "checked the diff, go")
    await page.click("#resume")
    await page.wait_for_selector("#result:has-text('deployed')", timeout=20_000)
    try:
        await page.wait_for_selector(
            "#timeline [data-note='resumed']:has-text('checked the diff, go')", timeout=5000)
    except Exception:
        raise AssertionError(await page.inner_html("#timeline")) from None
    assert (await wait_run(site, run["id"], {"succeeded"}))["status"] == "succeeded"
    assert await page.locator("#live-view").is_hidden()  # gone with the run
    no_console_errors(site)
    await page.context.close()


async def test_other_accounts_and_modes_runs_are_a_404_page(site: Site) -> None:
    foreign = []
    for key in (site.other_key, site.test_key):
        async with site.client(key) as c:
            box = (await c.create_machine("theirs"))["id"]
            site.d.machines.append(box)
            foreign.append((await c.create_run(machine_id=box, task="{}", model="scripted"))["id"])
    page = await signed_in(site)
    for run_id in [*foreign, UUID_0, "not-a-run"]:
        response = await page.goto(f"/runs/{run_id}")
        assert response.status == 404, run_id
        assert "404" in await page.inner_text("h1")
        cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
        async with httpx.AsyncClient(base_url=site.base, cookies=cookies) as h:  # the API too
            r = await h.get(f"/v1/runs/{run_id}")
            assert r.status_code == 404, r.text
    await shot(page, "not-found")
    site.errors.clear()  # a 404 document is reported on the console as such
    await page.context.close()


async def test_session_cookie_csrf_and_revocation(site: Site) -> None:
    async with site.client() as c:
        made = await c.call("POST", "/v1/keys", json={"name": "short-lived"})
    page = await signed_in(site, made["key"])
    cookie = next(c for c in await page.context.cookies() if c["name"] == "deckhand_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert made["key"] not in cookie["value"] and made["key"][11:] not in cookie["value"]
    csrf = await page.get_attribute("meta[name=csrf-token]", "content")
    async with site.client() as c:
        run = await c.create_run(machine_id=site.machine, task=step_script(1, 5),
                                 model="scripted")
    jar = {"deckhand_session": cookie["value"]}
    async with httpx.AsyncClient(base_url=site.base, cookies=jar) as h:
        assert (await h.get(f"/v1/runs/{run['id']}")).status_code == 200
        for headers in ({}, {"X-CSRF-Token": "0" * 64}):
            r = await h.post(f"/v1/runs/{run['id']}/cancel", headers=headers)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "CSRF_TOKEN_INVALID"
        # in the page too: a fetch without the header is refused, with it allowed
        status = await page.evaluate(
            "id => fetch(`/v1/runs/${id}/cancel`, {method: 'POST'}).then(r => r.status)",
            run["id"])
        assert status == 403
        r = await h.post(f"/v1/runs/{run['id']}/cancel", headers={"X-CSRF-Token": csrf or ""})
        assert r.status_code == 200 and r.json()["status"] in ("cancelled", "running"), r.text
        # revoking the key ends its sessions
        async with site.client() as c:
            await c.call("DELETE", f"/v1/keys/{made['key_id']}")
        assert (await h.get("/v1/runs")).status_code == 401
        r = await h.get("/runs", follow_redirects=False)
        assert r.status_code == 303
    site.errors.clear()  # the refused fetch above is a 403 on the console
    await page.context.close()


async def test_machines_workflows_usage_pages(site: Site) -> None:
    async with site.client() as c:
        wf = await c.call("POST", "/v1/workflows", json={
            "name": "Ship it", "slug": "ship-it", "definition": {"steps": [
                {"id": "build", "type": "wait", "seconds": 0},
                {"id": "gate", "type": "human_approval", "message": "Ship version 2?"},
                {"id": "end", "type": "succeed", "output": {"result": "shipped"}}]}})
        wrun = await c.call("POST", f"/v1/workflows/{wf['id']}/runs", json={})
    page = await signed_in(site)

    await page.goto("/machines")
    await page.wait_for_selector(f"tr[data-machine-id='{site.machine}']")
    await page.fill("#machine-name", "from-the-page")
    await page.click("#provision")
    made = page.locator("tr", has_text="from-the-page")
    await made.wait_for()
    mid = await made.get_attribute("data-machine-id")
    assert mid
    site.d.machines.append(mid)
    await shot(page, "machines")
    async with page.context.expect_page() as opened:  # live view & takeover, in a new tab
        await page.locator(f"tr[data-machine-id='{site.machine}'] button",
                           has_text="Live view").click()
    live = await opened.value
    await live.wait_for_url(re.compile(rf"/v1/machines/{site.machine}/live\?ticket="))
    await live.locator("#status", has_text="connected").wait_for()
    await live.close()
    await made.locator("button", has_text="Delete").click()
    await made.locator("button", has_text="Confirm delete").click()
    await made.wait_for(state="detached")
    no_console_errors(site)

    await page.goto("/workflows")
    approval = page.locator(f"[data-approval='{wrun['id']}']")
    await approval.wait_for(timeout=20_000)
    assert "Ship version 2?" in await approval.inner_text()
    item = page.locator(f"details[data-workflow-run='{wrun['id']}']")
    await item.locator("summary").click()
    await item.locator(".tree code", has_text="gate").wait_for()
    await shot(page, "workflows")
    await approval.locator("button", has_text="Approve").click()

    async with site.client() as c:
        async def ended() -> dict[str, Any] | None:
            r = await c.call("GET", f"/v1/workflows/runs/{wrun['id']}")
            return r if r["status"] in ("succeeded", "failed") else None

        done = await poll(ended, timeout=20, what="the approved workflow run", logs=site.d.logs)
    assert done["status"] == "succeeded" and done["output"] == {"result": "shipped"}, done
    no_console_errors(site)

    await page.goto("/usage")
    await page.wait_for_selector("#usage-bars .bar")
    assert await page.locator("#usage-bars .bar").count() == 30
    assert "unlimited" in await page.inner_text("#kpi-wallet")
    await shot(page, "usage")
    no_console_errors(site)
    await page.context.close()

    phone = await signed_in(site, width=390, height=844)
    await phone.wait_for_selector("#live-state.on")
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
    await shot(phone, "runs-phone")
    await phone.click("#runs a.task-link >> nth=-1")
    await phone.wait_for_selector("main[data-ended='1']")
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
    await shot(phone, "run-phone")
    no_console_errors(site)
    await phone.context.close()


async def test_schedules_page_creates_runs_and_pauses(site: Site) -> None:
    page = await signed_in(site)
    assert await page.get_attribute("body", "data-schedules-api") == "1"
    await page.click("#nav-schedules")
    await page.wait_for_url("**/schedules")
    await page.wait_for_selector(f"#schedule-machine option[value='{site.machine}']",
                                 state="attached")
    await page.fill("#schedule-name", "Morning export")
    await page.select_option("#schedule-machine", site.machine)
    await page.select_option("#schedule-frequency", "daily")
    assert await page.is_visible("#schedule-time") and not await page.is_visible("#schedule-cron")
    await page.fill("#schedule-time", "03:00")
    await page.fill("#schedule-timezone", "America/New_York")
    await page.fill("#schedule-task", "run `echo exported`")
    await page.click("#schedule-create")
    row = page.locator("#schedules-body tr[data-schedule-id]", has_text="Morning export")
    await row.wait_for()
    schedule_id = await row.get_attribute("data-schedule-id")
    async with site.client() as c:
        made = await c.call("GET", f"/v1/schedules/{schedule_id}")
    assert made["frequency"] == "daily" and made["timezone"] == "America/New_York"
    assert made["next_run_at"] and made["enabled"] is True
    assert "Daily · America/New_York" in await row.inner_text()

    # a bad cron is the API's error, shown, and nothing is created
    await page.fill("#schedule-name", "Broken")
    await page.select_option("#schedule-frequency", "custom")
    await page.fill("#schedule-cron", "61 * * * *")
    await page.fill("#schedule-task", "run `true`")
    await page.click("#schedule-create")
    await page.locator(".toast", has_text="cron").wait_for()
    assert await page.locator("#schedules-body tr[data-schedule-id]").count() == 1
    refused, site.errors[:] = list(site.errors), []  # the browser logs the refused POST
    assert len(refused) == 1 and "422" in refused[0], refused

    # run now: the firing shows in the history, and its run ends
    await row.get_by_role("button", name="Run now").click()
    await page.locator(".toast", has_text="Started Morning export").wait_for()
    row = page.locator(f"tr[data-schedule-id='{schedule_id}']")
    await row.get_by_role("button", name="History").click()
    history = page.locator(f"tr[data-history-of='{schedule_id}']")
    await history.locator("tr[data-record-id]").first.wait_for()
    assert "manual" in await history.inner_text()
    async with site.client() as c:
        records = (await c.call("GET", f"/v1/schedules/{schedule_id}/runs"))["data"]
        run_id = records[0]["agent_run_id"]
    await wait_run(site, run_id, {"succeeded"})

    # pause, then resume
    await row.get_by_role("button", name="Pause").click()
    await page.locator(f"tr[data-schedule-id='{schedule_id}'] [data-status='paused']").wait_for()
    async with site.client() as c:
        assert (await c.call("GET", f"/v1/schedules/{schedule_id}"))["enabled"] is False
    await page.locator(f"tr[data-schedule-id='{schedule_id}']").get_by_role(
        "button", name="Resume").click()
    await page.locator(f"tr[data-schedule-id='{schedule_id}'] [data-status='active']").wait_for()
    await shot(page, "schedules")
    no_console_errors(site)
    await page.context.close()


async def test_a_runs_downloads_are_links_on_its_page(site: Site) -> None:
    page_html = ("<meta charset=utf-8><a download href='totals.csv' style='display:block;"
                 "position:absolute;left:0;top:0;width:500px;height:300px'>totals</a>")
    with static_site({"index.html": page_html, "totals.csv": "a,1\nb,2\n"},
                     site.pages_port) as base:
        async with site.client() as c:
            machine = (await c.create_machine("dash-browser", metadata={"kind": "browser"}))["id"]
            site.d.machines.append(machine)
            run = await c.create_run(machine_id=machine, model="scripted", task=json.dumps(
                {"script": [{"actions": [{"kind": "open_url", "url": f"{base}/index.html"}]},
                            {"actions": [{"kind": "click", "x": 100, "y": 100}],
                             "text": "download the totals"},
                            {"actions": [], "outcome": {"success": True, "answer": "saved"}}]}))
        await wait_run(site, run["id"], {"succeeded"})
    page = await signed_in(site)
    await page.goto(f"/runs/{run['id']}")
    await page.click("#timeline button[data-step='2']")
    link = page.locator("#step-downloads a")
    await link.wait_for()
    assert await link.inner_text() == "totals.csv"
    async with page.expect_download() as info:
        await link.click()
    saved = await (await info.value).path()
    assert Path(saved).read_text() == "a,1\nb,2\n"
    await shot(page, "run-downloads")
    no_console_errors(site)
    await page.context.close()
