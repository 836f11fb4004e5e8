"""The prompt caches of the fake providers, computed the way the providers
document them, and the token counts they bill.

Anthropic (prompt caching, Messages API): the prompt is the tools, then the
system blocks, then the messages' content blocks, in that order. A block with
``cache_control`` is a breakpoint (at most 4, else a 400). A request reads
the longest prefix that ends at a block boundary at or up to 20 blocks before
one of its breakpoints and equals a prefix an earlier request wrote; it writes
the prefix up to each of its breakpoints (when at least the model's minimum,
1024 tokens). Tokens read are ``cache_read_input_tokens``, those after the
read up to the last breakpoint ``cache_creation_input_tokens``, the rest
``input_tokens``. Images cost about w·h/750 tokens after the API's own
downsizing (long edge 1568, 1.15 megapixels); the computer-use tools and
tool use add the system-prompt tokens the tool docs list.

OpenAI (prompt caching, automatic): a prompt of at least 1024 tokens has
its longest prefix seen in an earlier request cached, in steps of 128 tokens
(``cached_tokens``). A Responses request with ``previous_response_id`` is
that response's whole conversation (its input and output) followed by the new
input; an id the fake does not hold is a 400 ``previous_response_not_found``.
Images at detail high: fit in 2048×2048, the short side to 768, then 85 + 170
per 512-pixel tile. Chat Completions servers (vLLM, llama.cpp) cache a prefix
the same way.

Text counts one token per 4 bytes of its JSON; what matters here is which
tokens are cached, and every policy compared is counted the same way.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

ANTHROPIC_MIN_CACHED = 1024
ANTHROPIC_LOOKBACK = 20
MAX_BREAKPOINTS = 4
# system-prompt tokens the tool docs list (Claude 4 models)
ANTHROPIC_TOOL_TOKENS = {"computer": 735, "bash": 245, "str_replace_based_edit_tool": 700}
ANTHROPIC_TOOL_USE_SYSTEM = 346
OPENAI_MIN_CACHED = 1024
OPENAI_CACHE_STEP = 128


def text_tokens(value: Any) -> int:
    return math.ceil(len(json.dumps(value, sort_keys=True, ensure_ascii=False)
                         .encode()) / 4)


@functools.lru_cache(maxsize=512)
def _size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.size


def image_size_b64(b64: str) -> tuple[int, int]:
    return _size(base64.b64decode(b64))


def anthropic_image_tokens(width: int, height: int) -> int:
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
    return math.ceil(round(width * scale) * round(height * scale) / 750)


def openai_image_tokens(width: int, height: int) -> int:
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    short = min(w, h)
    if short > 768:
        w, h = w * 768 / short, h * 768 / short
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _key(block: Any) -> str:
    if isinstance(block, dict):
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps(block, sort_keys=True, ensure_ascii=False)


def _anthropic_tokens(block: Any) -> int:
    if not isinstance(block, dict):
        return text_tokens(block)
    kind = block.get("type")
    if kind == "image":
        return anthropic_image_tokens(*image_size_b64(block["source"]["data"]))
    if kind == "tool_result":
        inner = block.get("content")
        parts = inner if isinstance(inner, list) else [inner]
        return 8 + sum(_anthropic_tokens(p) for p in parts)
    if "name" in block and "type" in block and block.get("type") not in (
            "text", "tool_use", "thinking"):  # a tool of Anthropic's (computer_…, bash_…)
        return ANTHROPIC_TOOL_TOKENS.get(block["name"], 0) + text_tokens(block)
    return text_tokens({k: v for k, v in block.items() if k != "cache_control"})


def _prefixes(keys: list[str]) -> list[str]:
    """The hash of each prefix, ``out[i]`` ending after block ``i``."""
    h = hashlib.sha256()
    out = []
    for k in keys:
        h.update(k.encode())
        h.update(b"\x00")
        out.append(h.hexdigest())
    return out


@dataclass
class Usage:
    input_tokens: int  # the whole prompt
    cache_creation: int = 0
    cache_read: int = 0

    @property
    def uncached(self) -> int:
        return self.input_tokens - self.cache_creation - self.cache_read


class BreakpointError(ValueError):
    pass


@dataclass
class AnthropicCache:
    written: set[str] = field(default_factory=set)

    def blocks(self, body: dict[str, Any]) -> list[Any]:
        tools = list(body.get("tools") or [])
        system = body.get("system")
        blocks: list[Any] = [*tools]
        blocks += system if isinstance(system, list) else ([system] if system else [])
        for message in body.get("messages") or []:
            content = message["content"]
            parts = content if isinstance(content, list) else [content]
            blocks += [{"role": message["role"], **p} if isinstance(p, dict)
                       else {"role": message["role"], "text": p} for p in parts]
        return blocks

    def request(self, body: dict[str, Any]) -> Usage:
        blocks = self.blocks(body)
        marks = [i for i, b in enumerate(blocks) if isinstance(b, dict) and "cache_control" in b]
        if len(marks) > MAX_BREAKPOINTS:
            raise BreakpointError(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control "
                                  f"may be provided. Found {len(marks)}.")
        tokens = [_anthropic_tokens(b) for b in blocks]
        if body.get("tools"):
            tokens[0] += ANTHROPIC_TOOL_USE_SYSTEM
        total = list(_running(tokens))
        hashes = _prefixes([_key(b) for b in blocks])
        read_at = -1
        for mark in marks:
            for j in range(mark, max(-1, mark - ANTHROPIC_LOOKBACK - 1), -1):
                if hashes[j] in self.written:
                    read_at = max(read_at, j)
                    break
        read = total[read_at] if read_at >= 0 else 0
        created = 0
        for mark in marks:
            if total[mark] >= ANTHROPIC_MIN_CACHED:
                self.written.add(hashes[mark])
                created = max(created, total[mark] - read)
        return Usage(input_tokens=total[-1] if total else 0, cache_creation=created,
                     cache_read=read)


def _running(values: list[int]) -> list[int]:
    out, acc = [], 0
    for v in values:
        acc += v
        out.append(acc)
    return out


def _openai_tokens(item: Any) -> int:
    if isinstance(item, dict):
        if item.get("type") == "input_image" or item.get("type") == "computer_screenshot":
            return openai_image_tokens(*image_size_b64(item["image_url"].split(",", 1)[1]))
        if item.get("type") == "image_url":
            return openai_image_tokens(*image_size_b64(item["image_url"]["url"]
                                                       .split(",", 1)[1]))
        nested = [v for v in item.values() if isinstance(v, (dict, list))]
        if nested:
            flat = {k: v for k, v in item.items() if not isinstance(v, (dict, list))}
            return text_tokens(flat) + sum(_openai_tokens(v) for v in nested)
        return text_tokens(item)
    if isinstance(item, list):
        return sum(_openai_tokens(v) for v in item)
    return text_tokens(item)


@dataclass
class OpenAICache:
    """OpenAI's automatic prefix cache, and the Responses API's stored responses."""

    seen: set[str] = field(default_factory=set)
    responses: dict[str, list[Any]] = field(default_factory=dict)  # id → its conversation

    def conversation(self, body: dict[str, Any]) -> list[Any]:
        """The items the model reads: a chained request's are its previous
        response's conversation, then the new input. KeyError: not held."""
        previous = body.get("previous_response_id")
        before = list(self.responses[previous]) if previous else []
        new = body.get("input")
        return before + (new if isinstance(new, list) else [{"role": "user", "content": new}])

    def keep(self, response_id: str, conversation: list[Any], output: list[Any]) -> None:
        self.responses[response_id] = conversation + list(output)

    def forget(self) -> None:
        """As when OpenAI no longer has the responses (expired, another project)."""
        self.responses.clear()

    def request(self, head: list[Any], items: list[Any]) -> Usage:
        """``head``: tools and instructions (or a chat's system message) first."""
        parts = head + items
        tokens = _running([_openai_tokens(p) for p in parts])
        hashes = _prefixes([_key(p) for p in parts])
        total = tokens[-1] if tokens else 0
        cached = 0
        if total >= OPENAI_MIN_CACHED:
            for j in range(len(parts) - 1, -1, -1):
                if hashes[j] in self.seen:
                    cached = tokens[j] // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP
                    break
            if cached < OPENAI_MIN_CACHED:
                cached = 0
            self.seen.update(hashes)
        return Usage(input_tokens=total, cache_read=cached)
