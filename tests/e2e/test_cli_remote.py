"""``deckhand runs …``, ``deckhand machines …`` and ``deckhand run --kind`` as
a user runs them: real CLI processes against a real server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from tests.support.cli import deckhand
from tests.support.runs import wait_for

ASK = 'Ask a human "which branch?"'


@pytest.mark.asyncio
async def test_machines_and_runs_from_the_shell(sqlite_server: LiveServer, tmp_path: Path) -> None:
    key = await sqlite_server.key()
    cli = {"server": sqlite_server, "key": key}

    code, out, err = await deckhand(tmp_path, "machines", "create", "from-cli", "--json", **cli)
    assert code == 0, err
    machine = json.loads(out)["machine"]
    assert machine["display_name"] == "from-cli" and machine["kind"] == "terminal"
    assert json.loads(out)["live_view_url"] is None  # a terminal has no screen to watch
    code, out, _ = await deckhand(tmp_path, "machines", "list", **cli)
    assert code == 0 and machine["id"] in out and "from-cli" in out

    async with sqlite_server.client(key) as c:
        r = await c.post("/v1/runs", json={"machine_id": machine["id"], "task": ASK})
        assert r.status_code == 200, r.text
        run = r.json()
        await wait_for(c, run["id"], {"awaiting_human"})

        code, out, _ = await deckhand(tmp_path, "runs", "list", "--status", "awaiting_human",
                                      **cli)
        assert code == 0 and run["id"] in out and "awaiting_human" in out
        code, out, _ = await deckhand(tmp_path, "runs", "show", run["id"], "--json", **cli)
        assert code == 0 and json.loads(out)["status"] == "awaiting_human"
        code, out, _ = await deckhand(tmp_path, "runs", "resume", run["id"], "--note", "main",
                                      **cli)
        assert code == 0 and out.strip() in (f"run {run['id']}: queued",
                                             f"run {run['id']}: running")
        code, out, _ = await deckhand(tmp_path, "runs", "events", run["id"], "--follow",
                                      "--json", **cli)
        assert code == 0
        events = [json.loads(line) for line in out.splitlines()]
        assert events[-1]["type"] == "done"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert any(e["type"] == "resumed" and e["data"].get("note") == "main" for e in events)
        code, out, _ = await deckhand(tmp_path, "runs", "events", run["id"], **cli)
        assert code == 0 and "waiting for a human: which branch?" in out and "resumed: main" in out
        code, out, _ = await deckhand(tmp_path, "runs", "steps", run["id"], "--json", **cli)
        steps = json.loads(out)["data"]
        assert code == 0 and [s["number"] for s in steps] == list(range(1, len(steps) + 1))
        assert steps and all(s["screenshot_url"] for s in steps)  # the terminal's screen
        code, out, err = await deckhand(tmp_path, "runs", "recording", run["id"], "-o",
                                        "rec.webp", **cli)
        assert code == 0, err
        assert (tmp_path / "rec.webp").read_bytes()[8:12] == b"WEBP"

        r = await c.post("/v1/runs", json={"machine_id": machine["id"],
                                           "task": "Run `sleep 60`"})
        slow = r.json()
        await wait_for(c, slow["id"], {"running"})
        code, out, _ = await deckhand(tmp_path, "runs", "cancel", slow["id"], **cli)
        assert code == 0, out
        assert (await wait_for(c, slow["id"]))["status"] == "cancelled"

    shot = tmp_path / "shot.jpg"
    code, out, err = await deckhand(tmp_path, "machines", "screenshot", machine["id"],
                                    "--out", str(shot), **cli)
    assert code == 0, err
    assert out.strip() == str(shot) and shot.read_bytes()[:2] == b"\xff\xd8"

    code, out, err = await deckhand(tmp_path, "runs", "show", "5f0c9c1e-0000-4000-8000-000000000000",
                                    **cli)
    assert code == 2 and "error: NOT_FOUND" in err
    code, _, err = await deckhand(tmp_path, "runs", "list", server=sqlite_server)
    assert code != 0 and "--key" in err  # no key: says which option is missing
    code, out, _ = await deckhand(tmp_path, "machines", "delete", machine["id"], **cli)
    assert code == 0 and "deleted" in out
    code, out, _ = await deckhand(tmp_path, "machines", "list", "--json", **cli)
    listed = json.loads(out)
    assert all(m["id"] != machine["id"] or m["status"] in ("stopped", "terminated", "deleted")
               for m in listed.get("machines", listed.get("data", [])))


@pytest.mark.asyncio
async def test_run_on_a_browser_machine_prints_its_live_view(tmp_path: Path) -> None:
    code, out, err = await deckhand(
        tmp_path, "run", "--kind", "browser",
        'Run `echo kind-$((40+2))` and verify the output contains "kind-42"', timeout=180)
    assert code == 0, out + err
    assert "(browser) ready" in out
    live = next(line for line in out.splitlines() if line.startswith("live view: "))
    assert live.startswith("live view: http://127.0.0.1:") and "/live?ticket=" in live
    assert "result: succeeded" in out


@pytest.mark.asyncio
async def test_schedules_from_the_shell(sqlite_server: LiveServer, tmp_path: Path) -> None:
    key = await sqlite_server.key()
    cli = {"server": sqlite_server, "key": key}
    async with sqlite_server.client(key) as c:
        r = await c.post("/v1/machines", json={"display_name": "sched"})
        mid = r.json()["machine"]["id"]
    code, out, err = await deckhand(tmp_path, "schedules", "create", "nightly", "--machine", mid,
                                    "--task", "Run `echo nightly`", "--frequency", "daily",
                                    "--time", "03:00", "--timezone", "America/New_York", **cli)
    assert code == 0, err
    sid = out.strip().splitlines()[-1]
    code, out, _ = await deckhand(tmp_path, "schedules", "list", **cli)
    assert code == 0 and sid in out and "0 3 * * *" in out
    code, out, _ = await deckhand(tmp_path, "schedules", "pause", sid, **cli)
    assert code == 0 and "paused" in out
    code, out, _ = await deckhand(tmp_path, "schedules", "resume", sid, **cli)
    assert code == 0 and "enabled" in out
    code, out, _ = await deckhand(tmp_path, "schedules", "run", sid, "--json", **cli)
    assert code == 0 and json.loads(out)["status"] == "queued"
    code, out, _ = await deckhand(tmp_path, "schedules", "runs", sid, **cli)
    assert code == 0 and "manual" in out
    code, _, err = await deckhand(tmp_path, "schedules", "create", "bad", "--machine", mid,
                                  "--task", "t", "--cron", "61 * * * *", **cli)
    assert code == 2 and "VALIDATION_ERROR" in err and "cron" in err
    code, out, _ = await deckhand(tmp_path, "schedules", "delete", sid, **cli)
    assert code == 0 and "deleted" in out
