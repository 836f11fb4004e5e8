"""The ``deckhand`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Optional

import typer

from deckhand.config import Settings
from deckhand.scopes import ALL_SCOPES, OPERATOR_SCOPES

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Deckhand: self-hosted computer-use agents.")
accounts_app = typer.Typer(no_args_is_help=True, help="Accounts and their credit wallets.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")

DEFAULT_ACCOUNT = "default"


def _settings() -> Settings:
    return Settings()


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Start the API server (migrations are applied first)."""
    import uvicorn

    from deckhand.api.app import create_app

    settings = _settings()
    settings.host = host or settings.host
    settings.port = port if port is not None else settings.port
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, access_log=False)


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
    credits: Annotated[Optional[int], typer.Option(help="Finite wallet; unlimited if omitted.")]
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
    scope: Annotated[Optional[list[str]], typer.Option(
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


class _session:
    """Services for one CLI command (database migrated, closed afterwards)."""

    async def __aenter__(self):  # type: ignore[no-untyped-def]
        from deckhand.services import Services

        self.svc = await Services.build(_settings())
        return self.svc

    async def __aexit__(self, *exc: object) -> None:
        await self.svc.db.dispose()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
