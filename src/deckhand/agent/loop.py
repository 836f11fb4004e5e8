"""One agent step: observe → decide → act (→ verify). Recording is the
runner's job; the loop hands it the decision before acting (so progress shows
live) and the results after.

The step's last action asks the machine (``act_and_observe``) for the
settled screen in the same call: the verifier looks at it, and the machine
keeps it for the next step's observe, so a step costs one round trip. A
machine without a screen answers None, and the verifier then looks again."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from deckhand.agent.recovery import with_recovery_hint
from deckhand.agent.verifier import apply_verdict, needs_verification
from deckhand.brains.base import Brain
from deckhand.core.actions import Action, ActionResult
from deckhand.core.clock import utcnow
from deckhand.core.machine import Machine
from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision, StepRecord
from deckhand.core.verdicts import Verdict
from deckhand.errors import MachineError


@dataclass(frozen=True)
class StepOutcome:
    decision: Decision
    results: tuple[ActionResult, ...]
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    observation: Observation | None = None  # the screen the brain saw
    after: Observation | None = None  # the settled screen after the last action
    hint: str | None = None  # the harness's note to the brain (v5 recovery)
    verdict: Verdict | None = None  # v4/v5: the independent check of a "done"


async def act(machine: Machine, action: Action, *, then_observe: bool = False
              ) -> tuple[ActionResult, Observation | None]:
    """Perform ``action``; with ``then_observe``, also the settled screen
    after it, in the same round trip (None when the machine has no screen)."""
    if not then_observe:
        return await machine.act(action), None
    return await machine.act_and_observe(action)


async def run_step(
    brain: Brain,
    machine: Machine,
    context: AgentContext,
    on_decided: Callable[[Decision], Awaitable[None]],
) -> StepOutcome:
    started_at, t0 = utcnow(), time.perf_counter()
    observation = await machine.observe()
    given_hint = context.hint
    context = with_recovery_hint(context.model_copy(update={"observation": observation}))
    decision = await brain.decide(context)
    await on_decided(decision)
    results: list[ActionResult] = []
    after: Observation | None = None
    for i, action in enumerate(decision.actions):
        try:
            result, after = await act(machine, action,
                                      then_observe=i == len(decision.actions) - 1)
            results.append(result)
        except MachineError as exc:
            # The machine failing is a result the brain sees, not a crash of the run.
            results.append(ActionResult(ok=False, error=exc.message))
            break
    verdict = None
    if (decision.outcome is not None and decision.outcome.success
            and needs_verification(context.cua_version)):
        final = (after or await machine.observe()) if decision.actions else observation
        done = StepRecord(number=len(context.steps) + 1, decision=decision,
                          results=tuple(results), observation=observation)
        checked = context.model_copy(update={"steps": (*context.steps, done),
                                             "observation": final})
        verdict = await brain.verify(checked, decision.outcome.answer or decision.text or "",
                                     final)
        decision = apply_verdict(decision, verdict)
    return StepOutcome(
        decision=decision, results=tuple(results), started_at=started_at, finished_at=utcnow(),
        duration_ms=int((time.perf_counter() - t0) * 1000), observation=observation,
        after=after, hint=context.hint if context.hint != given_hint else None, verdict=verdict,
    )
