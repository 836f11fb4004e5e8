"""Which brain drives a run."""

from __future__ import annotations

from deckhand.brains.base import Brain
from deckhand.brains.offline import OfflineBrain
from deckhand.brains.scripted import ScriptedBrain

SCRIPTED = "scripted"
OFFLINE = "offline"


def brain_name_for(model: str | None) -> str:
    """The brain a run asks for through ``model`` (the server default otherwise)."""
    if model == SCRIPTED:
        return SCRIPTED
    return OFFLINE


def build_brain(name: str, task: str) -> Brain:
    if name == SCRIPTED:
        return ScriptedBrain.from_task(task)
    return OfflineBrain()
