"""Alembic environment: migrations run on a connection handed over by
:meth:`deckhand.store.db.Database.migrate` (works on SQLite and PostgreSQL)."""

from alembic import context

from deckhand.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always run through Database.migrate
    raise RuntimeError("run migrations with `deckhand migrate`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
