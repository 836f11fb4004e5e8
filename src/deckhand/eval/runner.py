"""Running eval tasks as ordinary runs: for each task a fresh machine of its
kind, its setup, ``POST /v1/runs`` with the chosen phrasing, the run awaited,
then its checks against the machine's state, and the machine deleted."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from deckhand.cli_remote import kind_fields
from deckhand.client import ApiError, DeckhandClient
from deckhand.eval.checks import Checked
from deckhand.eval.site import Site
from deckhand.eval.state import ApiMachineState, SetupError
from deckhand.eval.tasks import Task, fill

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")
POLL_S = 0.25
GRACE_S = 30  # beyond the run's own deadline before the eval gives up on it


@dataclass(frozen=True)
class EvalOptions:
    phrasing: str = "natural"  # natural | offline
    model: str | None = None
    provider: str | None = None  # anthropic | openai: bring your own key
    llm_key: str | None = None  # sent as X-LLM-Api-Key (else the stored key)
    concurrency: int = 2


@dataclass
class TaskResult:
    id: str
    kind: str
    category: str
    passed: bool = False
    status: str = "not_run"  # the run's status, or setup_failed / error
    steps: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    credits: int = 0
    wall_seconds: float = 0.0
    run_id: str | None = None
    brain: str | None = None
    checks: list[Checked] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "category": self.category,
                "passed": self.passed, "status": self.status, "steps": self.steps,
                "input_tokens": self.input_tokens, "cached_tokens": self.cached_tokens,
                "output_tokens": self.output_tokens, "credits": self.credits,
                "wall_seconds": round(self.wall_seconds, 2), "run_id": self.run_id,
                "brain": self.brain, "error": self.error,
                "checks": [{"passed": c.passed, "detail": c.detail} for c in self.checks]}


class Progress(Protocol):
    def started(self, task: Task) -> None: ...
    def stepped(self, task: Task, steps: int) -> None: ...
    def finished(self, task: Task, result: TaskResult) -> None: ...


class NoProgress:
    def started(self, task: Task) -> None:
        pass

    def stepped(self, task: Task, steps: int) -> None:
        pass

    def finished(self, task: Task, result: TaskResult) -> None:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_suite(base_url: str, key: str, tasks: Sequence[Task], site: Site,
                    options: EvalOptions, progress: Progress | None = None) -> list[TaskResult]:
    """Every task, ``options.concurrency`` at a time; results in task order."""
    progress = progress or NoProgress()
    gate = asyncio.Semaphore(max(1, options.concurrency))
    async with DeckhandClient(base_url, key, timeout=180.0) as api:
        async def one(task: Task) -> TaskResult:
            async with gate:
                progress.started(task)
                result = await run_task(api, task, site, options, progress)
                progress.finished(task, result)
                return result

        return list(await asyncio.gather(*(one(t) for t in tasks)))


async def run_task(api: DeckhandClient, task: Task, site: Site, options: EvalOptions,
                   progress: Progress | None = None) -> TaskResult:
    """One attempt of ``task``; never raises for the task's own failures."""
    progress = progress or NoProgress()
    result = TaskResult(id=task.id, kind=task.kind, category=task.category)
    started = time.monotonic()
    slot = site.new_slot()
    values = {"site": slot.base_url, "port": str(free_port())}
    machine_id: str | None = None
    try:
        machine = await api.create_machine(f"eval-{task.id}"[:64], **kind_fields(task.kind))
        machine_id = machine["id"]
        state = ApiMachineState(api, machine_id, slot)
        await _setup(state, task, values)
        final = await _drive(api, machine_id, task, values, options, result, progress)
        result.status = final["status"]
        result.brain = final.get("brain")
        _count(result, final)
        if final.get("error"):
            result.error = f"{final['error'].get('code')}: {final['error'].get('message')}"
        result.checks = [await check.filled(values).check(state) for check in task.checks]
        result.passed = all(c.passed for c in result.checks)
    except SetupError as exc:
        result.status, result.error = "setup_failed", str(exc)
    except ApiError as exc:
        result.status, result.error = "error", f"{exc.code}: {exc.message}"
    except httpx.HTTPError as exc:  # the server went away or did not answer in time
        result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
    finally:
        if machine_id is not None:
            with contextlib.suppress(Exception):
                await api.delete_machine(machine_id)
        result.wall_seconds = time.monotonic() - started
    return result


async def _setup(state: ApiMachineState, task: Task, values: dict[str, str]) -> None:
    for path, content in task.setup.files.items():
        await state.write_file(fill(path, values), fill(content, values))
    for command in task.setup.commands:
        code, output = await state.run(fill(command, values))
        if code != 0:
            raise SetupError(f"setup command `{command}` exited with {code}: {output[-300:]}")
    if task.setup.window:
        await state.raise_window(task.setup.window)


async def _drive(api: DeckhandClient, machine_id: str, task: Task, values: dict[str, str],
                 options: EvalOptions, result: TaskResult, progress: Progress) -> dict[str, Any]:
    body: dict[str, Any] = {"machine_id": machine_id,
                            "task": fill(task.phrasing(options.phrasing), values),
                            "max_steps": task.max_steps,
                            "deadline_seconds": task.timeout_seconds,
                            "on_awaiting_human": "fail",
                            "metadata": {"eval_task": task.id}}
    headers: dict[str, str] = {}
    if options.provider:
        body["llm"] = {"provider": options.provider, **(
            {"model": options.model} if options.model else {})}
        if options.llm_key:
            headers["X-LLM-Api-Key"] = options.llm_key
    elif options.model:
        body["model"] = options.model
    run = await api.call("POST", "/v1/runs", json=body, headers=headers)
    result.run_id = run["id"]
    deadline = time.monotonic() + task.timeout_seconds + GRACE_S
    steps = -1
    while True:
        current = await api.get_run(run["id"])
        if current["steps_completed"] != steps:
            steps = current["steps_completed"]
            progress.stepped(task, steps)
        if current["status"] in TERMINAL:
            return current
        if time.monotonic() > deadline:
            with contextlib.suppress(ApiError):
                await api.cancel_run(run["id"])
            return {**current, "status": "timed_out"}
        await asyncio.sleep(POLL_S)


def _count(result: TaskResult, run: dict[str, Any]) -> None:
    usage = run.get("usage") or {}
    result.steps = int(run.get("steps_completed") or 0)
    result.credits = int(run.get("credits_charged") or 0)
    result.input_tokens = int(usage.get("input_tokens") or 0)
    result.output_tokens = int(usage.get("output_tokens") or 0)
    # the cache counters (Anthropic's cache reads, OpenAI's cached tokens),
    # under whichever name the server reports them
    result.cached_tokens = int(next((usage[k] for k in (
        "cache_read_input_tokens", "cached_input_tokens", "cached_tokens") if usage.get(k)), 0))
