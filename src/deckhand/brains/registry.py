"""Which brains exist. Choosing one for a run is :mod:`deckhand.brains.resolve`
(whose key it uses, :mod:`deckhand.engine.llm_credentials`); this module keeps
the names and the two brains that need no configuration."""

from __future__ import annotations

from deckhand.brains.base import Brain
from deckhand.brains.offline import OfflineBrain
from deckhand.brains.resolve import (
    ANTHROPIC,
    BRAINS,
    OFFLINE,
    OPENAI,
    OPENAI_COMPAT,
    PROVIDERS,
    SCRIPTED,
    parse_model,
)
from deckhand.brains.scripted import ScriptedBrain

__all__ = ["ANTHROPIC", "BRAINS", "OFFLINE", "OPENAI", "OPENAI_COMPAT", "PROVIDERS", "SCRIPTED",
           "brain_name_for", "build_brain"]


def brain_name_for(model: str | None) -> str:
    """The configuration-free brain a ``model`` names (offline otherwise)."""
    brain, _ = parse_model(model)
    return SCRIPTED if brain == SCRIPTED else OFFLINE


def build_brain(name: str, task: str) -> Brain:
    """The scripted or offline brain (model brains come from the resolver)."""
    if name == SCRIPTED:
        return ScriptedBrain.from_task(task)
    return OfflineBrain()
