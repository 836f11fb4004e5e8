"""``deckhand runs …`` and ``deckhand machines …``: the API of a running
server from the shell (``--server``/``--key`` or ``DECKHAND_URL`` /
``DECKHAND_API_KEY``), as tables for people and ``--json`` for scripts.

Every command is one or two calls of the public API through
:class:`~deckhand.client.DeckhandClient`, so it behaves as the API does: its
scopes, its errors (printed as ``error: CODE: message``, exit 2) and its ids.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from deckhand.client import ApiError, DeckhandClient

T = TypeVar("T")

runs_app = typer.Typer(no_args_is_help=True, help="Runs on a server: list, show, events, "
                                                 "steps, recording, downloads, cancel, resume.")
machines_app = typer.Typer(no_args_is_help=True, help="Machines on a server: list, create, "
                                                     "delete, screenshot, register.")

Server = Annotated[str, typer.Option("--server", envvar="DECKHAND_URL", help="Server URL.")]
Key = Annotated[str | None, typer.Option("--key", envvar="DECKHAND_API_KEY", help="API key.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
DEFAULT_SERVER = "http://127.0.0.1:8080"
MachineKind = Literal["terminal", "browser", "desktop"]


def kind_fields(kind: str) -> dict[str, Any]:
    """The ProvisionRequest fields that ask for a machine of ``kind``."""
    if kind == "desktop":
        return {"desktop_enabled": True}
    if kind == "browser":
        return {"metadata": {"kind": "browser"}}
    return {}


async def live_view_url(api: DeckhandClient, machine: dict[str, Any]) -> str | None:
    """The live-view page of a machine with a screen (a ticketed URL), else None."""
    if machine.get("kind") not in ("browser", "desktop"):
        return None
    ticket = await api.call("POST", f"/v1/machines/{machine['id']}/live")
    return ticket.get("url")  # type: ignore[no-any-return]


def call_api(server: str, key: str | None, go: Callable[[DeckhandClient], Awaitable[T]]) -> T:
    """Run ``go`` with a client of ``server``; API and connection errors end
    the command with exit 2 and one line on stderr."""
    if not key:
        raise typer.BadParameter("--key (or DECKHAND_API_KEY) is required", param_hint="--key")

    async def main() -> T:
        async with DeckhandClient(server, key) as api:
            return await go(api)

    try:
        return asyncio.run(main())
    except ApiError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {server}: {exc}", err=True)
        raise typer.Exit(2) from exc


def _console() -> Console:
    # Piped (to grep, a file): no terminal width to fit, so never cut a line.
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)


PIPE_WIDTH = 240


def _table(*columns: str) -> Table:
    """A listing whose columns are never wrapped (ids stay whole, to copy);
    the last, free text, is cut with an ellipsis to fit."""
    table = Table()
    for name in columns[:-1]:
        table.add_column(name, no_wrap=True, min_width=36 if name in ("id", "machine") else None)
    table.add_column(columns[-1], no_wrap=True, overflow="ellipsis")
    return table


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _fields(title: str, data: dict[str, Any], names: list[str]) -> None:
    """A record as a two-column table of the fields it has."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name in names:
        value = data.get(name)
        if value is None or value == {}:
            continue
        table.add_row(name, json.dumps(value) if isinstance(value, dict | list) else str(value))
    _console().print(table)


def _short(text: str | None, limit: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- runs ----------------------------------------------------------------------------------

RUN_FIELDS = ["id", "status", "machine_id", "task", "model", "steps_completed", "max_steps",
              "credits_charged", "created_at", "started_at", "completed_at", "result", "error",
              "metadata", "workflow_run_id"]


@runs_app.command("list")
def runs_list(server: Server = DEFAULT_SERVER, key: Key = None, as_json: AsJson = False,
              status: Annotated[str | None, typer.Option(help="Only runs in this status.")]
              = None,
              limit: Annotated[int, typer.Option(min=1, max=200)] = 20) -> None:
    """Runs, newest first."""
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    page = call_api(server, key, lambda api: api.call("GET", "/v1/runs", params=params))
    if as_json:
        return _print_json(page)
    table = _table("id", "status", "steps", "machine", "created", "task")
    for run in page["data"]:
        table.add_row(run["id"], run["status"],
                      f"{run['steps_completed']}/{run.get('max_steps', '?')}",
                      run.get("machine_id") or "", (run.get("created_at") or "")[:19],
                      _short(run.get("task")))
    _console().print(table)
    if not page["data"]:
        typer.echo("no runs")


@runs_app.command("show")
def runs_show(run_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
              as_json: AsJson = False) -> None:
    """One run: status, steps, credits, result or error."""
    run = call_api(server, key, lambda api: api.get_run(run_id))
    if as_json:
        return _print_json(run)
    _fields(f"run {run_id}", run, RUN_FIELDS)


@runs_app.command("events")
def runs_events(run_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                as_json: AsJson = False,
                after: Annotated[int, typer.Option(min=0, help="Events after this seq.")] = 0,
                follow: Annotated[bool, typer.Option(
                    "--follow", "-f", help="Stream new events until the run ends.")] = False,
                ) -> None:
    """A run's events (``--follow`` streams them live, resuming where it left off)."""
    from deckhand.cli_run import show

    async def go(api: DeckhandClient) -> None:
        max_steps = (await api.get_run(run_id)).get("max_steps") or 0
        if follow:
            async for event in api.events(run_id, after=after):
                emit(event, max_steps)
            return
        page = await api.call("GET", f"/v1/runs/{run_id}/events", params={"after": after},
                              headers={"Accept": "application/json"})
        for event in page["data"]:
            emit(event, max_steps)

    def emit(event: dict[str, Any], max_steps: int) -> None:
        if as_json:
            typer.echo(json.dumps(event))
        else:
            sys.stdout.write(f"#{event['seq']} ")
            if not show(sys.stdout, event, max_steps):
                typer.echo(event["type"])

    call_api(server, key, go)


@runs_app.command("cancel")
def runs_cancel(run_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                as_json: AsJson = False) -> None:
    """Cancel a run (the action in flight is interrupted)."""
    _run_status(call_api(server, key, lambda api: api.cancel_run(run_id)), as_json)


@runs_app.command("resume")
def runs_resume(run_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                as_json: AsJson = False,
                note: Annotated[str | None, typer.Option(help="Recorded on the run.")] = None,
                ) -> None:
    """Resume a run that waits for a human."""
    body = {"note": note} if note else {}
    _run_status(call_api(server, key, lambda api: api.call(
        "POST", f"/v1/runs/{run_id}/resume", json=body)), as_json)


@runs_app.command("steps")
def runs_steps(run_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
               as_json: AsJson = False) -> None:
    """A run's recorded steps: what the brain said and did, and its screens."""
    steps = call_api(server, key, lambda api: api.all_run_steps(run_id))
    if as_json:
        return _print_json({"data": steps, "has_more": False})
    table = _table("step", "finished", "actions", "ok", "screen", "text")
    for st in steps:
        actions = ", ".join(str(a.get("kind")) for a in st["actions"]) or "-"
        ok = "yes" if all(r.get("ok") for r in st["results"]) else "no"
        table.add_row(str(st["number"]), (st.get("finished_at") or "")[:19], actions, ok,
                      "yes" if st.get("screenshot_url") else "-", _short(st.get("text")))
    _console().print(table)
    if not steps:
        typer.echo("no steps")


Out = Annotated[Path | None, typer.Option("--out", "-o", help="File to write.")]


@runs_app.command("recording")
def runs_recording(run_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                   out: Out = None,
                   trajectory: Annotated[bool, typer.Option(
                       "--trajectory", help="The zip of steps and screens instead.")] = False,
                   ) -> None:
    """Save a run's screens as an animated WebP (``--trajectory``: the zip)."""
    async def go(api: DeckhandClient) -> bytes:
        if trajectory:
            return await api.run_trajectory(run_id)
        return (await api.run_recording(run_id))[1]

    data = call_api(server, key, go)
    path = out or Path(f"run-{run_id}" + ("-trajectory.zip" if trajectory else ".webp"))
    path.write_bytes(data)
    typer.echo(f"{path} ({len(data)} bytes)")


@runs_app.command("downloads")
def runs_downloads(run_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                   as_json: AsJson = False,
                   save: Annotated[Path | None, typer.Option(
                       "--save", help="Directory to save the files into.")] = None,
                   ) -> None:
    """The files a run's browser downloaded; ``--save DIR`` writes them there."""
    async def go(api: DeckhandClient) -> list[dict[str, Any]]:
        files = await api.run_downloads(run_id)
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            for f in files:
                target = save / f"{f['step']:04d}-{f['index']}-{Path(str(f['name'])).name}"
                target.write_bytes(await api.run_download(f))
                f["saved_to"] = str(target)
        return files

    files = call_api(server, key, go)
    if as_json:
        return _print_json({"data": files, "has_more": False})
    table = _table("step", "name", "size", "type", "saved to" if save else "url")
    for f in files:
        table.add_row(str(f["step"]), str(f["name"]), str(f["size"]), str(f["content_type"]),
                      str(f.get("saved_to") or f["url"]))
    _console().print(table)
    if not files:
        typer.echo("no downloads")


def _run_status(run: dict[str, Any], as_json: bool) -> None:
    """A changed run: its JSON, or one line with its new status."""
    if as_json:
        return _print_json(run)
    typer.echo(f"run {run['id']}: {run['status']}")


# -- machines ------------------------------------------------------------------------------

MACHINE_FIELDS = ["id", "display_name", "kind", "status", "os_type", "created_at",
                  "expires_at", "metadata"]


@machines_app.command("list")
def machines_list(server: Server = DEFAULT_SERVER, key: Key = None, as_json: AsJson = False,
                  limit: Annotated[int, typer.Option(min=1, max=200)] = 50) -> None:
    """Machines of the key's account."""
    page = call_api(server, key,
                    lambda api: api.call("GET", "/v1/machines", params={"limit": limit}))
    if as_json:
        return _print_json(page)
    machines = page.get("machines", page.get("data", []))
    table = _table("id", "kind", "status", "created", "name")
    for m in machines:
        table.add_row(m["id"], m.get("kind") or "", m.get("status") or "",
                      (m.get("created_at") or "")[:19], m.get("display_name") or "")
    _console().print(table)
    if not machines:
        typer.echo("no machines")


@machines_app.command("create")
def machines_create(name: Annotated[str, typer.Argument(help="The machine's display name.")],
                    server: Server = DEFAULT_SERVER, key: Key = None, as_json: AsJson = False,
                    kind: Annotated[MachineKind, typer.Option(
                        help="terminal, browser or desktop.")] = "terminal",
                    ttl_minutes: Annotated[int | None, typer.Option(min=5, max=10080)] = None,
                    ) -> None:
    """Provision a machine; prints its id (and its live-view URL if it has a screen)."""
    fields = {**kind_fields(kind), **({"ttl_minutes": ttl_minutes} if ttl_minutes else {})}

    async def go(api: DeckhandClient) -> tuple[dict[str, Any], str | None]:
        machine = await api.create_machine(name, **fields)
        return machine, await live_view_url(api, machine)

    machine, live = call_api(server, key, go)
    if as_json:
        return _print_json({"machine": machine, "live_view_url": live})
    typer.echo(f"machine {machine['id']} ({machine['display_name']}, {machine['kind']}): "
               f"{machine['status']}")
    if live:
        typer.echo(f"live view: {live}")
    typer.echo(machine["id"])


@machines_app.command("delete")
def machines_delete(machine_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                    as_json: AsJson = False) -> None:
    """Delete a machine: stops its processes and removes its workspace."""
    gone = call_api(server, key, lambda api: api.call("DELETE", f"/v1/machines/{machine_id}"))
    if as_json:
        return _print_json(gone)
    typer.echo(f"machine {machine_id}: deleted")


@machines_app.command("screenshot")
def machines_screenshot(machine_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                        out: Annotated[Path | None, typer.Option(
                            "--out", "-o", help="Where to write it (default: "
                                                "MACHINE_ID.<format> here).")] = None,
                        ) -> None:
    """Save a screenshot of the machine's screen; prints the file's path."""
    shot = call_api(server, key,
                    lambda api: api.call("GET", f"/v1/machines/{machine_id}/screenshot"))
    data = shot.get("image_b64") or ""
    if data.startswith("data:"):
        data = data.split(",", 1)[1]
    path = out or Path(f"{machine_id}.{shot.get('format') or 'jpeg'}")
    path.write_bytes(base64.b64decode(data))
    typer.echo(str(path))


@machines_app.command("register")
def machines_register(
    agent_url: Annotated[str, typer.Argument(help="The agent's URL, http://HOST:PORT.")],
    name: Annotated[str, typer.Option("--name", help="The machine's display name.")],
    agent_token: Annotated[str | None, typer.Option(
        "--agent-token", envvar="DECKHAND_AGENT_TOKEN", help="The agent's bearer token.")]
    = None,
    server: Server = DEFAULT_SERVER, key: Key = None,
    ttl_minutes: Annotated[int | None, typer.Option(min=5, max=10080)] = None,
) -> None:
    """Register a machine agent started by hand on another host; prints the
    new machine's id. Runs then use it like any local machine."""
    if not agent_token:
        raise typer.BadParameter("--agent-token (DECKHAND_AGENT_TOKEN) is required")
    fields: dict[str, Any] = {"agent_url": agent_url, "agent_token": agent_token}
    if ttl_minutes:
        fields["ttl_minutes"] = ttl_minutes
    m = call_api(server, key, lambda api: api.create_machine(name, **fields))
    typer.echo(f"machine {m['id']} ({m['display_name']}, {m['kind']}): {m['status']}")
    typer.echo(m["id"])
