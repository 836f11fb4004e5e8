"""The Machine protocol: what the agent loop and the machines API need from a
machine, wherever it runs. Local and remote machines are both reached through
:class:`deckhand.machines.remote.RemoteMachine`, a client of a machine agent;
:class:`deckhand.machines.fake.FakeMachine` is the test double."""

from __future__ import annotations

from typing import Protocol

from deckhand.core.actions import Action, ActionResult
from deckhand.core.screens import Observation


class Machine(Protocol):
    machine_id: str

    async def act(self, action: Action) -> ActionResult:
        """Perform one action. Cancelling the awaiting task interrupts the
        action on the machine (a running command is killed)."""
        ...

    async def act_and_observe(self, action: Action, *, settle: object = None
                              ) -> tuple[ActionResult, Observation | None]:
        """Perform ``action`` and return the settled screen after it in the
        same round trip (None for a machine without a screen)."""
        ...

    async def health(self) -> bool: ...

    async def observe(self) -> Observation | None:
        """The current screen (JPEG at the machine's real resolution), or None
        for a machine without a screen."""
        ...

    async def download(self, name: str) -> bytes | None:
        """The bytes of a file the machine's browser downloaded (``name`` as
        an action result's ``data.downloads`` reported it); None when it is
        gone or too large to fetch."""
        ...
