"""How records look on the wire (shared by the API, webhooks and the MCP server)."""

from __future__ import annotations

from typing import Any

from deckhand.store.types import iso


def run_view(run: Any, *, webhook_secret: str | None = None) -> dict[str, Any]:
    """A run as the contract's ``RunResponse`` (plus additive fields)."""
    return {
        "id": run.id,
        "object": "agent.run",
        "status": run.status,
        "machine_id": run.machine_id,
        "task": run.task,
        "cua_version": run.cua_version,
        "instructions": run.instructions,
        "model": run.model,
        "brain": run.brain,
        "max_steps": run.max_steps,
        "deadline_seconds": run.deadline_seconds,
        "on_awaiting_human": run.on_awaiting_human,
        "awaiting_human_timeout_seconds": run.awaiting_human_timeout_seconds,
        "steps_completed": run.steps_completed,
        "credits_charged": run.credits_charged,
        "cost_cents": run.cost_cents,
        "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens},
        "result": run.result,
        "error": run.error,
        "awaiting_human_reason": run.awaiting_human_reason,
        "metadata": run.metadata,
        "llm": run.llm,
        "webhook_url": run.webhook_url,
        "webhook_secret": webhook_secret,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "awaiting_human_since": iso(run.awaiting_human_since),
        "finished_at": iso(run.finished_at),
        "request_id": run.request_id,
    }
