"""The Brain base class: what the agent loop and the inference API ask of a
brain, so they call methods instead of probing for them.

A brain must :meth:`~Brain.decide`. Checking a finished task
(:meth:`~Brain.verify`) and locating an element (:meth:`~Brain.ground`) are
answered by the brains that can; the others raise
:class:`~deckhand.errors.BrainUnsupported` (422 ``OFFLINE_BRAIN_UNSUPPORTED``)
naming themselves. :meth:`~Brain.aclose` releases what a brain holds (a model
brain's HTTP client); it is always safe to call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from deckhand.core.screens import Observation
from deckhand.core.steps import AgentContext, Decision
from deckhand.core.verdicts import Grounded, Verdict
from deckhand.errors import BrainUnsupported

CONFIGURE_A_MODEL = ("configure a model (ANTHROPIC_API_KEY, OPENAI_API_KEY or an "
                     "OpenAI-compatible base URL) or send your own key with X-LLM-Provider "
                     "and X-LLM-Api-Key.")


class Brain(ABC):
    """Turns what the agent knows into what it does next."""

    name: str

    @abstractmethod
    async def decide(self, context: AgentContext) -> Decision:
        """The next step's decision for ``context`` (its last screen included)."""

    async def verify(self, context: AgentContext, answer: str,
                     screen: Observation | None) -> Verdict:
        """Whether the task ``context`` claims done is complete (v4/v5)."""
        raise BrainUnsupported(
            f"The {self.name} brain cannot verify a finished task; {CONFIGURE_A_MODEL}")

    async def ground(self, observation: Observation, element: str) -> Grounded:
        """Where ``element`` is on ``observation``'s screen, in real pixels."""
        raise BrainUnsupported(
            f"The {self.name} brain cannot ground elements on a screenshot; "
            f"{CONFIGURE_A_MODEL}")

    async def aclose(self) -> None:
        """Release the brain's resources; a brain that holds none has nothing to do."""
        return None
