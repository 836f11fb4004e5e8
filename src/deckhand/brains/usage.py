"""The tokens a provider's answer reports, whatever it calls them.

Each API names its counters differently (Anthropic also counts cached prompt
tokens apart); a run is charged and reported in one :class:`TokenUsage`, so
every counter of the prompt adds to ``input_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deckhand.core.steps import TokenUsage


def token_usage(response: Any, inputs: Sequence[str], output: str) -> TokenUsage:
    """``response.usage`` read through the counters ``inputs`` (summed) and
    ``output``; no usage at all counts as none."""
    u = getattr(response, "usage", None)
    if u is None:
        return TokenUsage()
    return TokenUsage(input_tokens=sum(getattr(u, name, 0) or 0 for name in inputs),
                      output_tokens=getattr(u, output, 0) or 0)
