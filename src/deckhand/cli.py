"""The ``deckhand`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Annotated

import typer

from deckhand.cli_remote import MachineKind, machines_app, runs_app
from deckhand.cli_schedules import schedules_app
from deckhand.config import Settings
from deckhand.eval.command import eval_command
from deckhand.scopes import ALL_SCOPES, OPERATOR_SCOPES

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Deckhand: self-hosted computer-use agents.")
accounts_app = typer.Typer(no_args_is_help=True, help="Accounts and their credit wallets.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
artifacts_app = typer.Typer(no_args_is_help=True, help="Recorded screens (docs/recordings.md).")
app.add_typer(accounts_app, name="accounts")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(keys_app, name="keys")
app.add_typer(runs_app, name="runs")
app.add_typer(machines_app, name="machines")
app.command("eval")(eval_command)
app.add_typer(schedules_app, name="schedules")

DEFAULT_ACCOUNT = "default"

# `deckhand run` and `deckhand mcp`: a running server, or one embedded in the command.
EmbeddedOrServer = Annotated[str | None, typer.Option(
    envvar="DECKHAND_URL", help="Server URL; an embedded server when omitted.")]
KeyForServer = Annotated[str | None, typer.Option(
    envvar="DECKHAND_API_KEY", help="API key for --server.")]


def _settings() -> Settings:
    return Settings()


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[bool, typer.Option(
        "--workers/--no-workers", help="Run agent workers in this process too.")] = True,
) -> None:
    """Start the API server (migrations are applied first)."""
    import uvicorn

    from deckhand.api.app import create_app

    settings = _settings()
    settings.host = host or settings.host
    settings.port = port if port is not None else settings.port
    if not workers:
        settings.workers = 0
    _logging(settings)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, access_log=False)


@app.command()
def worker(
    slots: Annotated[int | None, typer.Option(help="Runs driven at once.")] = None,
) -> None:
    """Run agent workers only (no API); scale out with PostgreSQL."""
    from deckhand.services import Services

    settings = _settings()
    _logging(settings)

    async def go() -> None:
        services = await Services.build(settings)
        await services.start(workers=False, api=False)
        w = services.new_worker(slots or settings.workers or 4)
        w.start()
        services.start_workflow_worker()
        services.start_scheduler()
        logging.getLogger("deckhand.worker").info("worker %s started", w.id)
        try:
            await asyncio.Event().wait()
        finally:
            await w.stop()
            await services.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    machine: Annotated[str | None, typer.Option(
        help="Machine id; a new machine is made (and removed) when omitted.")] = None,
    kind: Annotated[MachineKind, typer.Option(
        help="The kind of the new machine: terminal, browser or desktop.")] = "terminal",
    max_steps: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    deadline: Annotated[int | None, typer.Option(help="Deadline in seconds.")] = None,
    model: Annotated[str | None, typer.Option(help="Model (brain) to use.")] = None,
    server: EmbeddedOrServer = None,
    key: KeyForServer = None,
) -> None:
    """Run TASK on a machine and show it live. Exits 0 only when it succeeded."""
    from deckhand.cli_run import embedded_server, run_task
    from deckhand.client import ApiError

    settings = _settings()

    async def go() -> dict:  # type: ignore[type-arg]
        if server:
            if not key:
                raise typer.BadParameter("--key (or DECKHAND_API_KEY) is needed with --server")
            return await run_task(server, key, task, machine_id=machine, max_steps=max_steps,
                                  deadline=deadline, model=model, kind=kind)
        async with embedded_server(settings) as (url, raw):
            return await run_task(url, raw, task, machine_id=machine, max_steps=max_steps,
                                  deadline=deadline, model=model, kind=kind)

    try:
        final = asyncio.run(go())
    except ApiError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise typer.Exit(0 if final["status"] == "succeeded" else 1)


@app.command("mcp")
def mcp_stdio(
    server: EmbeddedOrServer = None,
    key: KeyForServer = None,
) -> None:
    """Serve MCP over stdio (for Claude Desktop, Claude Code, Cursor, VS Code…)."""
    from deckhand.cli_run import embedded_server
    from deckhand.mcp.server import build_server, static_client

    settings = _settings()
    logging.basicConfig(level="WARNING", stream=sys.stderr)

    async def go() -> None:
        if server:
            if not key:
                raise typer.BadParameter("DECKHAND_API_KEY is needed with DECKHAND_URL")
            await build_server(static_client(server, key)).run_stdio_async()
            return
        async with embedded_server(settings) as (url, raw):
            await build_server(static_client(url, raw)).run_stdio_async()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


@app.command("machine-agent")
def machine_agent(
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "127.0.0.1:0",
    machine_id: Annotated[str | None, typer.Option(
        help="The machine's id; omitted, the agent waits to be registered "
             "(deckhand machines register).")] = None,
    workspace: Annotated[str, typer.Option(help="The machine's workspace directory.")]
    = "./workspace",
    state_dir: Annotated[str | None, typer.Option(
        help="Where the browser profile and X cookie live (default: beside the workspace).")]
    = None,
    token: Annotated[str | None, typer.Option(
        help="The bearer token (visible in `ps`: prefer --token-file or "
             "$DECKHAND_AGENT_TOKEN).")] = None,
    token_file: Annotated[str | None, typer.Option(
        help="File holding the bearer token (else $DECKHAND_AGENT_TOKEN).")] = None,
    ready_file: Annotated[str | None, typer.Option(
        help="Write {pid, port, url} here once listening.")] = None,
    sandbox: Annotated[bool | None, typer.Option(
        "--sandbox/--no-sandbox", help="Run shells under bubblewrap.")] = None,
    network: Annotated[bool, typer.Option("--network/--no-network")] = True,
    desktop: Annotated[bool, typer.Option(
        "--desktop", help="Serve a desktop (Xvfb, openbox, xterm, headful browser).")] = False,
    browser: Annotated[bool, typer.Option(
        "--browser", help="Launch the browser before reporting ready.")] = False,
    settle_quiet_ms: Annotated[int | None, typer.Option(
        help="After a screen action the screen is settled once still this long "
             "(default: $DECKHAND_SETTLE_QUIET_MS or 60).")] = None,
    settle_cap_ms: Annotated[int | None, typer.Option(
        help="The longest an action waits for it (default: $DECKHAND_SETTLE_CAP_MS or "
             "3000).")] = None,
    isolate: Annotated[bool, typer.Option(
        "--isolate/--no-isolate", help="Run the machine in its box: cgroup limits, its own "
                                       "uid and network (docs/machines.md).")] = True,
    memory_mb: Annotated[int, typer.Option(min=1, help="Memory of the machine (MiB).")] = 2048,
    cpus: Annotated[float, typer.Option(min=0.01, help="CPU cores of the machine.")] = 1.0,
    pids_max: Annotated[int | None, typer.Option(
        min=1, help="Processes the machine may run (default: $DECKHAND_MACHINE_PIDS_MAX "
                    "or 512).")] = None,
) -> None:
    """Serve one machine over HTTP (bearer token)."""
    import os

    from deckhand.machine_agent import Limits, SettlePolicy, parse_allow, read_token, run_agent

    settings = _settings()
    os.makedirs(workspace, mode=0o700, exist_ok=True)
    run_agent(machine_id=machine_id, workspace=workspace,
              token=token or read_token(token_file), listen=listen, ready_file=ready_file,
              sandbox=sandbox, network=network, state_dir=state_dir, desktop=desktop,
              browser=browser, settle=SettlePolicy(
                  settle_quiet_ms if settle_quiet_ms is not None else settings.settle_quiet_ms,
                  settle_cap_ms if settle_cap_ms is not None else settings.settle_cap_ms),
              limits=Limits(memory_mb, cpus, pids_max or settings.machine_pids_max)
              if isolate else None, host_allow=parse_allow(settings.machine_host_allow))


@app.command()
def migrate() -> None:
    """Apply database migrations."""

    async def go() -> None:
        from deckhand.store.db import Database

        settings = _settings()
        settings.ensure_data_dir()
        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()
        finally:
            await db.dispose()

    asyncio.run(go())
    typer.echo("migrations applied")


@accounts_app.command("create")
def accounts_create(
    name: str,
    credits: Annotated[int | None, typer.Option(help="Finite wallet; unlimited if omitted.")]
    = None,
) -> None:
    """Create an account."""
    from deckhand.store import accounts as store

    async def go() -> None:
        async with _session() as svc:
            async with svc.db.write() as conn:
                acct = await store.create(conn, name, credits)
        wallet = "unlimited" if acct.credits is None else f"{acct.credits} credits"
        typer.echo(f"account {acct.id} ({acct.name}), wallet: {wallet}")

    asyncio.run(go())


@accounts_app.command("list")
def accounts_list() -> None:
    from deckhand.store import accounts as store

    async def go() -> None:
        async with _session() as svc:
            async with svc.db.read() as conn:
                for a in await store.list_all(conn):
                    wallet = "unlimited" if a.credits is None else str(a.credits)
                    typer.echo(f"{a.id}\t{a.name}\t{wallet}")

    asyncio.run(go())


@accounts_app.command("credit")
def accounts_credit(account: str, amount: int) -> None:
    """Add credits to a finite wallet."""
    from deckhand.store import accounts as store

    async def go() -> None:
        async with _session() as svc:
            async with svc.db.write() as conn:
                acct = await store.resolve(conn, account)
                acct = await store.add_credits(conn, acct.id, amount)
        typer.echo(f"{acct.name}: {acct.credits if acct.credits is not None else 'unlimited'}")

    asyncio.run(go())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A label for the key.")],
    account: Annotated[str, typer.Option(help="Account id or name (created if it is "
                                              "'default' and missing).")] = DEFAULT_ACCOUNT,
    test: Annotated[bool, typer.Option("--test", help="A test-mode key.")] = False,
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="Repeat for each scope; default: every scope but the opt-in ones.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key. The key is printed once, on the last line."""
    from deckhand.errors import NotFound
    from deckhand.store import accounts as accounts_store
    from deckhand.store import keys as keys_store

    scopes = tuple(scope) if scope else OPERATOR_SCOPES
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise typer.BadParameter(f"unknown scope(s): {', '.join(unknown)}", param_hint="--scope")

    async def go() -> None:
        async with _session() as svc:
            async with svc.db.write() as conn:
                try:
                    acct = await accounts_store.resolve(conn, account)
                except NotFound:
                    if account != DEFAULT_ACCOUNT:
                        raise
                    acct = await accounts_store.create(conn, DEFAULT_ACCOUNT)
                key, raw = await keys_store.create(
                    conn, secret=svc.secret, account_id=acct.id, name=name, test=test,
                    scopes=scopes,
                )
        if as_json:
            typer.echo(json.dumps({"key_id": key.id, "account_id": acct.id, "name": key.name,
                                   "mode": key.mode, "scopes": list(key.scopes), "key": raw}))
        else:
            typer.echo(f"key {key.id} ({key.mode}) for account {acct.name}: "
                       f"{' '.join(key.scopes)}")
            typer.echo(raw)

    asyncio.run(go())


@artifacts_app.command("sweep")
def artifacts_sweep(
    grace_seconds: Annotated[float | None, typer.Option(
        help="Delete unreferenced bytes older than this (default: "
             "DECKHAND_ARTIFACTS_ORPHAN_GRACE_SECONDS). 0 is safe only while no server "
             "or worker records steps on this data.")] = None,
) -> None:
    """Forget screens past their retention and delete bytes no step points at."""
    from deckhand.artifacts.sweep import ArtifactSweeper

    async def go() -> None:
        async with _session() as svc:
            sweeper = svc.artifact_sweeper
            if grace_seconds is not None:
                sweeper = ArtifactSweeper(
                    svc.db, svc.artifacts, retention_days=svc.settings.artifacts_retention_days,
                    grace_seconds=grace_seconds, every_seconds=sweeper.every)
            done = await sweeper.sweep()
        typer.echo(f"{done.expired_rows} screens past retention, {done.deleted_blobs} "
                   f"unreferenced blobs deleted ({done.deleted_bytes} bytes)")

    asyncio.run(go())


class _session:
    """Services for one CLI command (database migrated, closed afterwards)."""

    async def __aenter__(self):  # type: ignore[no-untyped-def]
        from deckhand.services import Services

        self.svc = await Services.build(_settings())
        return self.svc

    async def __aexit__(self, *exc: object) -> None:
        await self.svc.artifacts.close()
        await self.svc.db.dispose()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
