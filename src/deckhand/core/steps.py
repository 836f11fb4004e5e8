"""Steps and decisions: what a brain is given (:class:`AgentContext`, with the
:class:`StepRecord` of every step so far) and what it returns (:class:`Decision`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deckhand.core.actions import Action, ActionResult
from deckhand.core.screens import Observation

# A run keeps the screens of its last OBSERVATIONS_KEPT steps in memory
# (StepRecord.observation; a run rebuilt after a crash has none), so a model can be
# shown no more past screens than that.
OBSERVATIONS_KEPT = 12


class TokenUsage(BaseModel):
    """A model call's tokens. ``input_tokens`` counts the whole prompt; the two
    cache counters are the parts of it the provider wrote to its prompt cache
    (``cache_creation_input_tokens``, Anthropic) and read from it
    (``cache_read_input_tokens``: Anthropic's cache reads, OpenAI's cached tokens)."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens
            + other.cache_read_input_tokens)


class Outcome(BaseModel):
    """How the brain ends the run. ``success`` False carries an error code."""

    model_config = ConfigDict(frozen=True)

    success: bool
    answer: str | None = None
    error_code: str | None = None
    message: str | None = None


class Decision(BaseModel):
    """One step's decision.

    Exactly one of these shapes:
    - ``actions`` non-empty: perform them (the loop executes them in order);
    - ``ask_human`` set: the run needs a person (``awaiting_human``);
    - ``outcome`` set: the run ends (succeeded, or failed with a code).
    A decision may also carry ``actions`` together with ``outcome`` (act, then end).
    """

    model_config = ConfigDict(frozen=True)

    actions: tuple[Action, ...] = ()
    text: str | None = None
    reasoning: str | None = None
    ask_human: str | None = None
    outcome: Outcome | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    # What a model brain needs to continue the conversation (its tool call ids,
    # the model's raw output), stored with the step; JSON only.
    provider_data: dict[str, Any] | None = None


class StepRecord(BaseModel):
    """A completed step as the brain sees it when deciding the next one."""

    model_config = ConfigDict(frozen=True)

    number: int
    decision: Decision
    results: tuple[ActionResult, ...] = ()
    human_note: str | None = None
    # The screen the brain saw before this step (kept in memory for recent steps only).
    observation: Observation | None = None


class AgentContext(BaseModel):
    """Everything a brain may use to decide: the goal, the prompts, the steps so
    far (rebuilt from the store after a crash) and, when the machine has a
    screen, the latest screenshot."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    task: str
    instructions: str | None = None
    system_prompt: str | None = None
    cua_version: str = "v5"
    max_steps: int = 50
    steps: tuple[StepRecord, ...] = ()
    observation: Observation | None = None  # the screen now, when the machine has one
    hint: str | None = None  # a note from the harness, e.g. "re-plan: that changed nothing"
    terminal: bool = True  # the machine has a terminal and files (False for /v1/predict)
    allowed_actions: tuple[str, ...] | None = None  # contract action types allowed (None: all)
    max_actions: int | None = None  # at most this many actions in one decision
