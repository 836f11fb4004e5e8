"""The Brain protocol: one async method that turns what the agent knows into
what it does next."""

from __future__ import annotations

from typing import Protocol

from deckhand.core.steps import AgentContext, Decision


class Brain(Protocol):
    name: str

    async def decide(self, context: AgentContext) -> Decision: ...
