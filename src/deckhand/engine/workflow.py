"""The workflow interpreter, on the durable engine.

A workflow run is interpreted by replay (a durable step: look for the saved
result, else run and save). Every step execution has a row in
``workflow_steps`` keyed by its path in the run — ``send#2/send_task`` is step
``send_task`` in attempt 2 of retry ``send``, ``poll[3]/check`` is step
``check`` in iteration 3 of loop ``poll``, ``fan|1/b`` is step ``b`` in branch
1 of parallel ``fan``. A claim loads the rows and runs the definition from
the top: a finished row gives back its recorded outcome at once, an open one
is taken up where it was (a task waits for its existing child run, a wait
sleeps until its stored wake-up time), a missing one is executed and
recorded. A task step's child run is created in the same transaction as its
row, so after any crash it exists exactly once. Templates and conditions
only read recorded data, so the replay takes the same path.

Steps that fail raise :class:`StepFailed` (a ``retry`` catches it); what ends
the whole run — ``succeed``, ``fail``, a guard — raises :class:`RunEnd`; a
``human_approval`` records ``awaiting_human``, gives the lease back and
raises :class:`Suspended`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from deckhand.brains.resolve import LlmRequest
from deckhand.core.clock import utcnow
from deckhand.engine import dsl
from deckhand.engine.lifecycle import LeaseLost
from deckhand.engine.submit import RunSpec
from deckhand.engine.templates import EvaluationError, evaluate, render, render_text
from deckhand.engine.workflow_lifecycle import error, step_event
from deckhand.engine.workflow_state import (
    Engine,
    Frame,
    RunEnd,
    StepFailed,
    StepRecords,
    Suspended,
    cancel_all,
)
from deckhand.errors import DeckhandError, ErrorCode, LlmError, another_attempt_can_help
from deckhand.store import llm_keys as llm_keys_store
from deckhand.store import runs as runs_store
from deckhand.store import workflows as wf_store
from deckhand.store.records import Run, WorkflowRun, WorkflowStep
from deckhand.store.tables import workflow_runs
from deckhand.store.workflows import TERMINAL

__all__ = ["MAX_ATTEMPTS", "Engine", "Interpreter", "RunEnd", "StepFailed", "Suspended"]

log = logging.getLogger("deckhand.workflow")

MAX_ATTEMPTS = 25  # claims of one workflow run before giving up
ITERATIONS_CEILING = 100_000  # loop iterations of a run without max_iterations
MAX_TASK_CHARS = 16000


class Interpreter(StepRecords):
    """Runs a definition by replay over its step records."""

    # -- the run -------------------------------------------------------------------
    async def execute(self) -> None:
        async with self.e.db.read() as conn:
            self.rows = await wf_store.steps_of(conn, self.run.id)
        timer = asyncio.timeout_at(_loop_time(self.run.deadline_at))
        try:
            async with timer:
                await self.block(self.definition.steps, Frame())
                output = self._output(None)
            await self._end("succeeded", output=output)
        except StepFailed as exc:
            await self._end("failed", error=exc.error)
        except RunEnd as exc:
            await self._end(exc.status, error=exc.error, output=exc.output)
        except Suspended:
            return
        except TimeoutError:
            if not timer.expired():
                raise
            await self._end("timed_out", error=error(
                ErrorCode.DEADLINE_EXCEEDED,
                f"The workflow run exceeded its deadline of {self.run.deadline_seconds} s."))

    def _output(self, step_output: dict[str, Any] | None) -> dict[str, Any] | None:
        template = step_output if step_output is not None else self.definition.output
        if template is None:
            return None
        try:
            return render(template, self.scope(Frame()))  # type: ignore[no-any-return]
        except EvaluationError as exc:
            raise StepFailed("output", error(ErrorCode.TEMPLATE_ERROR, f"output: {exc}",
                                             step_id=None)) from None

    async def _end(self, status: str, **kw: Any) -> None:
        async with self.e.db.write() as conn:
            run = await wf_store.get_run(conn, self.run.id)
            if run is None or run.status in TERMINAL or run.claimed_by != self.e.worker_id:
                raise LeaseLost(self.run.id)
            await self.e.lifecycle.finish(conn, run, status, owner=self.e.worker_id, **kw)

    async def block(self, steps: list[Any], frame: Frame) -> None:
        for step in steps:
            handler: Callable[[Any, str, Frame], Awaitable[None]] = getattr(self, f"_{step.type}")
            await handler(step, frame.prefix + step.id, frame)

    # -- task -----------------------------------------------------------------------------
    async def _task(self, s: dsl.TaskStep, key: str, frame: Frame) -> None:
        row = self.rows.get(key)
        if row is None:
            row = await self._launch(s, key, frame)
        if row.finished_at is None:
            child = await self._await_child(row.child_run_id)
            ok = child.status == "succeeded"
            err = None if ok else _child_error(s.id, child)
            row = await self._close(s, key, "succeeded" if ok else "failed", result=child.result,
                                    err=err, spent=True)
        if row.status == "succeeded" and s.save_as:
            self.vars[s.save_as] = (row.data or {}).get("result")
        self._outcome(s, row)

    async def _launch(self, s: dsl.TaskStep, key: str, frame: Frame) -> WorkflowStep:
        scope = self.scope(frame)
        try:
            task = render_text(s.task, scope) or ""
            machine = render_text(s.machine_id, scope) or self.run.machine_id
            instructions = render_text(s.instructions, scope)
            system_prompt = render_text(s.system_prompt, scope)
        except EvaluationError as exc:
            await self._refuse(s, key, ErrorCode.TEMPLATE_ERROR, str(exc))
        if not machine:
            await self._refuse(s, key, ErrorCode.MACHINE_REQUIRED, "No machine_id for this task step.")
        if not task.strip() or len(task) > MAX_TASK_CHARS:
            await self._refuse(s, key, ErrorCode.VALIDATION_ERROR,
                               f"The rendered task has {len(task)} characters (1-"
                               f"{MAX_TASK_CHARS} allowed).")
        assert machine is not None
        spec = RunSpec(
            machine_id=machine, task=task, cua_version=s.cua_version or "v5",
            instructions=instructions, system_prompt=system_prompt, model=self.run.model,
            max_steps=s.max_steps or 50, deadline_seconds=s.deadline_seconds,
            metadata={"workflow_run_id": self.run.id, "workflow_step_id": s.id,
                      "workflow_step_key": key},
            workflow_run_id=self.run.id,
        )
        with self.e.notifier.subscribe("workflow_child", self.run.account_id) as waiter:
            while True:
                await self._check_budget(running=False)
                try:
                    row = await self._write(lambda conn, run: self._submit(conn, run, s, key,
                                                                            spec))
                except DeckhandError as exc:
                    await self._refuse(s, key, exc.code, exc.message)
                if row is not None:
                    self.rows[key] = row
                    return row
                await waiter.wait(self.e.poll)  # at the account's limit of task runs

    async def _submit(self, conn: AsyncConnection, run: WorkflowRun, s: dsl.TaskStep,
                      key: str, spec: RunSpec) -> WorkflowStep | None:
        if await wf_store.active_children_of_account(conn, run.account_id) >= self.e.child_limit:
            return None
        if run.llm:  # bring your own key: the task run gets the workflow run's key
            sealed = await llm_keys_store.workflow_run_key(conn, run.id)
            if sealed is None:
                raise LlmError("The workflow run's key snapshot is gone; its task runs "
                               "cannot start without the caller's key.",
                               code=ErrorCode.LLM_KEY_NOT_CONFIGURED)
            spec = replace(spec, llm=LlmRequest.inherited(run.llm, sealed))
        done = await self.e.submitter.submit(conn, account_id=run.account_id, mode=run.mode,
                                             spec=spec, request_id=run.request_id)
        row = await wf_store.insert_step(conn, run.id, key, step_id=s.id, type=s.type,
                                         status="running", child_run_id=done.run.id)
        await self.e.lifecycle.record(conn, run, [("step_started", step_event(row))],
                                      owner=self.e.worker_id)
        return row

    async def _await_child(self, child_id: str | None) -> Run:
        """Wait for a child run to end: woken by its events, polled ≤ 1 s apart;
        watching the budget meanwhile."""
        assert child_id is not None
        with self.e.notifier.subscribe("events", child_id) as waiter:
            while True:
                async with self.e.db.read() as conn:
                    child = await runs_store.get(conn, child_id)
                    spent = await wf_store.spent_cents(conn, self.run.id) \
                        if self.run.budget_cents else 0
                assert child is not None
                if child.status in TERMINAL:
                    return child
                self._budget_hit(spent, running=True)
                await waiter.wait(self.e.poll)

    async def _check_budget(self, *, running: bool) -> None:
        if self.run.budget_cents:
            async with self.e.db.read() as conn:
                self._budget_hit(await wf_store.spent_cents(conn, self.run.id), running=running)

    def _budget_hit(self, spent: int, *, running: bool) -> None:
        """The cap is hard: at the budget, no task starts or goes on."""
        budget = self.run.budget_cents
        if budget and spent >= budget:
            raise RunEnd("failed", error=error(
                "BUDGET_EXCEEDED",
                f"The workflow run spent {spent} of its budget of {budget} cents"
                + (" with task runs still going." if running else "; no more tasks start.")))

    # -- control flow -------------------------------------------------------------------------
    async def _assert(self, s: dsl.AssertStep, key: str, frame: Frame) -> None:
        row = self.rows.get(key)
        if row is None:
            scope = self.scope(frame)
            try:
                ok = evaluate(s.condition, scope)
            except EvaluationError as exc:
                await self._refuse(s, key, ErrorCode.CONDITION_ERROR, str(exc))
            if ok:
                row = await self._instant(s, key, "succeeded", result={"passed": True})
            else:
                try:
                    message = render_text(s.message, scope)
                except EvaluationError:
                    message = s.message
                row = await self._instant(s, key, "failed", result={"passed": False}, err=error(
                    "ASSERTION_FAILED", message or f"Assertion {s.id} is false.", step_id=s.id))
        self._outcome(s, row)

    async def _if(self, s: dsl.IfStep, key: str, frame: Frame) -> None:
        row = self.rows.get(key)
        if row is None:
            try:
                taken = evaluate(s.condition, self.scope(frame))
            except EvaluationError as exc:
                await self._refuse(s, key, ErrorCode.CONDITION_ERROR, str(exc))
            branch = "then" if taken else ("else" if s.else_ else None)
            skipped = _skipped(s, branch)
            row = await self._open(s, key, data={"branch": branch}, events=[
                ("step_skipped", {"step_id": x.id, "type": x.type, "if_step_id": s.id,
                                  "reason": f"branch {_other(branch)} of {s.id} not taken"})
                for x in skipped])
        branch = (row.data or {}).get("branch")
        for x in _skipped(s, branch):
            self.steps[x.id] = {"status": "skipped", "result": None, "error": None}
        steps = s.then if branch == "then" else (s.else_ or []) if branch == "else" else []

        async def body(_: WorkflowStep) -> dict[str, Any]:
            await self.block(steps, frame)
            return {"branch": branch}

        await self._container(s, key, frame, body)

    async def _loop(self, s: dsl.LoopStep, key: str, frame: Frame) -> None:
        async def body(_: WorkflowStep) -> dict[str, Any]:
            i = 0
            while True:
                ikey = f"{key}[{i}]"
                inner = frame.into(f"{ikey}/", i)
                if ikey not in self.rows:
                    if s.count is not None:
                        go = i < s.count
                    else:
                        try:
                            go = evaluate(s.while_, self.scope(inner))
                        except EvaluationError as exc:
                            raise StepFailed(s.id, error(ErrorCode.CONDITION_ERROR, str(exc))) from None
                    if not go:
                        return {"iterations": i}
                    if s.max_iterations is not None and i >= s.max_iterations:
                        raise StepFailed(s.id, error(
                            "MAX_ITERATIONS_EXCEEDED",
                            f"Loop {s.id} reached its max_iterations ({s.max_iterations})."))
                    await self._iteration(s, ikey, i)
                await self.block(s.body, inner)
                i += 1

        await self._container(s, key, frame, body)

    async def _iteration(self, s: dsl.LoopStep, ikey: str, index: int) -> None:
        async def go(conn: AsyncConnection, run: WorkflowRun) -> WorkflowStep | None:
            limit = run.max_iterations or ITERATIONS_CEILING
            if run.iterations_used >= limit:
                return None
            row = await wf_store.insert_step(conn, run.id, ikey, step_id=s.id, type="iteration",
                                             status="succeeded", data={"index": index},
                                             finished_at=utcnow())
            await self.e.lifecycle.record(
                conn, run, [("loop_iteration", {"step_id": s.id, "key": ikey, "index": index})],
                owner=self.e.worker_id,
                iterations_used=workflow_runs.c.iterations_used + 1)
            return row

        row = await self._write(go)
        if row is None:
            raise RunEnd("failed", error=error(
                "MAX_ITERATIONS_EXCEEDED",
                f"The workflow run used all {self.run.max_iterations or ITERATIONS_CEILING} "
                f"loop iterations it may (at loop {s.id}).", step_id=s.id))
        self.rows[ikey] = row

    async def _parallel(self, s: dsl.ParallelStep, key: str, frame: Frame) -> None:
        async def body(row: WorkflowStep) -> dict[str, Any]:
            replaying = row.finished_at is not None
            failures = await self._branches(
                [self.block(branch, frame.into(f"{key}|{b}/"))
                 for b, branch in enumerate(s.branches)],
                fail_fast=s.fail_fast and not replaying, prefix=f"{key}|")
            if failures:
                raise failures[0]
            return {"branches": len(s.branches)}

        await self._container(s, key, frame, body)

    async def _branches(self, coros: list[Coroutine[Any, Any, None]], *, fail_fast: bool,
                        prefix: str) -> list[StepFailed]:
        """Run branches concurrently. With ``fail_fast`` the first failure stops
        the others (their task runs are cancelled); anything that ends the run
        always does."""
        tasks = [asyncio.create_task(c) for c in coros]
        failures: list[StepFailed] = []
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in sorted(done, key=tasks.index):
                    exc = t.exception()
                    if exc is None:
                        continue
                    if isinstance(exc, StepFailed) and not fail_fast:
                        failures.append(exc)
                        continue
                    await cancel_all(list(pending))
                    pending = set()
                    if isinstance(exc, StepFailed):
                        await self._abandon(prefix)
                    raise exc
        except asyncio.CancelledError:
            await cancel_all(tasks)
            raise
        return failures

    async def _retry(self, s: dsl.RetryStep, key: str, frame: Frame) -> None:
        async def body(_: WorkflowStep) -> dict[str, Any]:
            last: StepFailed | None = None
            for attempt in range(1, s.max_attempts + 1):
                akey = f"{key}#{attempt}"
                if attempt > 1:
                    await self._pause_before(s, akey, attempt)
                try:
                    await self.block(s.body, frame.into(f"{akey}/"))
                    return {"attempts": attempt}
                except StepFailed as exc:
                    last = exc
                code = str(last.error.get("code") or "")
                if not another_attempt_can_help(code):
                    raise StepFailed(s.id, error(
                        code, f"Retry {s.id} stopped after attempt {attempt} of "
                        f"{s.max_attempts}: {code} cannot change on a retry; "
                        f"{last.error.get('message')}",
                        attempts=attempt, retryable=False, last_error=last.error))
            assert last is not None
            raise StepFailed(s.id, error(
                "RETRY_EXHAUSTED",
                f"Retry {s.id} failed {s.max_attempts} times; last: {last.error.get('message')}",
                last_error=last.error))

        await self._container(s, key, frame, body)

    async def _pause_before(self, s: dsl.RetryStep, akey: str, attempt: int) -> None:
        row = self.rows.get(akey)
        if row is None:
            delay = min(s.delay_ms * s.backoff ** (attempt - 2), 3_600_000) / 1000
            row = await self._instant_marker(s, akey, "attempt", utcnow() + timedelta(
                seconds=delay), ("retry_attempt", {"step_id": s.id, "attempt": attempt,
                                                   "delay_seconds": delay}))
        await _sleep_until(row.wake_at)

    async def _wait(self, s: dsl.WaitStep, key: str, frame: Frame) -> None:
        now = utcnow()
        row = self.rows.get(key) or await self._open(
            s, key, started_at=now, wake_at=now + timedelta(seconds=s.seconds))
        if row.finished_at is None:
            await _sleep_until(row.wake_at)
            row = await self._close(s, key, "succeeded", result={"seconds": s.seconds})
        self._outcome(s, row)

    async def _human_approval(self, s: dsl.HumanApprovalStep, key: str, frame: Frame) -> None:
        row = self.rows.get(key)
        if row is None or (row.finished_at is None and
                           (row.data or {}).get("approved") is None):
            await self._ask(s, key, frame, row)
            raise Suspended
        if row.finished_at is None:
            data = row.data or {}
            row = await self._close(s, key, "succeeded",
                                    result={"approved": True, "note": data.get("note")})
        self._remember(s, row)
        if row.status != "succeeded":  # rejected or timed out: the run already ended
            raise RunEnd("failed", error=(row.data or {}).get("error"))

    async def _ask(self, s: dsl.HumanApprovalStep, key: str, frame: Frame,
                   row: WorkflowStep | None) -> None:
        try:
            message = render_text(s.message, self.scope(frame)) or s.message
        except EvaluationError as exc:
            await self._refuse(s, key, ErrorCode.TEMPLATE_ERROR, str(exc))
        timeout_at = utcnow() + timedelta(seconds=s.timeout_seconds) \
            if s.timeout_seconds else None

        async def go(conn: AsyncConnection, run: WorkflowRun) -> None:
            step = row or await wf_store.insert_step(
                conn, run.id, key, step_id=s.id, type=s.type, status="awaiting",
                data={"message": message, "on_timeout": s.on_timeout})
            await self.e.lifecycle.await_human(conn, run, self.e.worker_id, step=step,
                                               reason=message, timeout_at=timeout_at)

        await self._write(go)

    async def _succeed(self, s: dsl.SucceedStep, key: str, frame: Frame) -> None:
        row = self.rows.get(key)
        if row is None:
            try:
                output = self._output(s.output)
            except StepFailed as exc:
                await self._refuse(s, key, ErrorCode.TEMPLATE_ERROR, exc.error["message"])
            row = await self._instant(s, key, "succeeded", result={"output": output})
        self._remember(s, row)
        raise RunEnd("succeeded", output=((row.data or {}).get("result") or {}).get("output"))

    async def _fail(self, s: dsl.FailStep, key: str, frame: Frame) -> None:
        row = self.rows.get(key)
        if row is None:
            try:
                message = render_text(s.message, self.scope(frame))
            except EvaluationError as exc:
                message = f"{s.message} ({exc})"
            row = await self._instant(s, key, "failed", err=error(
                "WORKFLOW_FAILED", message or f"The workflow failed at step {s.id}.",
                step_id=s.id))
        self._remember(s, row)
        raise RunEnd("failed", error=(row.data or {}).get("error"))


# -- helpers ---------------------------------------------------------------------------------------


def _skipped(s: dsl.IfStep, branch: str | None) -> list[Any]:
    blocks = []
    if branch != "then":
        blocks.append(s.then)
    if branch != "else" and s.else_:
        blocks.append(s.else_)
    return [x for block in blocks for x in dsl.walk(block)]


def _other(branch: str | None) -> str:
    return "then" if branch != "then" else "else"


def _child_error(step_id: str, child: Run) -> dict[str, Any]:
    inner = child.error or {}
    return error(inner.get("code") or f"RUN_{child.status.upper()}",
                 f"Task {step_id}: run {child.id} {child.status}"
                 + (f": {inner['message']}" if inner.get("message") else "."),
                 step_id=step_id, run_id=child.id, run_status=child.status)


def _loop_time(at: datetime | None) -> float | None:
    if at is None:
        return None
    return asyncio.get_running_loop().time() + (at - utcnow()).total_seconds()


async def _sleep_until(at: datetime | None) -> None:
    if at is not None:
        await asyncio.sleep(max(0.0, (at - utcnow()).total_seconds()))
