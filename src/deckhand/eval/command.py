"""``deckhand eval``: load the tasks, start the loopback site (and an
embedded server unless ``--server``), run the tasks with live progress,
print the table and save it as JSON and text."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from deckhand.client import ApiError, DeckhandClient
from deckhand.config import Settings

if TYPE_CHECKING:  # the site, the runner and the report load when the command runs
    from deckhand.eval.report import Report
    from deckhand.eval.runner import TaskResult
    from deckhand.eval.site import Site
    from deckhand.eval.tasks import Task

PIPE_WIDTH = 140
Phrasing = Literal["auto", "natural", "offline"]
Provider = Literal["anthropic", "openai"]


class RichProgress:
    """One bar for the suite and a line per task in flight."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                            transient=False)
        self.suite = self.bar.add_task("eval", total=total)
        self.lines: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def started(self, task: Task) -> None:
        self.lines[task.id] = self.bar.add_task(f"  {task.id} ({task.kind}): starting",
                                                total=None)

    def stepped(self, task: Task, steps: int) -> None:
        line = self.lines.get(task.id)
        if line is not None:
            self.bar.update(line, description=f"  {task.id} ({task.kind}): step {steps}")

    def finished(self, task: Task, result: TaskResult) -> None:
        line = self.lines.pop(task.id, None)
        if line is not None:
            self.bar.remove_task(line)
        mark = "[green]passed[/]" if result.passed else "[red]FAILED[/]"
        self.console.print(f"{mark} {task.id}: {result.status}, {result.steps} steps, "
                           f"{result.wall_seconds:.1f} s")
        self.bar.advance(self.suite)


def eval_command(
    tasks: Annotated[list[str] | None, typer.Option(
        "--tasks", help="Task files: a directory, a glob (quote it) or a file; repeatable. "
                        "Default: the bundled suite.")] = None,
    model: Annotated[str | None, typer.Option(help="Model (brain) for the runs, e.g. "
                                                   "offline, anthropic:claude-sonnet-4-6.")]
    = None,
    provider: Annotated[Provider | None, typer.Option(
        help="Bring your own key: the runs' llm.provider (the key from ANTHROPIC_API_KEY / "
             "OPENAI_API_KEY, else the server's stored key).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=10, help="Tasks at once.")] = 2,
    server: Annotated[str | None, typer.Option(
        envvar="DECKHAND_URL", help="Server URL; an embedded server when omitted.")] = None,
    key: Annotated[str | None, typer.Option(envvar="DECKHAND_API_KEY",
                                            help="API key for --server.")] = None,
    phrasing: Annotated[Phrasing, typer.Option(
        help="natural (for models) or offline (the offline brain's instruction language); "
             "auto: offline when the brain is the offline one.")] = "auto",
    site_port: Annotated[int, typer.Option(
        min=0, max=65535,
        help="Loopback port of the tasks' site (0: any free one). With --server, the server "
             "must allow its machines this port: DECKHAND_MACHINE_HOST_ALLOW=127.0.0.1:PORT.")]
    = 0,
    out: Annotated[Path | None, typer.Option(
        help="Where to save the table (JSON, and .txt beside it). Default: "
             "DATA_DIR/eval/eval-<time>.json.")] = None,
) -> None:
    """Score a model on the bundled tasks (or your own): each task runs as an
    ordinary run, and its checks read the machine's state afterwards. Exits 0
    only when every task passed."""
    from deckhand.cli_run import embedded_server
    from deckhand.eval.report import Report
    from deckhand.eval.runner import EvalOptions, run_suite
    from deckhand.eval.site import serve_site
    from deckhand.eval.tasks import TaskFileError, load_tasks

    settings = Settings()
    # piped (to a file, to CI's log): no terminal width to fit, so never cut the table
    console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
    try:
        chosen = load_tasks(tasks)
    except TaskFileError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    llm_key = None
    if provider:
        secret = settings.anthropic_api_key if provider == "anthropic" \
            else settings.openai_api_key
        llm_key = secret.get_secret_value() if secret is not None else None

    async def go(url: str, raw: str, site: Site) -> Report:
        which = phrasing if phrasing != "auto" else await _auto_phrasing(url, raw, model,
                                                                         provider)
        options = EvalOptions(phrasing=which, model=model, provider=provider, llm_key=llm_key,
                              concurrency=concurrency)
        console.print(f"deckhand eval: {len(chosen)} tasks, {which} phrasing, "
                      f"{concurrency} at a time, on {server or 'an embedded server'}")
        started = time.monotonic()
        with RichProgress(console, len(chosen)) as progress:
            results = await run_suite(url, raw, chosen, site, options, progress)
        return Report(results, time.monotonic() - started, options, server or "embedded")

    async def main() -> Report:
        if server:
            if not key:
                raise typer.BadParameter("--key (or DECKHAND_API_KEY) is needed with --server")
            async with serve_site(site_port) as site:
                return await go(server, key, site)
        async with serve_site(site_port) as site:
            # the embedded server's machines may reach the site (and only it, on the host)
            allowed = ",".join(filter(None, (settings.machine_host_allow,
                                             site.base_url.removeprefix("http://"))))
            async with embedded_server(settings.model_copy(
                    update={"machine_host_allow": allowed})) as (url, raw):
                return await go(url, raw, site)

    try:
        report = asyncio.run(main())
    except ApiError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    console.print(report.table())
    for line in report.failures():
        console.print(line, markup=False, highlight=False)
    target = out or settings.data_dir / "eval" / \
        f"eval-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.json"
    json_path, text_path = report.save(target)
    console.print(f"saved {json_path} and {text_path}", markup=False, highlight=False)
    raise typer.Exit(0 if report.passed == len(report.results) else 1)


async def _auto_phrasing(url: str, key: str, model: str | None, provider: str | None) -> str:
    """offline when the runs will be driven by the offline brain."""
    if provider:
        return "natural"
    if model:
        return "offline" if model.split(":")[0] == "offline" else "natural"
    async with DeckhandClient(url, key) as api:
        listed = await api.call("GET", "/v1/models")
    default = next((m for m in listed.get("models", []) if m.get("default")), None)
    return "offline" if default is not None and default.get("brain") == "offline" else "natural"
