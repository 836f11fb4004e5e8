"""``deckhand run``: start a run and show it live, against a server or an
embedded one started in this process."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

from deckhand.cli_remote import kind_fields, live_view_url
from deckhand.client import DeckhandClient
from deckhand.config import Settings

OUTPUT_LINES = 6


@contextlib.asynccontextmanager
async def embedded_server(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The whole server (API + workers) on a free loopback port, and a fresh
    key for it (revoked afterwards). Yields (base URL, key)."""
    import uvicorn

    from deckhand.api.app import create_app
    from deckhand.scopes import OPERATOR_SCOPES
    from deckhand.services import Services
    from deckhand.store import accounts as accounts_store
    from deckhand.store import keys as keys_store

    services = await Services.build(settings)
    await services.start()
    async with services.db.write() as conn:
        acct = await accounts_store.find_by_name(conn, "default") \
            or await accounts_store.create(conn, "default")
        key, raw = await keys_store.create(conn, secret=services.secret, account_id=acct.id,
                                           name="deckhand-run", test=False,
                                           scopes=OPERATOR_SCOPES)
    server = uvicorn.Server(uvicorn.Config(create_app(services=services), host="127.0.0.1",
                                           port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", raw
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        async with services.db.write() as conn:
            await keys_store.revoke(conn, acct.id, "live", key.id)
        await services.close()


async def run_task(
    base_url: str, key: str, task: str, *, machine_id: str | None, max_steps: int,
    deadline: int | None, model: str | None = None, kind: str = "terminal",
    out: TextIO = sys.stdout,
) -> dict[str, Any]:
    async with DeckhandClient(base_url, key) as api:
        created_machine = None
        if machine_id is None:
            machine = await api.create_machine("deckhand-run", **kind_fields(kind))
            machine_id = created_machine = machine["id"]
            say(out, f"machine {machine_id} ({machine['kind']}) ready")
        else:
            machine = await api.call("GET", f"/v1/machines/{machine_id}")
            machine = machine.get("machine", machine)
        try:
            live = await live_view_url(api, machine)
            if live:
                say(out, f"live view: {live}")
            fields: dict[str, Any] = {"machine_id": machine_id, "task": task,
                                      "max_steps": max_steps}
            if deadline:
                fields["deadline_seconds"] = deadline
            if model:
                fields["model"] = model
            run = await api.create_run(**fields)
            say(out, f"run {run['id']} {run['status']}")
            try:
                async for event in api.events(run["id"]):
                    show(out, event, max_steps)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(api.cancel_run(run["id"]))
                raise
            final = await api.get_run(run["id"])
        finally:
            if created_machine is not None:
                with contextlib.suppress(Exception):
                    await api.delete_machine(created_machine)
    summarize(out, final)
    return final


def say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def show(out: TextIO, event: dict[str, Any], max_steps: int) -> bool:
    """Print a line (or a few) for ``event``; False for an event it has no words for."""
    t, d = event["type"], event["data"]
    if t == "status":
        extra = f" ({d['brain']} brain)" if "brain" in d else ""
        say(out, f"status: {d['status']}{extra}")
    elif t == "step" and d.get("status") == "started":
        say(out, f"step {d['number']}/{max_steps}")
    elif t == "text":
        say(out, f"  {d['text']}")
    elif t == "tool_call":
        a = d["action"]
        what = a.get("command") or a.get("path") or a.get("seconds") or ""
        say(out, f"  -> {a['kind']}: {what}")
    elif t == "tool_result":
        status = f"exit {d['exit_code']}" if d.get("exit_code") is not None else (
            "ok" if d["ok"] else "failed")
        say(out, f"  <- {status} in {d['duration_ms']} ms" +
            (f": {d['error']}" if d.get("error") else ""))
        lines = [ln for ln in (d.get("output") or "").splitlines() if ln.strip()]
        for line in lines[-OUTPUT_LINES:]:
            say(out, f"     | {line}")
    elif t == "awaiting_human":
        say(out, f"waiting for a human: {d['reason']}")
    elif t == "resumed":
        say(out, f"resumed{': ' + d['note'] if d.get('note') else ''}")
    elif t == "error":
        say(out, f"error {d.get('code')}: {d.get('message')}")
    else:
        return False
    return True


def summarize(out: TextIO, run: dict[str, Any]) -> None:
    say(out, "")
    say(out, f"result: {run['status']} after {run['steps_completed']} steps, "
             f"{run['credits_charged']} credits")
    if run.get("result"):
        say(out, f"answer: {run['result'].get('answer')}")
    if run.get("error"):
        say(out, f"error: {run['error'].get('code')}: {run['error'].get('message')}")
