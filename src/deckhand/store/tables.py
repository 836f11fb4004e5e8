"""Every table, as SQLAlchemy Core. Migrations in ``migrations/versions`` create
them; this module is what the repositories query."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from deckhand.store.types import UTCDateTime

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    # NULL = unlimited wallet; otherwise credits left (1 credit = 1 cent).
    Column("credits", BigInteger, nullable=True),
    Column("tier", String(32), nullable=False, server_default="enterprise"),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("mode", String(8), nullable=False),  # live | test
    # HMAC-SHA256(server secret, key), hex. The key itself is never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)
Index("ix_api_keys_account", api_keys.c.account_id, api_keys.c.mode)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("operation", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # processing | completed
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("response_headers", JSON, nullable=True),
    Column("request_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

usage_counters = Table(
    "usage_counters",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("mode", String(8), primary_key=True),
    Column("period", String(7), primary_key=True),  # YYYY-MM
    Column("endpoint", String(128), primary_key=True),
    Column("requests", BigInteger, nullable=False, server_default="0"),
    Column("credits", BigInteger, nullable=False, server_default="0"),
    Column("cost_cents", BigInteger, nullable=False, server_default="0"),
)
