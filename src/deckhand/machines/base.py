"""The Machine protocol: what the agent loop and the machines API need from a
machine, wherever it runs. Local and remote machines are both reached through
:class:`deckhand.machines.remote.RemoteMachine`, a client of a machine agent."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from deckhand.agent.actions import Action, ActionResult


class Observation(BaseModel):
    """What the agent sees before deciding: the screen, when the machine has one."""

    model_config = ConfigDict(frozen=True)

    screenshot_jpeg: bytes
    width: int
    height: int


class Machine(Protocol):
    machine_id: str

    async def act(self, action: Action) -> ActionResult:
        """Perform one action. Cancelling the awaiting task interrupts the
        action on the machine (a running command is killed)."""
        ...

    async def health(self) -> bool: ...

    async def observe(self) -> Observation | None:
        """The current screen (JPEG at the machine's real resolution), or None
        for a machine without a screen."""
        ...
