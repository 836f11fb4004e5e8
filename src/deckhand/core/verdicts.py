"""What a brain answers besides a decision: a :class:`Verdict` on a finished
task (the independent check of cua_version v4/v5) and where an element is
on a screenshot (:class:`Grounded`, for /v1/ground). They live in the shared
vocabulary because the agent loop, the API and every brain speak them, and
none of those may import the others."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from deckhand.core.steps import TokenUsage


@dataclass(frozen=True)
class Verdict:
    """Whether the task is really complete, why, and who judged it (with the
    tokens the judgement cost, which the run is charged for)."""

    passed: bool
    reason: str
    by: str = ""
    usage: TokenUsage = field(default_factory=TokenUsage)


class ScreenScale(Protocol):
    """How a model's image pixels map onto the real screen (the brain scales
    the screenshot before the model sees it)."""

    def to_real(self, x: float, y: float) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Grounded:
    """Where an element is, in real screen pixels (``found`` False: not visible)."""

    found: bool
    x: int = 0
    y: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)

    @classmethod
    def from_arguments(cls, arguments: object, screen: ScreenScale,
                       usage: TokenUsage) -> Grounded:
        """From a model's ``point`` tool call (a dict or its JSON text), in
        the model's image pixels; anything unusable is "not found"."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return cls(found=False, usage=usage)
        if not isinstance(arguments, dict) or arguments.get("found") is False:
            return cls(found=False, usage=usage)
        try:
            x, y = screen.to_real(float(arguments["x"]), float(arguments["y"]))
        except (KeyError, TypeError, ValueError):
            return cls(found=False, usage=usage)
        return cls(found=True, x=x, y=y, usage=usage)
