"""What a model is told of the steps so far, and the compaction that keeps a
long run inside its context (cua_version v5).

Each recorded step becomes a :class:`Turn` with the screen the agent saw after
it (the next step's observation, or the current one). Screens of old steps are
only in memory (:data:`~deckhand.core.steps.OBSERVATIONS_KEPT`); a run rebuilt
after a crash has the current screen only, which is all a brain needs to go on.
With v5 only the last :attr:`Policy.keep_turns` steps are shown in full and only
the last :attr:`Policy.keep_images` screens as images; older steps become one
line each in a summary bounded by :attr:`Policy.summary_chars`, so a 300-step
run costs about what a 20-step one does.
"""

from __future__ import annotations

from dataclasses import dataclass

from deckhand.core.actions import ActionResult
from deckhand.core.describe import describe, short
from deckhand.core.screens import Observation
from deckhand.core.steps import OBSERVATIONS_KEPT, AgentContext, StepRecord

RESULT_CHARS = 4000  # a tool result's text shown to a model (the tail)


@dataclass(frozen=True)
class Policy:
    keep_turns: int | None  # steps shown in full (None: all)
    keep_images: int  # screens shown as images, the current one included
    summary_chars: int  # the summary of older steps keeps its newest lines within this


def policy_for(cua_version: str) -> Policy:
    if cua_version == "v5":
        return Policy(keep_turns=16, keep_images=3, summary_chars=6000)
    return Policy(keep_turns=None, keep_images=OBSERVATIONS_KEPT, summary_chars=6000)


@dataclass(frozen=True)
class Turn:
    step: StepRecord
    screen_after: Observation | None  # shown as an image when kept, else None

    def untold_note(self) -> str | None:
        """The human's note on this step when no ``request_human`` call carries
        it back as its result, so the model must be told it as text."""
        calls = (self.step.decision.provider_data or {}).get("calls", [])
        if self.step.human_note and not any(isinstance(c, dict) and c.get("human")
                                            for c in calls):
            return self.step.human_note
        return None


@dataclass(frozen=True)
class History:
    summary: str | None  # the older steps, one line each
    turns: tuple[Turn, ...]
    screen: Observation | None  # the screen now


def history(context: AgentContext, policy: Policy | None = None) -> History:
    policy = policy or policy_for(context.cua_version)
    steps = context.steps
    cut = 0 if policy.keep_turns is None else max(0, len(steps) - policy.keep_turns)
    # steps a brain cannot replay as its own turns (no provider data: a trajectory sent
    # to /v1/predict, or another brain's steps) go to the summary too
    while cut < len(steps) and steps[cut].decision.provider_data is None:
        cut += 1
    lines = [step_line(s) for s in steps[:cut]]
    summary = _bounded(lines, policy.summary_chars) if lines else None
    turns = []
    kept = steps[cut:]
    for i, step in enumerate(kept):
        after_index = cut + i + 1
        after = steps[after_index].observation if after_index < len(steps) else context.observation
        image_rank = len(kept) - i  # 1 = the latest turn
        turns.append(Turn(step=step, screen_after=after if image_rank <= policy.keep_images
                          else None))
    return History(summary=summary, turns=tuple(turns), screen=context.observation)


def _bounded(lines: list[str], limit: int) -> str:
    out: list[str] = []
    used = 0
    for line in reversed(lines):
        if used + len(line) + 1 > limit:
            out.append(f"… {len(lines) - len(out)} earlier steps omitted")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(reversed(out))


def step_line(step: StepRecord) -> str:
    """One line for a step: what it did and how that went."""
    d = step.decision
    parts = []
    for action, result in zip(d.actions, step.results + (None,) * len(d.actions), strict=False):
        what = describe(action)
        if result is None:
            parts.append(f"{what} (not done)")
        elif not result.ok:
            parts.append(f"{what} → failed: {short(result.error or '')}")
        elif result.exit_code is not None:
            parts.append(f"{what} → exit {result.exit_code}: {short(result.output)}")
        else:
            parts.append(what)
    if d.ask_human:
        parts.append(f"asked a human: {short(d.ask_human)}")
    if step.human_note:
        parts.append(f"the human answered: {short(step.human_note)}")
    if d.text and not parts:
        parts.append(short(d.text))
    return f"Step {step.number}: " + ("; ".join(parts) or "looked at the screen")


def result_text(result: ActionResult | None, limit: int = RESULT_CHARS) -> str:
    """A tool result as text for a model."""
    if result is None:
        return "Not performed."
    if not result.ok:
        return f"Error: {result.error or 'the action failed'}"
    text = result.output
    if not text and isinstance(result.data.get("content"), str):
        text = result.data["content"]
    if len(text) > limit:
        text = f"[… {len(text) - limit} characters cut]\n" + text[-limit:]
    if result.exit_code is not None:
        return f"exit code {result.exit_code}\n{text}" if text else f"exit code {result.exit_code}"
    return text or "Done."


def trajectory_text(context: AgentContext, limit: int = 8000) -> str:
    """All steps, one line each (newest kept within ``limit``), for a verifier."""
    lines = [step_line(s) for s in context.steps]
    return _bounded(lines, limit) if lines else "(no steps)"
