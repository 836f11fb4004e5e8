"""The tokens a provider's answer reports, whatever it calls them.

Each API names its counters differently; a run is charged and reported in one
:class:`TokenUsage`, so every counter of the prompt adds to ``input_tokens``
and the prompt cache's counters are kept beside it:

- Anthropic counts the prompt in three parts (``input_tokens`` after the last
  cache breakpoint, ``cache_creation_input_tokens``, ``cache_read_input_tokens``);
- OpenAI counts the whole prompt and, within it,
  ``input_tokens_details.cached_tokens`` (Responses) or
  ``prompt_tokens_details.cached_tokens`` (Chat Completions, which vLLM and
  llama.cpp servers may report too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deckhand.core.steps import TokenUsage


def _count(obj: Any, name: str) -> int:
    value = getattr(obj, name, None) if obj is not None else None
    return value if isinstance(value, int) else 0


def token_usage(response: Any, inputs: Sequence[str], output: str, *,
                created: str | None = None, read: str | None = None,
                details: str | None = None) -> TokenUsage:
    """``response.usage`` read through the counters ``inputs`` (summed) and
    ``output``; ``created`` and ``read`` name the cache counters on the usage
    itself, or ``details`` the object whose ``cached_tokens`` were read from
    the cache. No usage at all counts as none."""
    u = getattr(response, "usage", None)
    if u is None:
        return TokenUsage()
    cached = _count(getattr(u, details, None), "cached_tokens") if details else 0
    return TokenUsage(input_tokens=sum(_count(u, name) for name in inputs),
                      output_tokens=_count(u, output),
                      cache_creation_input_tokens=_count(u, created) if created else 0,
                      cache_read_input_tokens=_count(u, read) if read else cached)
