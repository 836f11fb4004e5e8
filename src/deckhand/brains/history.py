"""What a model is told of the steps so far, laid out so that the earlier part
of a conversation does not change from one step to the next (a provider's
prompt cache then serves it), and the compaction that keeps a long run inside
its context (cua_version v5).

Each recorded step becomes a :class:`Turn` with the screen the agent saw after
it (the next step's observation, or the current one). Screens of old steps are
only in memory (:data:`~deckhand.core.steps.OBSERVATIONS_KEPT`); a run rebuilt
after a crash has the current screen only, which is all a brain needs to go on.

Nothing is dropped one step at a time, which would change the prefix at every
step: screens are dropped in chunks of :attr:`Policy.chunk` — the last
``keep_images`` to ``keep_images + chunk - 1`` turns show theirs — and with v5
old steps go into the summary in chunks of :attr:`Policy.turn_chunk`, at the
same steps as a chunk of screens, so the prefix changes once per chunk. The
summary is written from the summarized steps only (one fixed line each, no
timestamps or counters that move), so it stays as it was until the next chunk.
:func:`layout` is that arithmetic; :func:`history` applies it to a context.
"""

from __future__ import annotations

from dataclasses import dataclass

from deckhand.core.actions import ActionResult
from deckhand.core.describe import describe, short
from deckhand.core.screens import Observation
from deckhand.core.steps import OBSERVATIONS_KEPT, AgentContext, StepRecord

RESULT_CHARS = 4000  # a tool result's text shown to a model (the tail)
SCREENS_KEPT = 3  # the default: at least this many screens shown as images
SCREENS_CHUNK = 8  # … and dropped this many at a time


@dataclass(frozen=True)
class Policy:
    keep_turns: int | None  # at least this many steps shown in full (None: all)
    keep_images: int  # at least this many screens shown as images, the current one included
    summary_chars: int  # the summary of older steps keeps its newest lines within this
    chunk: int = SCREENS_CHUNK  # screens are dropped this many at a time
    turn_chunk: int = 3 * SCREENS_CHUNK  # steps go into the summary this many at a time

    def __post_init__(self) -> None:
        if not 1 <= self.keep_images or self.chunk < 1 \
                or self.keep_images + self.chunk - 1 > OBSERVATIONS_KEPT:
            raise ValueError(f"screens kept {self.keep_images} + chunk {self.chunk} - 1 must "
                             f"be within the {OBSERVATIONS_KEPT} screens a run keeps")


@dataclass(frozen=True)
class ScreenBudget:
    """How many screens a provider is shown (settings, per provider)."""

    kept: int = SCREENS_KEPT
    chunk: int = SCREENS_CHUNK


def policy_for(cua_version: str, budget: ScreenBudget | None = None) -> Policy:
    b = budget or ScreenBudget()
    if cua_version == "v5":
        # at least 16 steps in full, chosen so the summary grows at a screen chunk's step
        extra = -(-max(0, 16 - b.kept) // b.chunk) * b.chunk
        return Policy(keep_turns=b.kept + extra, keep_images=b.kept, summary_chars=6000,
                      chunk=b.chunk, turn_chunk=3 * b.chunk)
    return Policy(keep_turns=None, keep_images=b.kept, summary_chars=6000, chunk=b.chunk)


def chunked_cut(n: int, keep: int, chunk: int) -> int:
    """How many of ``n`` items to drop when at least ``keep`` stay and they go
    ``chunk`` at a time: the cut moves only when ``n - keep`` passes a multiple
    of ``chunk``, so ``keep`` to ``keep + chunk - 1`` stay."""
    return 0 if n <= keep else (n - keep) // chunk * chunk


@dataclass(frozen=True)
class Layout:
    turn_cut: int  # steps before this index are summarized
    image_cut: int  # turns of steps from this index on show their screen after


def layout(n: int, policy: Policy) -> Layout:
    """Where the summary ends and the screens begin for a conversation of ``n`` steps."""
    image_cut = chunked_cut(n, policy.keep_images, policy.chunk)
    turn_cut = 0 if policy.keep_turns is None \
        else chunked_cut(n, policy.keep_turns, policy.turn_chunk)
    return Layout(turn_cut=turn_cut, image_cut=image_cut)


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
    opening_screen: Observation | None = None  # the screen before the first turn, while kept
    # the turn (index into turns) whose end is the last that was already text
    # in the conversation of one step fewer: a stable place for a cache breakpoint
    stable_turn: int | None = None


def history(context: AgentContext, policy: Policy | None = None) -> History:
    policy = policy or policy_for(context.cua_version)
    steps = context.steps
    n = len(steps)
    at = layout(n, policy)
    cut = at.turn_cut
    # steps a brain cannot replay as its own turns (no provider data: a trajectory sent
    # to /v1/predict, or another brain's steps) go to the summary too
    while cut < n and steps[cut].decision.provider_data is None:
        cut += 1
    lines = [step_line(s) for s in steps[:cut]]
    summary = _bounded(lines, policy.summary_chars) if lines else None
    turns = []
    for i in range(cut, n):
        after = steps[i + 1].observation if i + 1 < n else context.observation
        turns.append(Turn(step=steps[i], screen_after=after if i >= at.image_cut else None))
    opening = (steps[0].observation if n else context.observation) \
        if at.image_cut == 0 and cut == 0 else None
    before = layout(n - 1, policy).image_cut if n else 0  # the text part one step ago
    stable = before - 1 - cut
    return History(summary=summary, turns=tuple(turns), screen=context.observation,
                   opening_screen=opening, stable_turn=stable if stable >= 0 else None)


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
