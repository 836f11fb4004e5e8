"""Drives one run to its end: limits, cancellation, awaiting a human, billing.

Every step is recorded in one transaction (step row, events, counters, ledger
entry), so after a crash the runner rebuilds the brain's context from the
recorded steps and goes on with the next one (durability rule 2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.agent.context import remember
from deckhand.agent.loop import StepOutcome, run_step
from deckhand.artifacts.base import ArtifactStore
from deckhand.artifacts.downloads import Downloaded, keep_downloads, reported
from deckhand.artifacts.screens import keep_screens
from deckhand.brains.base import Brain
from deckhand.brains.registry import build_brain
from deckhand.core.actions import ActionResult
from deckhand.core.clock import utcnow
from deckhand.core.machine import Machine
from deckhand.core.steps import AgentContext, Decision, StepRecord
from deckhand.engine.lifecycle import LeaseLost, Lifecycle
from deckhand.engine.llm_credentials import LlmCredentials
from deckhand.errors import DeckhandError, ErrorCode, MachineError
from deckhand.pricing import step_credits
from deckhand.store import artifacts as artifacts_store
from deckhand.store import ledger as ledger_store
from deckhand.store import runs as runs_store
from deckhand.store import steps as steps_store
from deckhand.store.db import Database
from deckhand.store.records import Run, RunArtifact, RunStep
from deckhand.store.runs import TERMINAL

log = logging.getLogger("deckhand.runner")

OUTPUT_IN_EVENTS = 4000
MAX_ATTEMPTS = 25  # claims of one run (each crash or lost lease is one) before giving up


def step_cost(run: Run) -> int:
    return step_credits(run.mode, run.cua_version)


def _error(code: ErrorCode | str, message: str) -> dict[str, Any]:
    return {"code": code.value if isinstance(code, ErrorCode) else code, "message": message}


class _Finished(Exception):
    """The run reached a terminal state or released itself (awaiting a human)."""


class Runner:
    def __init__(
        self,
        db: Database,
        lifecycle: Lifecycle,
        connect_machine: Callable[[str], Any],
        worker_id: str,
        brains: LlmCredentials | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.db = db
        self.artifacts = artifacts  # None: steps are recorded without their screens
        self._stored: dict[str, frozenset[str]] = {}
        self.lifecycle = lifecycle
        self.connect_machine = connect_machine
        self.worker_id = worker_id
        self.brains = brains  # None: only the offline and scripted brains

    async def drive(self, run_id: str, cancel_requested: Callable[[], bool]) -> None:
        """Drive the run until it ends, awaits a human, or this task is
        cancelled (by a user's cancel when ``cancel_requested()``, else by a
        worker shutdown, which leaves the run for another worker)."""
        try:
            await self._drive(run_id)
        except _Finished:
            return
        except LeaseLost:
            log.warning("run %s: lease lost to another worker; stopping here", run_id)
        except asyncio.CancelledError:
            if cancel_requested():
                await self._end(run_id, "cancelled",
                                error=_error(ErrorCode.CANCELLED, "Cancelled by request."))
                return
            await self._release(run_id)
            raise
        finally:
            self._stored.pop(run_id, None)

    async def _drive(self, run_id: str) -> None:
        async with self.db.write() as conn:
            run = await runs_store.get(conn, run_id)
            if run is None or run.status in TERMINAL or run.claimed_by != self.worker_id:
                return
            if run.attempts > MAX_ATTEMPTS:
                await self.lifecycle.finish(conn, run, "failed", owner=self.worker_id,
                                            error=_error(ErrorCode.INTERNAL_ERROR,
                                                         f"Gave up after {MAX_ATTEMPTS} attempts "
                                                         "to drive the run."))
                return
            if run.cancel_requested:
                await self.lifecycle.finish(conn, run, "cancelled", owner=self.worker_id,
                                            error=_error(ErrorCode.CANCELLED, "Cancelled by request."))
                return
            if run.status != "running":
                run = await self.lifecycle.start(conn, run, self.worker_id)
            records = await steps_store.for_run(conn, run_id)
            wallet = await ledger_store.balance(conn, run.account_id)
        steps = [_step_record(r) for r in records]
        deadline = _loop_deadline(run.deadline_at)
        try:
            async with asyncio.timeout_at(deadline):
                machine = await self.connect_machine(run.machine_id)
                brain = await self._brain(run)
                try:
                    while True:
                        await self._check_limits(run, wallet, len(steps))
                        run, wallet, outcome = await self._step(run, brain, machine, steps)
                        remember(steps, StepRecord(
                            number=len(steps) + 1, decision=outcome.decision,
                            results=outcome.results, observation=outcome.observation))
                finally:
                    await brain.aclose()
        except TimeoutError:
            await self._end(run_id, "timed_out", error=_error(
                ErrorCode.DEADLINE_EXCEEDED,
                f"The run exceeded its deadline of {run.deadline_seconds} s."))
        except MachineError as exc:
            await self._end(run_id, "failed", error=_error(ErrorCode.MACHINE_ERROR, exc.message))
        except DeckhandError as exc:
            await self._end(run_id, "failed", error=_error(exc.code, exc.message))

    async def _brain(self, run: Run) -> Brain:
        if self.brains is None:
            return build_brain(run.brain, run.task)
        async with self.db.read() as conn:
            return await self.brains.for_run(conn, run)

    async def _check_limits(self, run: Run, wallet: int | None, done: int) -> None:
        """Before a step: ``run`` and ``wallet`` as the last transaction (the
        previous step's, or the start's) left them — no extra read."""
        run_id = run.id
        if run.claimed_by != self.worker_id:
            raise LeaseLost(run_id)
        if done >= run.max_steps:
            await self._end(run_id, "failed", error=_error(
                ErrorCode.MAX_STEPS_REACHED,
                f"The run used all {run.max_steps} steps without finishing."))
            raise _Finished
        cost = step_cost(run)
        if cost and wallet is not None and wallet < cost:
            await self._end(run_id, "failed", error=_error(
                ErrorCode.INSUFFICIENT_CREDITS,
                f"The wallet ran dry: a step costs {cost} credits, {wallet} left."))
            raise _Finished

    async def _step(self, run: Run, brain: Brain, machine: Machine,
                    steps: list[StepRecord]) -> tuple[Run, int | None, StepOutcome]:
        """Do and record one step: (the run row, the wallet, the outcome)
        after it; raises _Finished if the step ended the run or handed it to
        a human."""
        number = len(steps) + 1
        context = AgentContext(
            run_id=run.id, task=run.task, instructions=run.instructions,
            system_prompt=run.system_prompt, cua_version=run.cua_version,
            max_steps=run.max_steps, steps=tuple(steps),
        )

        async def on_decided(decision: Decision) -> None:
            async with self.db.write() as conn:
                await self.lifecycle.record_events(conn, run, _decided_events(number, decision),
                                                   owner=self.worker_id)

        outcome = await run_step(brain, machine, context, on_decided)
        files = await self._keep_downloads(run.id, number, machine, outcome)
        run, wallet = await self._record(run, number, outcome, files)
        return run, wallet, outcome

    async def _record(self, run: Run, number: int, outcome: StepOutcome,
                      files: list[RunArtifact]) -> tuple[Run, int | None]:
        """Record the step: (the run row, the wallet) after it; raises
        _Finished when it ended the run or handed it to a human."""
        d = outcome.decision
        screens = await self._keep_screens(run.id, number, outcome)
        async with self.db.write() as conn:
            await artifacts_store.insert(conn, screens + files)
            charged, balance = await ledger_store.debit_step(
                conn, account_id=run.account_id, mode=run.mode, run_id=run.id, step=number,
                credits=step_cost(run),
            )
            await steps_store.insert(
                conn, run_id=run.id, number=number, decision=d.model_dump(mode="json"),
                results=[r.model_dump(mode="json") for r in outcome.results],
                input_tokens=d.usage.input_tokens, output_tokens=d.usage.output_tokens,
                credits=charged, started_at=outcome.started_at, finished_at=outcome.finished_at,
                cache_creation_input_tokens=d.usage.cache_creation_input_tokens,
                cache_read_input_tokens=d.usage.cache_read_input_tokens,
            )
            events = _result_events(number, outcome) + _harness_events(number, outcome)
            events.append(("billing", {"step": number, "credits": charged,
                                       "credits_charged": run.credits_charged + charged,
                                       "balance": balance}))
            fresh = await self.lifecycle.record_events(
                conn, run, events, owner=self.worker_id,
                steps_completed=number,
                credits_charged=run.credits_charged + charged,
                cost_cents=run.cost_cents + charged,
                input_tokens=run.input_tokens + d.usage.input_tokens,
                output_tokens=run.output_tokens + d.usage.output_tokens,
                cache_creation_input_tokens=run.cache_creation_input_tokens
                + d.usage.cache_creation_input_tokens,
                cache_read_input_tokens=run.cache_read_input_tokens
                + d.usage.cache_read_input_tokens,
            )
            ended = d.ask_human is not None or d.outcome is not None
            if d.ask_human is not None:
                await self._ask_human(conn, fresh, d.ask_human)
            elif d.outcome is not None:
                await self._conclude(conn, fresh, d, outcome.results)
        if ended:  # raised only once the transaction has committed
            raise _Finished
        self._remember_stored(run.id, screens)
        return fresh, balance

    async def _keep_screens(self, run_id: str, number: int,
                            outcome: StepOutcome) -> list[RunArtifact]:
        """The step's screens' bytes, written before the step's transaction
        (which inserts the rows that point at them). A store that fails
        costs the step its screens, not the run."""
        if self.artifacts is None:
            return []
        try:
            return await keep_screens(
                self.artifacts, run_id, number,
                {artifacts_store.SCREEN: outcome.observation,
                 artifacts_store.AFTER: outcome.after},
                outcome.finished_at, stored=self._stored.pop(run_id, frozenset()))
        except DeckhandError as exc:
            log.warning("run %s step %d: screens not kept: %s", run_id, number, exc.message)
            return []

    async def _keep_downloads(self, run_id: str, number: int, machine: Machine,
                              outcome: StepOutcome) -> list[RunArtifact]:
        """The files the machine's browser downloaded during the step (its
        action results report them), fetched and written before the step's
        transaction. A file that cannot be fetched or kept is logged and
        left out; the step is recorded all the same."""
        if self.artifacts is None:
            return []
        files: list[Downloaded] = []
        for item in reported([r.model_dump(mode="json") for r in outcome.results]):
            name = str(item["name"])
            try:
                data = await machine.download(name)
            except MachineError as exc:
                log.warning("run %s step %d: download %r not fetched: %s", run_id, number,
                            name, exc.message)
                continue
            if data is not None:
                mime, url = item.get("mime"), item.get("url")
                files.append(Downloaded(name=name, data=data,
                                        mime=mime if isinstance(mime, str) else None,
                                        url=url if isinstance(url, str) else None))
        if not files:
            return []
        try:
            return await keep_downloads(self.artifacts, run_id, number, files,
                                        outcome.finished_at)
        except DeckhandError as exc:
            log.warning("run %s step %d: downloads not kept: %s", run_id, number, exc.message)
            return []

    def _remember_stored(self, run_id: str, screens: list[RunArtifact]) -> None:
        """The bytes the step's committed rows point at: the next step's
        screen is most often the same bytes, and need not be written again."""
        if screens:
            self._stored[run_id] = frozenset(s.sha256 for s in screens)

    async def _ask_human(self, conn: AsyncConnection, run: Run, reason: str) -> None:
        if run.on_awaiting_human == "fail":
            await self.lifecycle.finish(
                conn, run, "failed", owner=self.worker_id,
                error=_error(ErrorCode.HUMAN_REQUIRED, f"The agent needs a human: {reason}"),
                awaiting_human_reason=reason)
        elif run.on_awaiting_human == "cancel":
            await self.lifecycle.finish(
                conn, run, "cancelled", owner=self.worker_id,
                error=_error(ErrorCode.HUMAN_REQUIRED, f"The agent needs a human: {reason}"),
                awaiting_human_reason=reason)
        else:
            await self.lifecycle.await_human(conn, run, reason, self.worker_id)

    async def _conclude(self, conn: AsyncConnection, run: Run, d: Decision,
                        results: tuple[ActionResult, ...]) -> None:
        o = d.outcome
        assert o is not None
        if o.success:
            result = {"answer": o.answer or d.text or "Done.", "steps": run.steps_completed}
            if results and results[-1].output:
                result["last_output"] = results[-1].output[-OUTPUT_IN_EVENTS:]
            await self.lifecycle.finish(conn, run, "succeeded", owner=self.worker_id,
                                        result=result)
        else:
            await self.lifecycle.finish(
                conn, run, "failed", owner=self.worker_id,
                error=_error(o.error_code or ErrorCode.AGENT_FAILED, o.message or "The agent gave up."))

    async def _end(self, run_id: str, status: str, *, error: dict[str, Any] | None) -> None:
        async with self.db.write() as conn:
            run = await runs_store.get(conn, run_id)
            if run is None or run.status in TERMINAL:
                return
            await self.lifecycle.finish(conn, run, status, error=error)

    async def _release(self, run_id: str) -> None:
        """Give the run back (worker shutting down): another worker takes it."""
        async with self.db.write() as conn:
            await runs_store.QUEUE.release(conn, run_id, self.worker_id)
            await self.lifecycle.notifier.emit(conn, "runs", "*")


def _loop_deadline(deadline_at: datetime | None) -> float | None:
    if deadline_at is None:
        return None
    remaining = (deadline_at - utcnow()).total_seconds()
    return asyncio.get_running_loop().time() + remaining


def _step_record(row: RunStep) -> StepRecord:
    return StepRecord(
        number=row.number,
        decision=Decision.model_validate(row.decision),
        results=tuple(ActionResult.model_validate(r) for r in row.results),
        human_note=row.human_note,
    )


def _decided_events(number: int, d: Decision) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [("step", {"number": number, "status": "started"})]
    if d.reasoning:
        events.append(("reasoning", {"step": number, "text": d.reasoning}))
    if d.text:
        events.append(("text", {"step": number, "text": d.text}))
    for i, action in enumerate(d.actions):
        events.append(("tool_call", {"step": number, "index": i,
                                     "action": action.model_dump(mode="json")}))
    return events


def _harness_events(number: int, o: StepOutcome) -> list[tuple[str, dict[str, Any]]]:
    """What the harness did around the brain: v5 recovery, v4/v5 verification."""
    events: list[tuple[str, dict[str, Any]]] = []
    if o.hint:
        events.append(("recovery", {"step": number, "message": o.hint}))
    if o.verdict is not None:
        events.append(("verification", {"step": number, "passed": o.verdict.passed,
                                         "reason": o.verdict.reason, "by": o.verdict.by}))
    return events


def _result_events(number: int, o: StepOutcome) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    for i, r in enumerate(o.results):
        output = r.output
        events.append(("tool_result", {
            "step": number, "index": i, "ok": r.ok, "exit_code": r.exit_code,
            "output": output[-OUTPUT_IN_EVENTS:], "truncated": len(output) > OUTPUT_IN_EVENTS,
            "error": r.error, "duration_ms": r.duration_ms,
        }))
    events.append(("step", {"number": number, "status": "completed",
                            "duration_ms": o.duration_ms, "actions": len(o.results),
                            "usage": o.decision.usage.model_dump()}))
    return events
