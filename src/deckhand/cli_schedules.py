"""``deckhand schedules …``: schedules on a running server from the shell —
create, list, show, pause, resume, run (now), runs (the history), delete —
through the public API, like ``deckhand runs …`` (cli_remote.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from deckhand.cli_remote import (
    DEFAULT_SERVER,
    AsJson,
    Key,
    Server,
    _console,
    _fields,
    _print_json,
    _short,
    _table,
    call_api,
)

schedules_app = typer.Typer(no_args_is_help=True, help="Schedules on a server: create, list, "
                                                      "show, pause, resume, run, runs, delete.")
SCHEDULE_FIELDS = ["id", "name", "enabled", "frequency", "cron", "timezone", "run_at",
                   "next_run_at", "last_run_at", "run_count", "consecutive_failures",
                   "paused_reason", "machine_id", "task_prompt", "metadata", "llm"]


@schedules_app.command("create")
def schedules_create(
    name: Annotated[str, typer.Argument(help="A name for the schedule.")],
    machine: Annotated[str, typer.Option("--machine", help="The machine its runs use.")],
    task: Annotated[str, typer.Option("--task", help="What each run should do.")],
    server: Server = DEFAULT_SERVER, key: Key = None, as_json: AsJson = False,
    frequency: Annotated[str | None, typer.Option(
        help="every_15_minutes … monthly, or custom (with --cron).")] = None,
    cron: Annotated[str | None, typer.Option(help="5 or 6 fields (6: seconds first).")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "UTC",
    time: Annotated[str | None, typer.Option(help="HH:MM for daily/weekly/monthly.")] = None,
    day_of_week: Annotated[int | None, typer.Option(min=0, max=6, help="0 = Sunday.")] = None,
    day_of_month: Annotated[int | None, typer.Option(min=1, max=28)] = None,
    run_at: Annotated[str | None, typer.Option(help="One-shot: an ISO 8601 time.")] = None,
) -> None:
    """Create a schedule; prints its id and next due time."""
    if cron and not frequency:
        frequency = "custom"
    body: dict[str, Any] = {"name": name, "machine_id": machine, "task_prompt": task,
                            "timezone": timezone}
    for field, value in (("frequency", frequency), ("cron", cron), ("time", time),
                         ("day_of_week", day_of_week), ("day_of_month", day_of_month),
                         ("run_at", run_at)):
        if value is not None:
            body[field] = value
    s = call_api(server, key, lambda api: api.call("POST", "/v1/schedules", json=body))
    if as_json:
        return _print_json(s)
    typer.echo(f"schedule {s['id']} ({s['name']}): next run {s['next_run_at']}")
    typer.echo(s["id"])


@schedules_app.command("list")
def schedules_list(server: Server = DEFAULT_SERVER, key: Key = None, as_json: AsJson = False,
                   limit: Annotated[int, typer.Option(min=1, max=200)] = 50) -> None:
    """Schedules of the key's account, newest first."""
    page = call_api(server, key,
                    lambda api: api.call("GET", "/v1/schedules", params={"limit": limit}))
    if as_json:
        return _print_json(page)
    table = _table("id", "enabled", "when", "next run", "runs", "name")
    for s in page["data"]:
        when = s["cron"] or f"once {s.get('run_at') or ''}"
        table.add_row(s["id"], "yes" if s["enabled"] else "paused",
                      f"{when} {s['timezone']}", (s.get("next_run_at") or "-")[:19],
                      str(s.get("run_count", 0)), _short(s["name"]))
    _console().print(table)
    if not page["data"]:
        typer.echo("no schedules")


@schedules_app.command("show")
def schedules_show(schedule_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                   as_json: AsJson = False) -> None:
    """One schedule: timing, counters, pause reason."""
    s = call_api(server, key, lambda api: api.call("GET", f"/v1/schedules/{schedule_id}"))
    if as_json:
        return _print_json(s)
    _fields(f"schedule {schedule_id}", s, SCHEDULE_FIELDS)


def _changed(schedule_id: str, action: str, server: str, key: str | None,
             as_json: bool) -> None:
    s = call_api(server, key,
                 lambda api: api.call("POST", f"/v1/schedules/{schedule_id}/{action}"))
    if as_json:
        return _print_json(s)
    state = "enabled" if s["enabled"] else "paused"
    typer.echo(f"schedule {s['id']}: {state}, next run {s.get('next_run_at') or '-'}")


@schedules_app.command("pause")
def schedules_pause(schedule_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                    as_json: AsJson = False) -> None:
    """Pause a schedule (nothing fires until it is resumed)."""
    _changed(schedule_id, "pause", server, key, as_json)


@schedules_app.command("resume")
def schedules_resume(schedule_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                     as_json: AsJson = False) -> None:
    """Resume a paused schedule (its failure streak starts again at 0)."""
    _changed(schedule_id, "resume", server, key, as_json)


@schedules_app.command("run")
def schedules_run(schedule_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                  as_json: AsJson = False,
                  task: Annotated[str | None, typer.Option(
                      help="Run this task instead of the schedule's.")] = None) -> None:
    """Fire a schedule now; prints the firing and its run."""
    body = {"task_prompt_override": task} if task else {}
    got = call_api(server, key, lambda api: api.call(
        "POST", f"/v1/schedules/{schedule_id}/run", json=body))
    if as_json:
        return _print_json(got)
    typer.echo(f"schedule {got['schedule_id']}: {got['status']} (firing {got['run_id']}, "
               f"run {got.get('agent_run_id') or '-'})")


@schedules_app.command("runs")
def schedules_runs(schedule_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                   as_json: AsJson = False,
                   limit: Annotated[int, typer.Option(min=1, max=200)] = 20) -> None:
    """A schedule's firings, newest first."""
    page = call_api(server, key, lambda api: api.call(
        "GET", f"/v1/schedules/{schedule_id}/runs", params={"limit": limit}))
    if as_json:
        return _print_json(page)
    table = _table("id", "status", "trigger", "executed", "error")
    for f in page["data"]:
        table.add_row(f["id"], f["status"], f["trigger"], f["executed_at"][:19],
                      _short(f.get("error")))
    _console().print(table)
    if not page["data"]:
        typer.echo("no runs")


@schedules_app.command("delete")
def schedules_delete(schedule_id: str, server: Server = DEFAULT_SERVER, key: Key = None,
                     as_json: AsJson = False) -> None:
    """Delete a schedule, its history and its triggers."""
    gone = call_api(server, key, lambda api: api.call("DELETE", f"/v1/schedules/{schedule_id}"))
    if as_json:
        return _print_json(gone)
    typer.echo(f"schedule {schedule_id}: deleted")
