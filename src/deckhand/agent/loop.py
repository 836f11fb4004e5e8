"""One agent step: observe → decide → act. Recording is the runner's job; the
loop hands it the decision before acting (so progress shows live) and the
results after."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from deckhand.agent.actions import ActionResult
from deckhand.brains.base import AgentContext, Brain, Decision
from deckhand.errors import MachineError
from deckhand.machines.base import Machine
from deckhand.store.types import utcnow


@dataclass(frozen=True)
class StepOutcome:
    decision: Decision
    results: tuple[ActionResult, ...]
    started_at: datetime
    finished_at: datetime
    duration_ms: int


async def run_step(
    brain: Brain,
    machine: Machine,
    context: AgentContext,
    on_decided: Callable[[Decision], Awaitable[None]],
) -> StepOutcome:
    started_at, t0 = utcnow(), time.perf_counter()
    decision = await brain.decide(context)
    await on_decided(decision)
    results: list[ActionResult] = []
    for action in decision.actions:
        try:
            results.append(await machine.act(action))
        except MachineError as exc:
            # The machine failing is a result the brain sees, not a crash of the run.
            results.append(ActionResult(ok=False, error=exc.message))
            break
    return StepOutcome(
        decision=decision, results=tuple(results), started_at=started_at, finished_at=utcnow(),
        duration_ms=int((time.perf_counter() - t0) * 1000),
    )
