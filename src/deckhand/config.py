"""Settings, read from ``DECKHAND_*`` environment variables (pydantic-settings).

Nothing reads the environment anywhere else: build one :class:`Settings` and
pass it down.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# the screens a run keeps in memory (core.steps.OBSERVATIONS_KEPT; a test holds them equal)
SCREENS_IN_MEMORY = 12


def _env(name: str, provider_variable: str) -> AliasChoices:
    """A setting read from DECKHAND_<NAME>, or else the provider's usual variable."""
    return AliasChoices(f"DECKHAND_{name.upper()}", name, provider_variable)


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
    workflow_slots: int = Field(default=32, ge=1, description="workflow runs driven at once "
                                "per worker process (they mostly wait)")
    workflow_max_concurrent_tasks: int = Field(default=8, ge=1, description="task (child) "
                                               "runs of workflows going at once, per account")

    # Schedules (docs/schedules.md)
    scheduler: bool = Field(default=True, description="fire due schedules in this process "
                            "(`serve` and `worker`); any number of processes may")
    scheduler_max_sleep_seconds: float = Field(default=10.0, gt=0, le=60, description="the "
                                               "longest idle wait between due-time checks")
    scheduler_batch: int = Field(default=100, ge=1, le=1000, description="firings per "
                                 "transaction")
    schedule_catch_up: Literal["one", "none"] = Field(
        default="one", description="a firing missed by more than the grace: fire it once "
        "(one) or record it skipped (none); either way the next is the first due after now")
    schedule_misfire_grace_seconds: float = Field(default=60.0, ge=0)
    schedule_limit_per_account: int = Field(default=1000, ge=1)

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

    # Machines (docs/machines.md)
    machine_limit_per_account: int = Field(default=10, ge=1, description="machines per "
                                           "account and mode that are not stopped or gone")
    # One warm terminal: a first machine in milliseconds instead of a cold start.
    machine_pool_terminal: int = Field(default=1, ge=0, description="warm spare agents")
    machine_pool_browser: int = Field(default=0, ge=0)
    machine_pool_desktop: int = Field(default=0, ge=0)
    machine_sweep_seconds: float = Field(default=30.0, gt=0, description="TTL, idle and "
                                         "metering sweep interval")
    machine_idle_minutes: int = Field(default=0, ge=0, description="stop a machine nobody "
                                      "used for this long (0: never)")
    machine_provision_wait_seconds: float = Field(default=10.0, ge=0, description="how long "
                                                  "POST /v1/machines waits for `running`")
    machine_pids_max: int = Field(default=512, ge=16, description="processes a machine may "
                                  "run at once (its cgroup's pids limit)")
    machine_host_allow: str = Field(default="", description="host ports machines may reach "
                                    "at their own address: comma list of IPv4:PORT")
    machine_snapshot_credits: int = Field(default=1, ge=0)
    public_url: str | None = None  # how clients reach this server (live-view links)
    # Adaptive settle after screen actions (docs/machines.md): the screen counts as
    # settled once still this long, and an action waits at most the cap for it.
    settle_quiet_ms: int = Field(default=60, ge=1, le=60_000)
    settle_cap_ms: int = Field(default=3000, ge=0, le=60_000)

    # Recordings (docs/recordings.md): every step's screens, kept in the artifact
    # store: files under <data_dir>/artifacts (unset), file:///path, or
    # s3://bucket/prefix?endpoint=http://host:9000&region=... (AWS_* credentials).
    artifacts_url: str | None = None
    artifacts_retention_days: int = Field(default=30, ge=0, description="days a step's "
                                          "screens are kept (0: forever)")
    artifacts_sweep_seconds: float = Field(default=600.0, gt=0, description="retention "
                                           "and orphan sweep interval")
    artifacts_orphan_grace_seconds: float = Field(default=3600.0, ge=0, description="bytes "
                                                  "no step points at are deleted once this old")
    record_screens: bool = True

    # Brains (docs/models.md). DECKHAND_BRAIN: managed (the first provider configured
    # below, else offline) | offline | anthropic | openai | openai_compat | scripted.
    brain: str = "managed"
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias=_env(
        "anthropic_api_key", "ANTHROPIC_API_KEY"))
    anthropic_base_url: str | None = Field(default=None, validation_alias=_env(
        "anthropic_base_url", "ANTHROPIC_BASE_URL"))
    anthropic_model: str = "claude-sonnet-4-6"
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_env(
        "openai_api_key", "OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=_env(
        "openai_base_url", "OPENAI_BASE_URL"))
    openai_model: str = "computer-use-preview"
    # An OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio): Chat Completions.
    openai_compat_base_url: str | None = None
    openai_compat_api_key: SecretStr | None = None
    openai_compat_model: str | None = None  # None: the server's first model
    # The image budget (docs/models.md): each provider is shown at least this many of
    # the last screens, dropped `screens_chunk` at a time so its prompt cache holds.
    anthropic_screens_kept: int = Field(default=3, ge=1, le=SCREENS_IN_MEMORY)
    openai_screens_kept: int = Field(default=3, ge=1, le=SCREENS_IN_MEMORY, description=(
        "when the response chain is rebuilt; a chain keeps what it was sent"))
    openai_compat_screens_kept: int = Field(default=3, ge=1, le=SCREENS_IN_MEMORY)
    screens_chunk: int = Field(default=8, ge=1, le=SCREENS_IN_MEMORY)
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="after")
    def _screens_fit_in_memory(self) -> Settings:
        for name in ("anthropic", "openai", "openai_compat"):
            kept = getattr(self, f"{name}_screens_kept")
            if kept + self.screens_chunk - 1 > SCREENS_IN_MEMORY:
                raise ValueError(f"DECKHAND_{name.upper()}_SCREENS_KEPT + "
                                 "DECKHAND_SCREENS_CHUNK - 1 must be at most "
                                 f"{SCREENS_IN_MEMORY} (the screens a run keeps)")
        return self

    @field_validator("machine_host_allow")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for item in filter(None, (p.strip() for p in value.split(","))):
            host, sep, port = item.rpartition(":")
            if not sep or not port.isdigit() or not host:
                raise ValueError(f"DECKHAND_MACHINE_HOST_ALLOW: {item!r} is not HOST:PORT")
        return value

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
