"""Settings, read from ``DECKHAND_*`` environment variables (pydantic-settings).

Nothing reads the environment anywhere else: build one :class:`Settings` and
pass it down.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DECKHAND_", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str | None = None
    secret_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8080

    # Engine
    workers: int = Field(default=4, ge=0, description="in-process run workers for `serve`")
    lease_seconds: float = 15.0
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=1.0)
    max_steps_ceiling: int = 1000

    # HTTP
    max_body_bytes: int = 52 * 1024 * 1024
    idempotency_wait_seconds: float = 25.0
    idempotency_ttl_hours: int = 24

    # Webhooks: hosts allowed over plain http / on private addresses (comma list)
    webhook_allow_hosts: str = ""
    webhook_retry_base_seconds: float = 10.0
    webhook_max_attempts: int = 10
    webhook_timeout_seconds: float = 10.0

    log_level: str = "info"

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        # Machine agents run with their own working directory: paths must not be relative.
        return v.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'deckhand.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def secret(self) -> bytes:
        """The server secret: ``DECKHAND_SECRET_KEY``, or a random one generated
        on first start and kept in the data dir (mode 0600)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.ensure_data_dir() / "secret_key"
        try:
            return path.read_text().strip().encode()
        except FileNotFoundError:
            pass
        value = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, value.encode())
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return value.encode()
