"""The Anthropic computer-use demo's context policy (anthropic-quickstarts,
``computer-use-demo/computer_use_demo/loop.py``), re-implemented to be
computed beside Deckhand's on the same trajectory by bench/tokens.py:

- every turn is kept as it was sent (no summary);
- screenshots in tool results: all but the ``keep`` most recent removed, the
  number removed rounded down to a multiple of ``threshold``
  (``_maybe_filter_to_n_most_recent_images`` with ``only_n_most_recent_images``
  and ``min_removal_threshold``); removed images stay removed;
- ``cache_control`` on the system prompt and on the last content block of the
  three most recent user turns, the mark of the fourth most recent taken off
  (``_inject_prompt_caching``).

With prompt caching on (the Anthropic API) the demo as shipped sets
``only_n_most_recent_images`` to 0 and keeps every screen; ``keep=None``
computes that.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

CACHE = {"type": "ephemeral"}


@dataclass
class DemoConversation:
    keep: int | None = 3
    threshold: int = 3
    messages: list[dict[str, Any]] = field(default_factory=list)

    def start(self, first_user: list[dict[str, Any]]) -> None:
        self.messages = [{"role": "user", "content": copy.deepcopy(first_user)}]

    def add_turn(self, assistant: list[dict[str, Any]], user: list[dict[str, Any]]) -> None:
        self.messages.append({"role": "assistant", "content": copy.deepcopy(assistant)})
        self.messages.append({"role": "user", "content": copy.deepcopy(user)})

    def request(self, system: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The next request's body, as the demo's loop builds it."""
        if self.keep is not None:
            self._filter_images()
        self._mark_last_user_turns(3)
        return {"system": [{"type": "text", "text": system, "cache_control": CACHE}],
                "tools": tools, "messages": copy.deepcopy(self.messages)}

    def _tool_results(self) -> list[dict[str, Any]]:
        return [block for m in self.messages if isinstance(m["content"], list)
                for block in m["content"]
                if isinstance(block, dict) and block.get("type") == "tool_result"]

    def _filter_images(self) -> None:
        assert self.keep is not None
        results = self._tool_results()
        total = sum(1 for r in results for c in r.get("content", [])
                    if isinstance(c, dict) and c.get("type") == "image")
        remove = total - self.keep
        remove -= remove % self.threshold
        for r in results:
            kept = []
            for c in r.get("content", []):
                if isinstance(c, dict) and c.get("type") == "image" and remove > 0:
                    remove -= 1
                    continue
                kept.append(c)
            r["content"] = kept

    def _mark_last_user_turns(self, n: int) -> None:
        left = n
        for m in reversed(self.messages):
            if m["role"] != "user" or not isinstance(m["content"], list):
                continue
            if left:
                left -= 1
                m["content"][-1]["cache_control"] = CACHE
            else:
                m["content"][-1].pop("cache_control", None)
                break
