"""Putting a new run in the queue: checks, the row, its first event, the
wake-up — inside the caller's write transaction, so a workflow can create a
child run atomically with its own progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand import crypto, ids
from deckhand.brains.registry import OFFLINE, brain_name_for
from deckhand.brains.resolve import Choice, LlmRequest
from deckhand.core.clock import utcnow
from deckhand.engine.lifecycle import Lifecycle
from deckhand.engine.llm_credentials import LlmCredentials
from deckhand.errors import ErrorCode, InsufficientCredits, InvalidState, NotFound
from deckhand.events.webhooks import new_webhook_secret
from deckhand.pricing import step_credits
from deckhand.store import ledger as ledger_store
from deckhand.store import llm_keys as llm_keys_store
from deckhand.store import machines as machines_store
from deckhand.store import runs as runs_store
from deckhand.store.machines import GONE
from deckhand.store.records import Run

WEBHOOK_PURPOSE = "webhook"
OFFLINE_NOTICE = (
    "This run uses the offline brain: a deterministic planner for a documented set of "
    "instructions (see docs/offline-brain.md). Configure a model provider for free-form tasks."
)


@dataclass(frozen=True)
class RunSpec:
    """What a new run is (the contract's RunRequest, checked)."""

    machine_id: str
    task: str
    cua_version: str = "v5"
    instructions: str | None = None
    system_prompt: str | None = None
    model: str | None = None
    max_steps: int = 50
    deadline_seconds: int | None = None
    on_awaiting_human: str = "pause"
    awaiting_human_timeout_seconds: int | None = None
    webhook_url: str | None = None  # already checked by the caller (DNS is async)
    metadata: dict[str, Any] | None = None
    llm: LlmRequest | None = None  # bring your own key (the key itself is never shown)
    workflow_run_id: str | None = None  # set when a workflow's task step starts the run


@dataclass(frozen=True)
class Submitted:
    run: Run
    webhook_secret: str | None  # shown once, to the creator
    balance: int | None  # wallet after the checks (None: unlimited)


class RunSubmitter:
    def __init__(self, lifecycle: Lifecycle, secret: bytes, max_steps_ceiling: int,
                 brains: LlmCredentials | None = None) -> None:
        self.lifecycle = lifecycle
        self.secret = secret
        self.max_steps_ceiling = max_steps_ceiling
        self.brains = brains  # None: only the offline and scripted brains

    async def submit(self, conn: AsyncConnection, *, account_id: str, mode: str, spec: RunSpec,
                     request_id: str | None = None) -> Submitted:
        machine = None
        if ids.MACHINE_ID_RE.match(spec.machine_id):
            machine = await machines_store.get_owned(conn, spec.machine_id, account_id, mode)
        if machine is None or machine.status in GONE:
            raise NotFound(f"Machine {spec.machine_id} not found.")
        if machine.status not in ("creating", "running"):
            raise InvalidState(f"Machine {spec.machine_id} is {machine.status}; start it first.",
                               code=ErrorCode.MACHINE_UNAVAILABLE)
        balance = await ledger_store.balance(conn, account_id)
        cost = step_credits(mode, spec.cua_version)
        if cost and balance is not None and balance < cost:
            raise InsufficientCredits(f"Need {cost}, have {balance}.")

        now = utcnow()
        run_id = ids.new_uuid()
        secret = new_webhook_secret() if spec.webhook_url else None
        if self.brains is not None:
            choice = await self.brains.choose(conn, account_id=account_id, mode=mode,
                                              model=spec.model, llm=spec.llm)
        else:
            choice = Choice(brain=brain_name_for(spec.model), model=None)
        brain = choice.brain
        run = await runs_store.insert(conn, {
            "id": run_id, "account_id": account_id, "mode": mode,
            "machine_id": spec.machine_id, "status": "queued", "task": spec.task,
            "cua_version": spec.cua_version, "instructions": spec.instructions,
            "system_prompt": spec.system_prompt, "model": spec.model, "brain": brain,
            "max_steps": min(spec.max_steps, self.max_steps_ceiling),
            "deadline_seconds": spec.deadline_seconds,
            "deadline_at": now + timedelta(seconds=spec.deadline_seconds)
            if spec.deadline_seconds else None,
            "on_awaiting_human": spec.on_awaiting_human,
            "awaiting_human_timeout_seconds": spec.awaiting_human_timeout_seconds,
            "webhook_url": spec.webhook_url,
            "webhook_secret_sealed": crypto.seal(self.secret, WEBHOOK_PURPOSE, secret)
            if secret else None,
            "metadata": spec.metadata, "llm": choice.llm, "request_id": request_id,
            "created_at": now, "workflow_run_id": spec.workflow_run_id,
        })
        if choice.sealed_key is not None:
            await llm_keys_store.snapshot(conn, run_id, choice.sealed_key)
        first: dict[str, Any] = {"status": "queued", "brain": brain}
        if choice.model:
            first["model"] = choice.model
        if choice.llm:
            first["llm"] = choice.llm
        if brain == OFFLINE:
            first["message"] = OFFLINE_NOTICE
        run = await self.lifecycle.record_events(conn, run, [("status", first)])
        await self.lifecycle.notifier.emit(conn, "runs", "*")
        return Submitted(run=run, webhook_secret=secret, balance=balance)
