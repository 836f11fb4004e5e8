"""How records look on the wire (shared by the API, webhooks and the MCP server)."""

from __future__ import annotations

from typing import Any

from deckhand.core.clock import iso
from deckhand.store.artifacts import download_index
from deckhand.store.records import (
    Run,
    RunArtifact,
    RunStep,
    Schedule,
    Trigger,
    Workflow,
    WorkflowRun,
)
from deckhand.store.schedules import Firing


def run_view(run: Run, *, webhook_secret: str | None = None) -> dict[str, Any]:
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
        "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
                  "cache_creation_input_tokens": run.cache_creation_input_tokens,
                  "cache_read_input_tokens": run.cache_read_input_tokens},
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
        "workflow_run_id": run.workflow_run_id,
    }


def workflow_view(wf: Workflow, *, request_id: str | None = None) -> dict[str, Any]:
    """A workflow as the contract's ``WorkflowResponse``."""
    return {
        "id": wf.id,
        "object": "workflow",
        "name": wf.name,
        "slug": wf.slug,
        "version": wf.version,
        "dsl_version": (wf.definition or {}).get("version", "2026-06-01"),
        "definition": wf.definition,
        "inputs_schema": wf.inputs_schema,
        "description": wf.description,
        "status": wf.status,
        "metadata": wf.metadata,
        "created_at": iso(wf.created_at),
        "updated_at": iso(wf.updated_at),
        "request_id": request_id,
    }


def workflow_run_view(run: WorkflowRun, *, webhook_secret: str | None = None,
                      request_id: str | None = None) -> dict[str, Any]:
    """A workflow run as the contract's ``WorkflowRunResponse`` (plus additive fields)."""
    return {
        "id": run.id,
        "object": "workflow.run",
        "status": run.status,
        "workflow_id": run.workflow_id,
        "workflow_version": run.workflow_version,
        "machine_id": run.machine_id,
        "inputs": run.inputs,
        "output": run.output,
        "error": run.error,
        "awaiting_human_reason": run.awaiting_human_reason,
        "awaiting_step_id": run.awaiting_step_id,
        "iterations_used": run.iterations_used,
        "spent_cents": run.spent_cents,
        "budget_cents": run.budget_cents,
        "max_iterations": run.max_iterations,
        "deadline_seconds": run.deadline_seconds,
        "model": run.model,
        "llm": run.llm,
        "webhook_url": run.webhook_url,
        "webhook_secret": webhook_secret,
        "metadata": run.metadata,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "awaiting_human_since": iso(run.awaiting_human_since),
        "finished_at": iso(run.finished_at),
        "request_id": request_id if request_id is not None else run.request_id,
    }


def screenshot_url(run_id: str, number: int, *, after: bool = False) -> str:
    path = f"/v1/runs/{run_id}/steps/{number}/screenshot"
    return path + "?after=true" if after else path


def download_url(run_id: str, number: int, index: int) -> str:
    return f"/v1/runs/{run_id}/steps/{number}/downloads/{index}"


def _download_index(a: RunArtifact) -> int:
    return download_index(a.kind) or 0  # "download-<i>"


def download_view(a: RunArtifact) -> dict[str, Any]:
    """A file the browser downloaded during a step, as the API lists it."""
    index = _download_index(a)
    return {"step": a.step, "index": index, "name": a.name, "size": a.size,
            "content_type": a.content_type, "source_url": a.source_url,
            "created_at": iso(a.created_at), "url": download_url(a.run_id, a.step, index)}


def step_view(step: RunStep, screens: dict[str, RunArtifact]) -> dict[str, Any]:
    """A recorded step as ``GET /v1/runs/{id}/steps`` lists it; ``screens``
    are its artifacts by kind ("screen", "after", "download-<i>"), the
    screen URLs null without one."""
    d = step.decision
    usage = dict(d.get("usage") or {})
    usage["input_tokens"] = step.input_tokens
    usage["output_tokens"] = step.output_tokens
    usage["cache_creation_input_tokens"] = step.cache_creation_input_tokens
    usage["cache_read_input_tokens"] = step.cache_read_input_tokens
    return {
        "number": step.number,
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
        "text": d.get("text"),
        "reasoning": d.get("reasoning"),
        "actions": list(d.get("actions") or []),
        "results": list(step.results),
        "tokens": usage,
        "credits": step.credits,
        "screenshot_url": (screenshot_url(step.run_id, step.number)
                           if "screen" in screens else None),
        "screenshot_after_url": (screenshot_url(step.run_id, step.number, after=True)
                                 if "after" in screens else None),
        "downloads": [download_view(a) for a in sorted(
            (a for a in screens.values() if a.name is not None), key=_download_index)],
    }


def schedule_view(s: Schedule, *, request_id: str | None) -> dict[str, Any]:
    """A schedule as the contract's ``ScheduleResponse`` (plus additive fields)."""
    return {
        "id": s.id, "object": "schedule", "name": s.name, "machine_id": s.machine_id,
        "task_prompt": s.task_prompt, "enabled": s.enabled, "frequency": s.frequency,
        "cron": s.cron, "timezone": s.timezone, "time": s.time,
        "day_of_week": s.day_of_week, "day_of_month": s.day_of_month,
        "run_at": iso(s.run_at), "next_run_at": iso(s.next_run_at),
        "last_run_at": iso(s.last_run_at), "run_count": s.run_count,
        "consecutive_failures": s.consecutive_failures,
        "max_consecutive_failures": s.max_consecutive_failures,
        "paused_reason": s.paused_reason, "is_test": s.mode == "test",
        "created_at": iso(s.created_at), "metadata": s.metadata or {}, "llm": s.llm,
        "request_id": request_id,
    }


def firing_view(f: Firing) -> dict[str, Any]:
    """A firing as the contract's ``ScheduleRunRecord`` (``agent_run_id``: its run)."""
    return {
        "id": f.record.id, "object": "schedule.run", "schedule_id": f.record.schedule_id,
        "status": f.status, "trigger": f.record.trigger, "agent_run_id": f.record.run_id,
        "duration_seconds": f.duration_seconds, "credits_charged": f.credits_charged,
        "error": f.error, "executed_at": iso(f.record.executed_at),
    }


def trigger_view(t: Trigger, *, webhook_url: str | None,
                 webhook_secret: str | None = None) -> dict[str, Any]:
    """A trigger as the contract's ``TriggerListItem`` (with the one-time
    ``webhook_secret``: its ``TriggerResponse`` at creation)."""
    out: dict[str, Any] = {
        "id": t.id, "object": "trigger", "schedule_id": t.schedule_id, "kind": t.kind,
        "enabled": t.enabled, "created_at": iso(t.created_at), "webhook_url": webhook_url,
        "email_address": None, "source_schedule_id": t.source_schedule_id, "event": t.event,
        "pass_output": t.pass_output, "rate_limit_per_minute": t.rate_limit_per_minute,
    }
    if webhook_secret is not None:
        out["webhook_secret"] = webhook_secret
    return out
